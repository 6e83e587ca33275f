"""Data-parallel training on MXNet's own parameter server (KVStore over ps-lite).

A distributed run is N worker processes, S server processes and one scheduler, told
apart by environment variables (``DMLC_ROLE`` ...). Every worker runs the same
``gluonres train ... --kvstore dist_sync`` and takes its own slice of every batch;
:class:`Workers` is the worker's view of that (rank, shard, averages), :func:`launch`
starts all the processes on 127.0.0.1. docs/distributed.md explains the choices.

``dist_sync``: the servers sum the workers' gradients and every worker applies the same
SGD step locally (``update_on_kvstore=False``), so the weights and the momentum are
identical on every worker and checkpoints hold everything a resumed run needs.
``dist_async``: MXNet only updates on the servers there; each worker's gradient is
applied when it arrives, the momentum lives on the servers and the learning-rate
schedule travels to them as an ``mx.lr_scheduler``.
"""
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from gluonres._files import stop_on_signals
from gluonres.errors import GluonresError


#: ``--kvstore`` values: one process (``local``, ``device``: on one CPU they are the
#: same) or the parameter server, synchronous or asynchronous.
KVSTORES = ("local", "device", "dist_sync", "dist_async")
#: Environment a parameter-server process needs (set by :func:`launch`).
ENVIRONMENT = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_WORKER",
               "DMLC_NUM_SERVER")
#: First KVStore key of gluonres's own averages; the Trainer uses 0 .. parameters - 1.
_KEY_BASE = 1 << 20
#: A scheduler or server is a Python process that imports mxnet with DMLC_ROLE set:
#: mxnet then serves until the workers finish and exits.
_SERVE = (sys.executable, "-c", "import mxnet")
#: Set by :func:`launch` for each worker: the file the worker reports its progress to.
PROGRESS_FILE = "GLUONRES_PROGRESS_FILE"
#: The no-progress bound, in seconds, of a worker started without :func:`launch` (0: none).
STALL_TIMEOUT = "GLUONRES_STALL_TIMEOUT"
#: The default no-progress bound: this many seconds, or this many times the longest wait
#: seen between two reports when that is longer (a slow model's steps and evaluations).
STALL_FLOOR_S, STALL_SCALE = 300.0, 50


def check_environment(kvstore):
    """Refuse a ``dist_*`` kvstore outside a parameter-server run, saying how to start one.

    Raises
    ------
    GluonresError
        If a ``DMLC_*`` variable of :data:`ENVIRONMENT` is unset.
    """
    missing = [v for v in ENVIRONMENT if v not in os.environ]
    if kvstore.startswith("dist") and missing:
        raise GluonresError(
            f"--kvstore {kvstore} needs the parameter-server environment ("
            f"{', '.join(missing)} unset); start the run with `gluonres launch -n "
            f"WORKERS -s SERVERS -- gluonres train ... --kvstore {kvstore}`")


def trained_statistics(net):
    """The BatchNorm running statistics that training updates in ``net``: those of every
    layer not frozen to its running statistics (``use_global_stats``)."""
    found = []

    def visit(block):
        if isinstance(block, nn.BatchNorm) and not block._kwargs.get("use_global_stats"):
            found.extend([block.running_mean, block.running_var])
    net.apply(visit)
    return found


class Workers:
    """This process's place among the workers of a run; a single process is 1 of 1.

    Parameters
    ----------
    kvstore : str
        One of :data:`KVSTORES`; ``dist_*`` connects to the parameter server.

    Attributes
    ----------
    kv : mxnet.kvstore.KVStore or None
        The distributed KVStore (``None`` for one process).
    rank, count : int
        This worker's rank and the number of workers.
    """

    def __init__(self, kvstore="local"):
        if kvstore not in KVSTORES:
            raise GluonresError(f"unknown kvstore {kvstore!r}; use one of {', '.join(KVSTORES)}")
        self.kind = kvstore
        self.kv, self.rank, self.count = None, 0, 1
        self._keys = {}
        self._progress = None
        if kvstore.startswith("dist"):
            check_environment(kvstore)
            self._progress = Progress(os.environ.get(PROGRESS_FILE),
                                      stall_timeout(os.environ.get(STALL_TIMEOUT)))
            self._progress.report()  # creating the KVStore waits for every other process
            self.kv = mx.kv.create(kvstore)
            self.rank, self.count = self.kv.rank, self.kv.num_workers
            self._progress.report()
            if self._progress.path is None:  # no launcher watches: this worker does
                self._progress.watch(self)

    @property
    def synchronous(self):
        """Every worker applies the same update (one process, or ``dist_sync``)."""
        return self.kind != "dist_async"

    @property
    def writer(self):
        """Whether this process writes the run folder (rank 0 only)."""
        return self.rank == 0

    def trainer_options(self):
        """``gluon.Trainer`` keyword arguments for this kvstore."""
        if self.kv is None:
            return {"kvstore": self.kind}
        return {"kvstore": self.kv, "update_on_kvstore": not self.synchronous}

    def step_size(self, batch_size):
        """The batch size to normalise one worker's summed gradient by.

        ``dist_sync`` servers add the gradients of all workers, each summed over its
        shard: dividing by the whole batch gives the mean gradient a single process
        computes. ``dist_async`` applies each worker's shard as its own step.
        """
        return batch_size if self.synchronous else batch_size // self.count

    def shard(self, batch_size):
        """This worker's slice of every batch of ``batch_size`` (the whole batch alone)."""
        if batch_size % self.count:
            raise GluonresError(f"batch size {batch_size} does not split evenly over "
                                f"{self.count} workers; pass a multiple of {self.count}")
        per = batch_size // self.count
        return slice(self.rank * per, (self.rank + 1) * per)

    def mean(self, name, array):
        """The mean of ``array`` over the workers (``dist_sync``), else ``array``.

        The training loop calls it once per step: it is also the step's progress report
        (to the launcher, or to this worker's own no-progress watch).
        """
        if self._progress is not None:
            self._progress.report()
        if self.kv is None or not self.synchronous:
            return array
        return self._sum(name, array) / self.count

    def _sum(self, name, array):
        """The sum of ``array`` over the workers (``dist_sync`` only)."""
        if name not in self._keys:
            self._keys[name] = _KEY_BASE + len(self._keys)
            self.kv.init(self._keys[name], mx.nd.zeros(array.shape, dtype=array.dtype))
        out = mx.nd.zeros(array.shape, dtype=array.dtype)
        # a fresh copy: pushing the same NDArray again in a later round was seen to add
        # the previous round's sum once more (mxnet 1.9.1)
        self.kv.pushpull(self._keys[name], array.copy(), out=out)
        return out

    def average_statistics(self, net):
        """Average the BatchNorm running statistics over the workers (``dist_sync``),
        then check that every worker holds the same weights.

        Each worker's statistics follow its own shard; their mean is the running mean a
        single process computes from whole batches (the variance differs slightly: it
        misses the spread between the shards' means). Frozen layers (identical on every
        worker, :func:`gluonres.train.finetune.freeze`) are left as they are: their mean
        over three workers need not be bit-identical to them. The training loop calls
        this at the end of every epoch, before the checkpoint: a run whose workers drifted
        apart stops there (:meth:`check_identical`) instead of saving one worker's weights
        as the run's.
        """
        if self.kv is None or not self.synchronous:
            return
        for p in trained_statistics(net):
            p.set_data(self.mean(p.name, p.data()))
        self.check_identical(net)

    def check_identical(self, net):
        """Refuse to go on when the workers' weights differ (``dist_sync``).

        Every worker sends its :func:`weights_digest` in its own row of a matrix; the
        servers' sum gives every worker all the digests, so every worker stops with the
        same message, naming each rank's digest.

        Raises
        ------
        GluonresError
            When two workers' parameters are not bit-identical.
        """
        if self.kv is None or not self.synchronous:
            return
        own = np.frombuffer(bytes.fromhex(weights_digest(net)), dtype=np.uint8)
        rows = np.zeros((self.count, own.size), dtype=np.float32)
        rows[self.rank] = own  # bytes 0..255 in float32: the sum is exact
        digests = self._sum("weights_digest", mx.nd.array(rows)).asnumpy().astype(np.uint8)
        digests = [row.tobytes().hex() for row in digests]
        if all(d == digests[0] for d in digests) and digests[self.rank] == own.tobytes().hex():
            return
        raise GluonresError(diverged_message({f"rank {r}": d for r, d in enumerate(digests)}))

    def describe(self):
        """JSON-ready: kvstore, rank and count."""
        return {"kvstore": self.kind, "rank": self.rank, "count": self.count}


def weights_digest(net):
    """SHA-256 over every parameter's name, shape and float bytes, in name order: equal
    digests mean bit-identical weights (e.g. on every worker of a distributed run)."""
    digest = hashlib.sha256()
    for name, p in sorted(net.collect_params().items()):
        value = p.data().asnumpy()
        digest.update(f"{name}:{value.shape}:{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def diverged_message(digests):
    """The one line for workers that ended with different weights; ``digests`` maps a
    worker's name to its weights' SHA-256."""
    groups = {}
    for who, digest in digests.items():
        groups.setdefault(digest, []).append(who)
    described = "; ".join(f"{', '.join(who)}: {digest[:12]}" for digest, who in groups.items())
    engine = os.environ.get("MXNET_ENGINE_TYPE")
    if engine and engine != "NaiveEngine":  # the known cause (gluonres/_env.py)
        fix = (f"MXNET_ENGINE_TYPE={engine} is set: unset it, so that the workers run "
               "NaiveEngine, and start the run again in a new folder")
    else:
        fix = ("start the run again in a new folder, and report this with the launch's "
               "output if it happens again")
    return (f"the dist_sync workers hold different weights ({described}), so the run's "
            f"weights cannot be trusted; {fix}")


# ----------------------------------------------------------------- progress and stalls
def stall_timeout(value):
    """Parse a no-progress bound: ``None`` or ``''`` -> the default (scaled), else seconds
    (``0``: no bound).

    Raises
    ------
    GluonresError
        For a negative or non-numeric value.
    """
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise GluonresError(f"no-progress bound {value!r} is not a number of seconds >= 0; "
                            f"pass e.g. 600 (--stall-timeout, or {STALL_TIMEOUT}), or 0 for "
                            "no bound")
    return seconds


class Progress:
    """A worker's progress reports and the no-progress bound they are held to.

    Parameters
    ----------
    path : str, optional
        The file :func:`launch` reads (``GLUONRES_PROGRESS_FILE``); each report writes the
        number of reports so far into it.
    timeout : float, optional
        The bound in seconds (0: none); default :data:`STALL_FLOOR_S`, or
        :data:`STALL_SCALE` times the longest interval between two reports when longer.
    """

    def __init__(self, path=None, timeout=None):
        self.path, self.timeout = path, timeout
        self.count, self.longest = 0, 0.0
        self.last = time.monotonic()

    def report(self, now=None):
        """Record one unit of progress (a step, or joining the run)."""
        now = time.monotonic() if now is None else now
        if self.count:
            self.longest = max(self.longest, now - self.last)
        self.count, self.last = self.count + 1, now
        if self.path:
            with open(self.path, "w") as f:
                f.write(str(self.count))

    def bound(self):
        """The no-progress bound in seconds now, or ``None`` for none."""
        if self.timeout is not None:
            return self.timeout or None
        return max(STALL_FLOOR_S, STALL_SCALE * self.longest)

    def stalled(self, now=None):
        """Seconds without progress when that exceeds the bound, else ``None``."""
        bound, idle = self.bound(), (time.monotonic() if now is None else now) - self.last
        return idle if bound is not None and idle > bound else None

    def watch(self, owner, interval=1.0, on_stall=None):
        """Watch for a stall in a daemon thread while ``owner`` lives (a weak reference:
        the watch ends with the training that owns it).

        On a stall, ``on_stall(message)`` is called; by default the message goes to
        standard error and the process exits with code 1: its main thread waits inside
        MXNet for a worker or server that will not answer, and cannot be interrupted.
        """
        ref = weakref.ref(owner)
        on_stall = on_stall or _exit_stalled

        def run():
            while ref() is not None:
                idle = self.stalled()
                if idle is not None:
                    on_stall(f"this worker made no progress for {idle:.0f} s (bound "
                             f"{self.bound():.0f} s): another worker or a server stalled or "
                             "died; stopping. The run folder keeps its last checkpoint "
                             "(continue with --resume once every process runs again). If a "
                             "step or an evaluation really takes that long, raise the bound "
                             f"with {STALL_TIMEOUT}=SECONDS (0: no bound)")
                    return
                time.sleep(interval)

        thread = threading.Thread(target=run, name="gluonres-stall-watch", daemon=True)
        thread.start()
        return thread


def _exit_stalled(message):
    print(f"gluonres: error: {message}", file=sys.stderr, flush=True)
    os._exit(1)


# ---------------------------------------------------------------------------- launcher
class LaunchFailed(RuntimeError):
    """A process of a launch crashed or was killed, or the launch timed out or was
    interrupted: a failure, but not bad input.

    Attributes
    ----------
    exit_code : int
        What the launcher exits with: the failed process's exit code, else 1.
    """

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def free_port(host="127.0.0.1"):
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch(command, workers, servers=1, port=None, timeout=None, log=None, stall_timeout=None):
    """Run ``command`` as ``workers`` parameter-server workers on 127.0.0.1.

    Starts a scheduler, ``servers`` servers and ``workers`` copies of ``command`` with
    the ``DMLC_*`` environment, forwards every line they print to standard error with
    the process's role in front, and waits. When any process fails, the others are
    stopped; on Ctrl-C or SIGTERM all are stopped. The processes share their own process
    group and get SIGKILL from the kernel if the launcher dies (Linux), so none outlives
    it. This is ``gluonres launch``.

    Parameters
    ----------
    command : list of str
        The worker command; a leading ``gluonres`` runs as ``python -m gluonres`` with
        this interpreter.
    workers, servers : int
    port : int, optional
        The scheduler's port (default: a free one).
    timeout : float, optional
        Stop everything after this many seconds.
    log : callable, optional
        Receives status lines (default: standard error).
    stall_timeout : float, optional
        Stop everything when no worker has reported progress for this many seconds (0:
        never). Workers of ``gluonres train`` report every step; the bound starts with the
        first report. Default: :data:`STALL_FLOOR_S`, or :data:`STALL_SCALE` times the
        longest interval seen between two reports when that is longer.

    Returns
    -------
    record : dict
        ``workers``, ``servers``, ``port``, ``exit_codes`` (per role) and ``outputs``:
        each worker's last standard output line, as the object it holds when it is JSON
        (``gluonres ... --json``).
    lines : dict
        Each worker's last standard output line as printed (``None`` if it printed none).

    Raises
    ------
    GluonresError
        For bad arguments, or when a process exited with code 2: it refused its input.
    LaunchFailed
        When a process failed otherwise, on the timeout, a stall, Ctrl-C or SIGTERM, or
        when ``dist_sync`` workers report different ``weights_sha256``; every other
        process has been stopped.
    """
    if workers < 1 or servers < 1:
        raise GluonresError(f"need at least one worker and one server, got -n {workers} -s "
                            f"{servers}")
    if not command:
        raise GluonresError("no worker command; pass it after --, e.g. `gluonres launch -n 2 "
                            "-s 1 -- gluonres train resnet20_cifar --data digits --kvstore "
                            "dist_sync`")
    if stall_timeout is not None and not stall_timeout >= 0:
        raise GluonresError(f"--stall-timeout {stall_timeout} is negative; pass seconds >= 0 "
                            "(0: no bound)")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    command = list(command)
    if command[0] == "gluonres":
        command[:1] = [sys.executable, "-m", "gluonres"]
    port = port or free_port()
    env = {**os.environ, "DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": str(port),
           "DMLC_NODE_HOST": "127.0.0.1", "DMLC_NUM_WORKER": str(workers),
           "DMLC_NUM_SERVER": str(servers)}
    roles = ([("scheduler", "scheduler", _SERVE)]
             + [(f"server{i}", "server", _SERVE) for i in range(servers)]
             + [(f"worker{i}", "worker", command) for i in range(workers)])
    reports = tempfile.mkdtemp(prefix="gluonres-launch-")
    procs, threads, last, errors = {}, [], {}, {}
    failed, waited = None, False
    with stop_on_signals() as signalled:
        try:
            group = 0  # the first process leads a new group; the others join it
            for name, role, cmd in roles:
                extra = {PROGRESS_FILE: os.path.join(reports, name)} if role == "worker" else {}
                try:
                    procs[name] = subprocess.Popen(
                        cmd, env={**env, "DMLC_ROLE": role, **extra}, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, bufsize=1,
                        process_group=group, preexec_fn=_die_with(os.getpid()))
                except OSError as err:  # the processes started so far are stopped below
                    raise GluonresError(f"cannot start the {role} command {cmd[0]!r} "
                                        f"({err.strerror or err}); check the command after "
                                        "--") from None
                group = group or procs[name].pid
            # forwarding threads start after the last fork: preexec_fn runs in a forked
            # child, which must not inherit a lock another thread holds
            for name, p in procs.items():
                for stream, keep in ((p.stdout, {"last": last}), (p.stderr, {"errors": errors})):
                    t = threading.Thread(target=_forward, args=(name, stream), kwargs=keep,
                                         daemon=True)
                    t.start()
                    threads.append(t)
            pids = ", ".join(f"{n} {p.pid}" for n, p in procs.items())
            log(f"launch: scheduler on 127.0.0.1:{port}, {servers} server(s), {workers} "
                f"worker(s) (pids: {pids})")
            deadline = None if timeout is None else time.monotonic() + timeout
            failed = _wait(procs, deadline, _Watch(reports, procs, stall_timeout))
            waited = True
        except KeyboardInterrupt as err:  # Stopped, or Ctrl-C outside the main thread
            failed = ("interrupted", getattr(err, "signum", signal.SIGINT))
        finally:
            signalled.append(None)  # from here on, SIGINT and SIGTERM wait for the clean-up
            _stop(procs, grace=10 if waited and failed is None else 0)
            for t in threads:
                t.join(timeout=5)
            shutil.rmtree(reports, ignore_errors=True)
    codes = {name: p.returncode for name, p in procs.items()}
    if failed:
        raise _failure(failed, codes, errors)
    lines = {n: last.get(n) for n in procs if n.startswith("worker")}
    outputs = {n: _parsed(line) for n, line in lines.items()}
    _check_digests(outputs)
    return ({"workers": workers, "servers": servers, "port": port, "exit_codes": codes,
             "outputs": outputs}, lines)


def _check_digests(outputs):
    """Fail when the ``dist_sync`` workers' records report different weights.

    The workers check this themselves at every epoch end (:meth:`Workers.check_identical`);
    this second look, at what they printed (``--json``), does not depend on the KVStore.
    """
    records = [r for r in outputs.values() if isinstance(r, dict)]
    if (len(records) != len(outputs) or len(records) < 2
            or any((r.get("workers") or {}).get("kvstore") != "dist_sync"
                   or not r.get("weights_sha256") for r in records)):
        return
    digests = {n: r["weights_sha256"] for n, r in outputs.items()}
    if len(set(digests.values())) > 1:
        raise LaunchFailed(diverged_message(digests), 1)


#: ``prctl(PR_SET_PDEATHSIG, ...)``: a signal the kernel sends when the parent dies.
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with(parent):
    """A ``preexec_fn`` that has the kernel SIGKILL the child when ``parent`` dies (Linux):
    a SIGKILLed launcher cannot stop its processes itself. (The kernel sends it when the
    forking *thread* ends: :func:`launch` waits for its processes in that thread.)"""
    def setup():
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)
    return setup


def _failure(failed, codes, errors):
    """The error to raise when ``failed`` ended a launch with the processes' exit
    ``codes``: a role, ``'timeout'``, ``('interrupted', signum)`` or ``('stalled',
    message)``; ``errors`` holds each process's last standard error line."""
    if isinstance(failed, tuple) and failed[0] == "interrupted":
        name = signal.Signals(failed[1]).name
        return LaunchFailed(f"stopped by {name}: every process of the launch was stopped; "
                            "a gluonres train run keeps its last checkpoint (continue with "
                            "--resume)", 128 + failed[1])
    if isinstance(failed, tuple):  # a stall
        return LaunchFailed(failed[1], 1)
    code = codes.get(failed)
    what = f"{failed} exited with code {code}" if failed in codes else failed
    said = errors.get(failed, "").removeprefix("gluonres: error: ")
    said = f": {said}" if said else ""
    message = (f"{what}; every other process was stopped (see the [{failed}] lines above "
               f"for its message{said}); fix that and launch again")
    if code == 2:  # a worker refused its input: the launch was given bad input
        return GluonresError(message)
    # a crash, a signal or the timeout: not bad input, so not exit code 2
    return LaunchFailed(message, code if code and code > 0 else 1)


def _parsed(line):
    """A worker's output line as the JSON object it holds, else as it is."""
    try:
        return json.loads(line)
    except (TypeError, ValueError):
        return line


#: MXNet's own log lines (``[08:09:09] ../src/engine/engine.cc:54: ...``).
_MXNET_LOG = re.compile(r"\[\d\d:\d\d:\d\d\] ")


def _forward(name, stream, last=None, errors=None):
    """Copy a child's lines to standard error, prefixed; keep its last line in ``last``,
    and in ``errors`` its last ``gluonres: error:`` line, else its last line that is not
    one of MXNet's log lines (what the launcher's own message repeats)."""
    for line in stream:
        line = line.rstrip("\n")
        if last is not None and line.strip():
            last[name] = line
        if errors is not None and line.strip() and not _MXNET_LOG.match(line):
            if (line.startswith("gluonres: error:")
                    or not errors.get(name, "").startswith("gluonres: error:")):
                errors[name] = line
        sys.stderr.write(f"[{name}] {line}\n")
        sys.stderr.flush()
    stream.close()


class _Watch:
    """The launcher's side of the workers' progress reports: finds a stall and names the
    processes it waits for."""

    def __init__(self, folder, procs, timeout):
        self.folder, self.procs = folder, procs
        self.workers = [n for n in procs if n.startswith("worker")]
        self.progress = Progress(timeout=timeout)
        self.counts = {}

    def poll(self, now=None):
        """``None``, or the message for a stall."""
        counts = {}
        for name in self.workers:
            try:
                with open(os.path.join(self.folder, name)) as f:
                    counts[name] = int(f.read() or 0)
            except (OSError, ValueError):  # not reporting (yet), or caught mid-write
                counts[name] = self.counts.get(name, 0)
        if counts != self.counts:
            self.counts = counts
            self.progress.report(now)
        if not any(counts.values()):
            return None  # the bound starts with the first report
        idle = self.progress.stalled(now)
        return None if idle is None else self._message(idle)

    def _message(self, idle):
        stopped = [n for n, p in self.procs.items() if _state(p.pid) in ("T", "t")]
        behind = [n for n in self.workers if self.counts[n] < max(self.counts.values())]
        if stopped:
            who = (f"{' and '.join(stopped)} {'is' if len(stopped) == 1 else 'are'} stopped "
                   "(SIGSTOP, or held in a debugger)")
        elif behind:
            who = (f"{' and '.join(behind)} fell behind (progress "
                   f"{', '.join(f'{n} {self.counts[n]}' for n in self.workers)})")
        else:
            who = "every worker waits (a server or the scheduler may be stuck)"
        return (f"no worker made progress for {idle:.0f} s (bound {self.progress.bound():.0f}"
                f" s): {who}; every process was stopped. If a step or an evaluation really "
                "takes that long, raise the bound with --stall-timeout SECONDS (0: no bound)")


def _state(pid):
    """A process's state letter from /proc (``R``, ``S``, ``T`` ...), ``''`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _wait(procs, deadline, watch=None):
    """Wait until the workers finish, one process fails, the deadline passes or the
    workers stall: ``None``, the failed role, ``'timeout'`` or ``('stalled', message)``."""
    workers = [n for n in procs if n.startswith("worker")]
    while True:
        for name, p in procs.items():
            if p.poll() not in (None, 0):
                return name
        if all(procs[w].poll() == 0 for w in workers):
            return None
        if deadline is not None and time.monotonic() > deadline:
            return "timeout"
        stall = watch.poll() if watch is not None else None
        if stall:
            return ("stalled", stall)
        time.sleep(0.1)


def _stop(procs, grace):
    """Give the servers ``grace`` seconds to finish by themselves after the workers;
    then SIGTERM the process group, and SIGKILL it after 3 s (a worker blocked inside
    MXNet waiting for a stopped peer cannot act on SIGTERM)."""
    end = time.monotonic() + grace
    for p in procs.values():
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for signum, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        running = [p for p in procs.values() if p.poll() is None]
        if not running:
            return
        _signal_group(procs, running, signum)
        end = time.monotonic() + wait
        for p in running:
            try:
                p.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


def _signal_group(procs, running, signum):
    """Send ``signum`` to the launch's process group (the children and theirs), else to
    each running process; a stopped process is continued so that SIGTERM reaches it."""
    group = next(iter(procs.values())).pid  # a running member keeps the group's id valid
    try:
        os.killpg(group, signum)
        if signum != signal.SIGKILL:
            os.killpg(group, signal.SIGCONT)
    except OSError:
        for p in running:
            try:
                p.send_signal(signum)
                if signum != signal.SIGKILL:
                    p.send_signal(signal.SIGCONT)
            except OSError:
                pass
