"""Import-time environment checks and defaults, run before mxnet is imported."""
import os

import numpy

_NUMPY_MAX = (1, 24)


def check_numpy():
    """Refuse numpy >= 1.24 with one line that names the fix.

    mxnet 1.9.1 (the last Apache MXNet release) still uses ``np.bool``, removed in
    numpy 1.24, and fails at import with an unhelpful ``AttributeError``.
    """
    version = tuple(int(p) for p in numpy.__version__.split(".")[:2])
    if version >= _NUMPY_MAX:
        raise ImportError(
            f"gluonres needs numpy<1.24 for mxnet 1.9.1, but numpy {numpy.__version__} is "
            "installed; fix: pip install 'numpy==1.23.5'")


def default_threads():
    """Pin OpenMP to the cores this process may use, unless the user chose.

    Without it, mxnet's engine threads and OpenMP oversubscribe a small CPU: on the
    2-core project machine ResNet-20 training ran at ~190 img/s by default and
    ~355 img/s with OMP_NUM_THREADS=2 (see docs/performance.md).
    """
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))


def worker_engine():
    """Run a parameter-server worker on MXNet's synchronous engine, unless the user chose.

    With the threaded engine, two ``dist_sync`` workers of mxnet 1.9.1 ended a 3-step
    ResNet-20 run with different weights in 3 of 5 runs (up to 9.1 apart in
    ``head_dense_bias``), and the runs did not agree with each other; on ``NaiveEngine``
    every run was bit-identical on both workers and across runs. A race in the
    dist KVStore's buffers is the likely cause (not pinned down). One worker per process
    on a CPU loses little: the threads only overlapped communication with compute.
    """
    if os.environ.get("DMLC_ROLE") == "worker":
        os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")


def quiet_mxnet():
    """Keep mxnet's own progress lines off the user's terminal, unless the user chose.

    Every oneDNN-fused graph (inference, export, bench, INT8) made mxnet 1.9.1 print
    ``[hh:mm:ss] ../src/...: Subgraph backend MKLDNN is activated.`` on standard error,
    between gluonres's own lines; ``MXNET_SUBGRAPH_VERBOSE=1`` brings it back.
    """
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
