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
