"""What it costs a process to free and reallocate its buffers, with glibc's default
malloc and with :func:`gluonres.machine.keep_freed_memory`, and whether an idle pause
adds to it.

Each round allocates 64 buffers of 8 MiB (about a ResNet-20 training step's activations
at batch 128), touches them, frees them, then sleeps 0.3 s (the bench's gap) or 6 s (a
peer's wait while the other variants run); the next round's allocate-and-touch is
timed. Both settings run in fresh processes, alternating, in one run:

    .venv/bin/python benchmarks/freed_memory.py
    .venv/bin/python benchmarks/freed_memory.py --train resnet20_cifar resnet56_cifar
    .venv/bin/python benchmarks/freed_memory.py --fit ../shared/data/cifar10-jpg.tar.gz resnet20_cifar

The second form times gluonres's training step alone (synthetic batches) under both
settings, after a pause and back to back; the third, ``gluonres train`` itself (real
data, the Trainer, evaluation) for 150 updates.

With glibc's default, the freed buffers are trimmed back to the kernel and faulted in
again every round; kept, they are reused. Whether a pause adds to that depends on the
machine (a virtual machine's kernel may report free pages to its host, which then takes
them back): the ratio after 6 s over after 0.3 s says.
"""
import json
import statistics
import subprocess
import sys

BUFFERS, SIZE, ROUNDS = 64, 8 << 20, 5

CHILD = f'''
import ctypes, json, sys, time
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
def step():
    t = time.perf_counter()
    ps = [libc.malloc({SIZE}) for _ in range({BUFFERS})]
    for p in ps:
        ctypes.memset(p, 1, {SIZE})
    seconds = time.perf_counter() - t
    for p in ps:
        libc.free(ctypes.c_void_p(p))
    return seconds
step()
out = {{}}
for gap in (0.3, 6.0):
    times = []
    for _ in range({ROUNDS}):
        time.sleep(gap)
        times.append(step())
    out[str(gap)] = times
print(json.dumps(out))
'''


TRAIN_CHILD = '''
import json, sys, time
import mxnet as mx
from mxnet import gluon
from gluonres.measure.bench import backward_pass, build_net, sgd_step
from gluonres.train import speed
net = build_net(sys.argv[2])
step = sgd_step(net.collect_params(),
                backward_pass(speed.for_training(net), gluon.loss.SoftmaxCrossEntropyLoss()),
                mx.nd.random.uniform(-1, 1, (128, 3, 32, 32)), mx.nd.arange(128) % 10)
for _ in range(3):
    step()
rates = {"paused": [], "back_to_back": []}
for _ in range(8):
    for kind, pause in (("paused", 0.3), ("back_to_back", 0)):
        time.sleep(pause)
        t = time.perf_counter()
        for _ in range(4):
            step()
        rates[kind].append(4 * 128 / (time.perf_counter() - t))
print(json.dumps(rates))
'''


# the real training loop (data pipeline, Trainer, evaluation): `gluonres train`'s own
# train_img_s over a short run
FIT_CHILD = '''
import json, sys, tempfile
from gluonres.cli import main
with tempfile.TemporaryDirectory() as out:
    main(["train", sys.argv[2], "--data", sys.argv[3], "--iterations", "150", "--no-progress",
          "--json", "--out", out])
'''


# the first argument of every child: apply the setting before anything allocates
PREAMBLE = '''import sys
if sys.argv[1] == "keep":
    from gluonres.machine import keep_freed_memory
    assert keep_freed_memory()
'''


def alternate(child, pairs, *args):
    """``child`` in fresh processes, ``default`` and ``keep`` alternating ``pairs``
    times: per mode, the JSON each printed last."""
    out = {"default": [], "keep": []}
    for _ in range(pairs):
        for mode in out:
            text = subprocess.run([sys.executable, "-c", PREAMBLE + child, mode, *args],
                                  check=True, capture_output=True, text=True).stdout
            out[mode].append(json.loads(text.splitlines()[-1]))
    return out


def train_steps(model, pairs):
    """gluonres's training step (``speed.for_training``, batch 128) with glibc's default
    and with the memory kept, in fresh processes alternating ``pairs`` times; each
    process times blocks of 4 steps after a 0.3 s pause (as the bench does) and back to
    back (as ``gluonres train`` runs)."""
    runs = alternate(TRAIN_CHILD, pairs, model)
    for kind in ("paused", "back_to_back"):
        med = {m: statistics.median(r for run in rs for r in run[kind])
               for m, rs in runs.items()}
        count = sum(len(run[kind]) for run in runs["keep"])
        print(f"{model} training step, batch 128, {kind.replace('_', ' ')}, img/s (median "
              f"of {count} blocks of 4 steps): default {med['default']:.0f}, keep "
              f"{med['keep']:.0f}, keep / default {med['keep'] / med['default']:.2f}")


def fit(model, data, pairs):
    """``gluonres train`` for 150 updates on real data with glibc's default and with the
    memory kept, in fresh processes alternating ``pairs`` times; each run's img/s is
    printed, since runs of one setting spread by about 10% on a shared host."""
    runs = alternate(FIT_CHILD, pairs, model, data)
    rates = {m: [r["train_img_s"] for r in rs] for m, rs in runs.items()}
    med = {m: statistics.median(r) for m, r in rates.items()}
    print(f"{model} gluonres train, 150 updates of 128 on {data}, img/s (median of {pairs} "
          f"runs): default {med['default']:.0f}, keep {med['keep']:.0f}, keep / default "
          f"{med['keep'] / med['default']:.2f}; runs, in order: " + ", ".join(
              f"{d:.0f} / {k:.0f}" for d, k in zip(rates["default"], rates["keep"])))


def main():
    if sys.argv[1:2] == ["--fit"]:
        data, *models = sys.argv[2:]
        for model in models or ["resnet20_cifar"]:
            fit(model, data, pairs=4)
        return
    if sys.argv[1:2] == ["--train"]:
        for model in sys.argv[2:] or ["resnet20_cifar"]:
            train_steps(model, pairs=2)
        return
    results = alternate(CHILD, 2)
    mib = BUFFERS * SIZE >> 20
    print(f"allocate and touch {BUFFERS} x {SIZE >> 20} MiB ({mib} MiB), median of "
          f"{2 * ROUNDS} rounds, after a pause of:")
    medians = {}
    for mode, runs in results.items():
        for gap in ("0.3", "6.0"):
            medians[mode, gap] = statistics.median(t for r in runs for t in r[gap])
        print(f"  {mode:8s} 0.3 s: {1000 * medians[mode, '0.3']:7.1f} ms   6 s: "
              f"{1000 * medians[mode, '6.0']:7.1f} ms   ratio "
              f"{medians[mode, '6.0'] / medians[mode, '0.3']:.2f}")
    print(f"after 6 s, default / keep: {medians['default', '6.0'] / medians['keep', '6.0']:.2f}")


if __name__ == "__main__":
    main()
