"""The machine a number was measured on, and the clock it was measured by.

Every record (training runs, experiments, benchmarks, INT8 comparisons) describes its
machine with :func:`machine`, so a reader can tell an AVX-512 Xeon from an AVX2-only
EPYC: oneDNN picks different kernels on each.
"""
import ctypes
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata

#: CPU flags that decide which oneDNN kernels run
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
             "avx_vnni")


def threads():
    """OpenMP threads mxnet uses (gluonres sets ``OMP_NUM_THREADS`` when unset)."""
    return int(os.environ.get("OMP_NUM_THREADS", len(os.sched_getaffinity(0))))


#: glibc malloc settings under which a process keeps the memory it frees for its next
#: allocations (what pooling allocators such as jemalloc do) instead of handing it back
#: to the kernel: buffers up to 32 MiB come from the heap, whose free top goes back only
#: beyond 2 GiB. With glibc's default a training step's freed buffers go back to the
#: kernel and are faulted in again on the next step (``benchmarks/freed_memory.py``).
KEEP_FREED_MEMORY = {"mmap_threshold": 32 * 2**20, "trim_threshold": 2**31 - 1}
_MALLOPT = {"trim_threshold": -1, "mmap_threshold": -3}  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD


def keep_freed_memory():
    """Apply :data:`KEEP_FREED_MEMORY` to this process (``mallopt``).

    Returns
    -------
    bool
        Whether glibc took both settings (``False`` without glibc, e.g. on macOS or
        musl).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(_MALLOPT[k], v) == 1 for k, v in KEEP_FREED_MEMORY.items())


def keep_freed_memory_env(env):
    """``env`` with :data:`KEEP_FREED_MEMORY` as ``GLIBC_TUNABLES``, for a child process
    to start with what :func:`keep_freed_memory` sets in this one (other tunables kept)."""
    ours = ":".join(f"glibc.malloc.{k}={v}" for k, v in KEEP_FREED_MEMORY.items())
    theirs = env.get("GLIBC_TUNABLES")
    return {**env, "GLIBC_TUNABLES": f"{theirs}:{ours}" if theirs else ours}


def utc_now():
    """The current UTC time as an ISO 8601 stamp, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cpuinfo():
    """(model name, flags) from /proc/cpuinfo; (None, []) where there is none."""
    model, flags = None, []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.split()
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def machine():
    """JSON-ready description of this machine, for a record.

    Returns
    -------
    dict
        ``cpu`` (model name), ``isa`` (the :data:`ISA_FLAGS` the CPU has),
        ``dnnl_max_cpu_isa`` (the ``DNNL_MAX_CPU_ISA`` cap, ``None`` when unset), ``cores``
        usable by this process, ``lscpu_*`` topology where ``lscpu`` exists,
        ``memory_gib``, ``omp_num_threads``, ``load_average`` (1, 5, 15 min: other work
        on a shared machine), ``python``, ``platform`` and the versions of mxnet, numpy
        and onnxruntime (``None`` when not installed).
    """
    import mxnet as mx
    import numpy as np

    model, flags = _cpuinfo()
    info = {"cpu": model or platform.processor() or platform.machine(),
            "isa": [f for f in ISA_FLAGS if f in flags],
            "dnnl_max_cpu_isa": os.environ.get("DNNL_MAX_CPU_ISA"),
            "cores": len(os.sched_getaffinity(0))}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("CPU(s)", "Thread(s) per core", "Core(s) per socket"):
            info["lscpu_" + key.strip().lower().replace("(s)", "s").replace(" ", "_")] = \
                value.strip()
    info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                               / 2 ** 30, 1)
    try:  # the installed version, without importing the runtime into every training run
        ort_version = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        ort_version = None
    info.update(omp_num_threads=threads(), load_average=list(os.getloadavg()),
                python=platform.python_version(), platform=platform.platform(),
                mxnet=mx.__version__, numpy=np.__version__, onnxruntime=ort_version)
    return info
