"""Peers to compare against: GluonCV's models in this process, and PyTorch / OpenVINO in
their own environment (``benchmarks/peers.py`` under ``.venv-peers``).
"""
import json
import os
import resource
import subprocess
import time

from gluonres.machine import keep_freed_memory_env, threads
from gluonres.measure.timing import Timer
from gluonres.models.init import he_initialize


#: gluonres model -> the GluonCV model of the same family and depth
GLUONCV_PEERS = {
    **{f"resnet{d}_cifar": f"cifar_resnet{d}_v1" for d in (20, 56, 110)},
    **{f"resnet{d}_cifar_v2": f"cifar_resnet{d}_v2" for d in (20, 56, 110)},
    **{f"resnet{d}": f"resnet{d}_v1" for d in (18, 34, 50, 101, 152)},
    **{f"resnet{d}_v2": f"resnet{d}_v2" for d in (18, 34, 50, 101, 152)},
}


#: the source checkout: this file is gluonres/measure/peers.py in it
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


PEERS_SCRIPT = os.path.join(REPO, "benchmarks", "peers.py")


DEFAULT_PEERS_PYTHON = os.path.join(REPO, ".venv-peers", "bin", "python")


def gluoncv_net(name):
    """GluonCV's model ``name``, He-initialised like gluonres's own (seed 0)."""
    from gluoncv.model_zoo import get_model as gluoncv_model
    net = gluoncv_model(name, pretrained=False)
    he_initialize(net, 0)
    return net


#: A peer timed inside the bench must be within this fraction of the same peer timed
#: alone, or the bench's peer ratios are reported as not trustworthy.
PEER_TOLERANCE = 0.10

#: Largest share of one core the idle side may use while the other side is timed.
IDLE_CPU_LIMIT = 0.05


class Peers:
    """The optional comparators, served by ``benchmarks/peers.py`` in its own interpreter.

    PyTorch and OpenVINO are not gluonres dependencies (and PyTorch >= 2 makes GluonCV
    refuse to import), so they live in a separate environment (``make peers``). The
    worker waits on standard input between requests; whether the idle side really costs
    nothing is measured, not assumed: each sample reports the peer's CPU time, so the
    CPU it used between its samples (while gluonres variants ran) is known, and the CPU
    this process used during each peer sample is taken around the request
    (:meth:`idle_cpu`). :meth:`twin` sets the peers up again in a process of their own,
    to be timed alone.

    Parameters
    ----------
    python : str
        The peer interpreter (``.venv-peers/bin/python``).
    """

    def __init__(self, python):
        self.python = python
        self.notes = {}
        self.proc = None
        self.setups = {}
        # [CPU s, wall s] of the idle side: the peer between its samples, this process
        # during them
        self.reset_idle()
        if not python or not os.path.exists(python):
            self.notes["peers"] = (f"skipped: no peer interpreter at {python!r} (run "
                                   "`make peers` to install PyTorch and OpenVINO there)")
            return
        if not os.path.exists(PEERS_SCRIPT):
            self.notes["peers"] = f"skipped: {PEERS_SCRIPT} not found (not a source checkout)"
            return
        # the bench process keeps its freed memory (:func:`~gluonres.machine.keep_freed_memory`);
        # so do the peers: every timed process allocates alike
        env = keep_freed_memory_env({**os.environ, "OMP_NUM_THREADS": str(threads())})
        self.proc = subprocess.Popen([python, PEERS_SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.info = self._ask({"cmd": "info"})

    def _ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the peer worker exited; see its messages above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def timer(self, name, images, **setup):
        """A Timer for a peer variant, or ``None`` with a note when it is unavailable."""
        if self.proc is None:
            return None
        try:
            reply = self._ask({"cmd": "setup", "name": name, **setup})
        except RuntimeError as err:
            self.notes[name] = f"skipped: {err}"
            return None
        if reply.get("note"):
            self.notes[name] = reply["note"]
        self.setups[name] = (images, setup)
        self._last_end = None  # the set-up's own CPU is not idle time
        return Timer(name, lambda iters: self._time(name, iters), images)

    def _time(self, name, iters):
        # getrusage, not os.times: its 10 ms ticks are a large share of a short sample
        host0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        reply = self._ask({"cmd": "time", "name": name, "iters": iters})
        host1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        self._host_idle[0] += ((host1.ru_utime + host1.ru_stime)
                               - (host0.ru_utime + host0.ru_stime))
        self._host_idle[1] += wall1 - wall0
        if self._last_end is not None:
            self._peer_idle[0] += reply["cpu"][0] - self._last_end[0]
            self._peer_idle[1] += reply["wall"][0] - self._last_end[1]
        self._last_end = (reply["cpu"][1], reply["wall"][1])
        return reply["seconds"]

    def reset_idle(self):
        """Start counting :meth:`idle_cpu` afresh (e.g. for the next model)."""
        self._peer_idle, self._host_idle, self._last_end = [0.0, 0.0], [0.0, 0.0], None

    def idle_cpu(self):
        """The share of one core each side used while the other was timed.

        Returns
        -------
        dict
            ``peer_while_gluonres_timed``: the peer process between its samples;
            ``gluonres_while_peer_timed``: this process during the peer's samples
            (``None`` before any sample).
        """
        def share(cpu_wall):
            return round(cpu_wall[0] / cpu_wall[1], 4) if cpu_wall[1] else None
        return {"peer_while_gluonres_timed": share(self._peer_idle),
                "gluonres_while_peer_timed": share(self._host_idle)}

    def twin(self):
        """Every peer set up here, set up again in a fresh process of its own: the same
        peers, to be timed alone (with this process and the first peer process idle).

        The same set-ups in the same order, so that once warmed up the twin is in the
        same state as the bench's peer process and only the gluonres variants between
        its samples are missing: PyTorch's eager forward, for one, ran twice as fast once
        a training step had run in its process (934 vs 1,866 img/s, ResNet-20, AMD EPYC),
        so a process timing the forward by itself is not the same peer.

        Returns
        -------
        tuple of (Peers, list of Timer)
            The twin (close it when done) and a timer per peer it could set up.
        """
        twin = Peers(self.python)
        timers = [twin.timer(name, images, **setup)
                  for name, (images, setup) in self.setups.items()]
        return twin, [t for t in timers if t is not None]

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
