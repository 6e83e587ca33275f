"""Peers to compare against: GluonCV's models in this process, and PyTorch / OpenVINO in
their own environment (``benchmarks/peers.py`` under ``.venv-peers``).
"""
import json
import os
import subprocess

from gluonres.machine import threads
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


class Peers:
    """The optional comparators, served by ``benchmarks/peers.py`` in its own interpreter.

    PyTorch and OpenVINO are not gluonres dependencies (and PyTorch >= 2 makes GluonCV
    refuse to import), so they live in a separate environment (``make peers``). The
    worker waits on standard input between requests, so it costs nothing while the
    in-process variants run.
    """

    def __init__(self, python):
        self.notes = {}
        self.proc = None
        if not python or not os.path.exists(python):
            self.notes["peers"] = (f"skipped: no peer interpreter at {python!r} (run "
                                   "`make peers` to install PyTorch and OpenVINO there)")
            return
        if not os.path.exists(PEERS_SCRIPT):
            self.notes["peers"] = f"skipped: {PEERS_SCRIPT} not found (not a source checkout)"
            return
        env = {**os.environ, "OMP_NUM_THREADS": str(threads())}
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

        def run(iters):
            return self._ask({"cmd": "time", "name": name, "iters": iters})["seconds"]
        return Timer(name, run, images)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
