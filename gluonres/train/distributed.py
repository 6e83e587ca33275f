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
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import mxnet as mx

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
        if kvstore.startswith("dist"):
            check_environment(kvstore)
            self.kv = mx.kv.create(kvstore)
            self.rank, self.count = self.kv.rank, self.kv.num_workers

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
        """The mean of ``array`` over the workers (``dist_sync``), else ``array``."""
        if self.kv is None or not self.synchronous:
            return array
        if name not in self._keys:
            self._keys[name] = _KEY_BASE + len(self._keys)
            self.kv.init(self._keys[name], mx.nd.zeros(array.shape, dtype=array.dtype))
        out = mx.nd.zeros(array.shape, dtype=array.dtype)
        # a fresh copy: pushing the same NDArray again in a later round was seen to add
        # the previous round's sum once more (mxnet 1.9.1)
        self.kv.pushpull(self._keys[name], array.copy(), out=out)
        return out / self.count

    def average_statistics(self, net):
        """Average the BatchNorm running statistics over the workers (``dist_sync``).

        Each worker's statistics follow its own shard; their mean is the running mean a
        single process computes from whole batches (the variance differs slightly: it
        misses the spread between the shards' means).
        """
        if self.kv is None or not self.synchronous:
            return
        for name, p in net.collect_params().items():
            if p.grad_req == "null":
                p.set_data(self.mean(name, p.data()))

    def describe(self):
        """JSON-ready: kvstore, rank and count."""
        return {"kvstore": self.kind, "rank": self.rank, "count": self.count}


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


def launch(command, workers, servers=1, port=None, timeout=None, log=None):
    """Run ``command`` as ``workers`` parameter-server workers on 127.0.0.1.

    Starts a scheduler, ``servers`` servers and ``workers`` copies of ``command`` with
    the ``DMLC_*`` environment, forwards every line they print to standard error with
    the process's role in front, and waits. When any process fails, the others are
    stopped; on Ctrl-C all are stopped. This is ``gluonres launch``.

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
        When a process failed otherwise, or on the timeout or Ctrl-C; every other
        process has been stopped.
    """
    if workers < 1 or servers < 1:
        raise GluonresError(f"need at least one worker and one server, got -n {workers} -s "
                            f"{servers}")
    if not command:
        raise GluonresError("no worker command; pass it after --, e.g. `gluonres launch -n 2 "
                            "-s 1 -- gluonres train resnet20_cifar --data digits --kvstore "
                            "dist_sync`")
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
    procs, threads, last = {}, [], {}
    log(f"launch: scheduler on 127.0.0.1:{port}, {servers} server(s), {workers} worker(s)")
    failed = None
    try:
        for name, role, cmd in roles:
            procs[name] = subprocess.Popen(cmd, env={**env, "DMLC_ROLE": role},
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           stdin=subprocess.DEVNULL, text=True, bufsize=1)
            for stream, keep in ((procs[name].stdout, last), (procs[name].stderr, None)):
                t = threading.Thread(target=_forward, args=(name, stream, keep), daemon=True)
                t.start()
                threads.append(t)
        deadline = None if timeout is None else time.monotonic() + timeout
        failed = _wait(procs, deadline)
    except KeyboardInterrupt:
        failed = "interrupted (Ctrl-C)"
    finally:
        _stop(procs, grace=10 if failed is None else 0)
        for t in threads:
            t.join(timeout=5)
    codes = {name: p.returncode for name, p in procs.items()}
    if failed:
        raise _failure(failed, codes)
    lines = {n: last.get(n) for n in procs if n.startswith("worker")}
    return ({"workers": workers, "servers": servers, "port": port, "exit_codes": codes,
             "outputs": {n: _parsed(line) for n, line in lines.items()}}, lines)


def _failure(failed, codes):
    """The error to raise when ``failed`` (a role, ``'timeout'`` or the interruption)
    ended a launch with the processes' exit ``codes``."""
    code = codes.get(failed)
    what = f"{failed} exited with code {code}" if failed in codes else failed
    message = (f"{what}; every other process was stopped (see the [{failed}] lines above "
               "for its message); fix that and launch again")
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


def _forward(name, stream, last=None):
    """Copy a child's lines to standard error, prefixed; keep its last line in ``last``."""
    for line in stream:
        line = line.rstrip("\n")
        if last is not None and line.strip():
            last[name] = line
        sys.stderr.write(f"[{name}] {line}\n")
        sys.stderr.flush()
    stream.close()


def _wait(procs, deadline):
    """Wait until the workers finish, one process fails, or the deadline passes."""
    workers = [n for n in procs if n.startswith("worker")]
    while True:
        for name, p in procs.items():
            if p.poll() not in (None, 0):
                return name
        if all(procs[w].poll() == 0 for w in workers):
            return None
        if deadline is not None and time.monotonic() > deadline:
            return "timeout"
        time.sleep(0.1)


def _stop(procs, grace):
    """Give the servers ``grace`` seconds to finish by themselves after the workers;
    then terminate, and after 5 s kill, every process still running."""
    end = time.monotonic() + grace
    for p in procs.values():
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    running = [p for p in procs.values() if p.poll() is None]
    for p in running:
        p.send_signal(signal.SIGTERM)
    for p in running:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
