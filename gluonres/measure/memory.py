"""Peak memory of a training step, each mode in a fresh process.
"""
import gc
import json
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon

from gluonres.measure.bench import backward_pass, build_net, sgd_step
from gluonres.measure.timing import interleaved, local
from gluonres.models import model_info
from gluonres.train import speed


# ---------------------------------------------------------------------------- memory
MEMORY_MODES = ("static", "checkpointed")


def _status_mb(field):
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    return kb / 1024


def memory_child(model, batch, steps, mode):
    """Train ``steps`` synthetic steps one way; print peak RSS and seconds per step.

    Runs in a fresh process (see :func:`memory`). Building a very deep network peaks
    higher than a small batch's step (ResNet-1202: ~2.9 GB), so the kernel's peak-RSS
    mark is reset after building (``/proc/self/clear_refs``) and the reported peak is
    the training steps' own.
    """
    net = build_net(model)
    x = mx.nd.random.uniform(-1, 1, shape=model_info(net).input_shape(batch))
    y = mx.nd.array(np.arange(batch) % net.classes)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    mx.nd.waitall()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = _status_mb("VmHWM")
    if mode == "checkpointed":
        forward_backward = speed.CheckpointedStep(net, loss_fn)
    else:
        forward_backward = backward_pass(speed.for_training(net), loss_fn)
    # no warm-up: the first step's planning and allocation belong in the peak
    timer = local(mode, sgd_step(net.collect_params(), forward_backward, x, y), batch)
    interleaved([timer], steps, 0, 1)
    peak = _status_mb("VmHWM")
    print(json.dumps({"mode": mode, "peak_rss_mb": peak, "rss_before_mb": before,
                      "seconds_per_step": timer.seconds}))


def memory(model="resnet1202_cifar", batch=128, steps=3):
    """Peak memory and step time of a training step, ordinary vs checkpointed.

    Each mode runs in its own process; the first step (planning, allocation) is
    excluded from the time, not from the peak.
    """
    out = {"model": model, "batch": batch, "steps": steps}
    for mode in MEMORY_MODES:
        code = (f"from gluonres.measure.memory import memory_child; "
                f"memory_child({model!r}, {batch}, {steps}, {mode!r})")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} memory run failed: {proc.stderr.strip()[-500:]}")
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        rec["median_step_s"] = float(np.median(rec["seconds_per_step"][1:] or
                                               rec["seconds_per_step"]))
        out[mode] = rec
    s, c = out["static"], out["checkpointed"]
    out["memory_saved"] = 1 - c["peak_rss_mb"] / s["peak_rss_mb"]
    out["time_cost"] = c["median_step_s"] / s["median_step_s"] - 1
    return out
