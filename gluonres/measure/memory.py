"""Peak memory of a training step, each mode in a fresh process; peak memory of training
and evaluation at ImageNet sizes (:func:`peak_memory`, ``results/memory-224.json``).
"""
import gc
import json
import os
import re
import shlex
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon

from gluonres._files import json_default, write_text
from gluonres.analysis.footprint import activation_bytes, available_memory, inference_batch
from gluonres.machine import machine, utc_now
from gluonres.measure.bench import backward_pass, build_net, sgd_step
from gluonres.measure.timing import interleaved, local
from gluonres.models import get_model, model_info
from gluonres.train import speed


# ---------------------------------------------------------------------------- memory
MEMORY_MODES = ("static", "checkpointed")


def _status_mb(field):
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    return kb / 1024


def _reset_peak():
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; return it in MB."""
    mx.nd.waitall()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mb("VmHWM")


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
    before = _reset_peak()
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
        rec = _in_child("memory_child", model, batch, steps, mode)
        rec["median_step_s"] = float(np.median(rec["seconds_per_step"][1:] or
                                               rec["seconds_per_step"]))
        out[mode] = rec
    s, c = out["static"], out["checkpointed"]
    out["memory_saved"] = 1 - c["peak_rss_mb"] / s["peak_rss_mb"]
    out["time_cost"] = c["median_step_s"] / s["median_step_s"] - 1
    return out


def _in_child(function, *args):
    """Run ``function(*args)`` of this module in a fresh process; its last stdout line."""
    code = (f"from gluonres.measure.memory import {function}; "
            f"{function}({', '.join(map(repr, args))})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode < 0 else "failed"
        raise RuntimeError(f"{function}{args} {why}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- evaluation
def eval_memory_child(model, batch, steps):
    """Run ``steps`` synthetic evaluation batches; print peak RSS and seconds per batch.

    Runs in a fresh process (see :func:`peak_memory`). The network is hybridized as
    ``fit`` and ``evaluate_weights`` evaluate it (static memory, ``static_shape``); the
    peak-RSS mark is reset after building, as in :func:`memory_child`.
    """
    net = build_net(model)
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.random.uniform(-1, 1, shape=model_info(net).input_shape(batch))
    before = _reset_peak()
    timer = local("eval", lambda: net(x).wait_to_read(), batch)
    interleaved([timer], steps, 0, 1)
    print(json.dumps({"mode": "eval", "peak_rss_mb": _status_mb("VmHWM"),
                      "rss_before_mb": before, "seconds_per_step": timer.seconds}))


#: The child of each kind of measurement and its arguments after the steps.
_CHILDREN = {"train": ("memory_child", ("static",)), "eval": ("eval_memory_child", ())}


def _measure(kind, model, batch, steps):
    """One measurement of ``kind`` ('train' or 'eval') in a fresh process."""
    child, extra = _CHILDREN[kind]
    return _in_child(child, model, batch, steps, *extra)


def _probe(kind, model, steps, probes):
    """``[(batch, peak RSS MB)]`` of ``kind`` at the small ``probes``."""
    return [(b, _measure(kind, model, b, steps)["peak_rss_mb"]) for b in probes]


def _peak_at(kind, model, batch, steps, points, headroom):
    """Peak RSS of ``kind`` ('train' or 'eval') at ``batch``, measured where it fits.

    ``points`` are two small batches measured first (:func:`_probe`); the peak is linear
    in the batch, so their line predicts it at ``batch``. Only a prediction within
    ``headroom`` of the memory available now is run: a larger one would be killed, or
    push other processes on the machine out.
    """
    probes = [b for b, _ in points]
    (b0, p0), (b1, p1) = points
    slope = (p1 - p0) / (b1 - b0)
    predicted = p0 + slope * (batch - b0)
    out = {"batch": batch, "probes": [{"batch": b, "peak_rss_mb": p} for b, p in points],
           "mb_per_image": slope, "predicted_peak_rss_mb": predicted}
    available = (available_memory() or 0) / 2 ** 20
    if batch in probes:
        out["peak_rss_mb"] = dict(points)[batch]
    elif predicted <= headroom * available:
        rec = _measure(kind, model, batch, steps)
        out.update(peak_rss_mb=rec["peak_rss_mb"], seconds_per_step=rec["seconds_per_step"])
    else:
        out.update(peak_rss_mb=None, not_run=f"predicted {predicted:,.0f} MB, more than "
                   f"{headroom:.0%} of the {available:,.0f} MB available")
    return out


def peak_memory(models=("resnet50", "efficientnet_b0"), train_batch=128, steps=2,
                probes=(4, 8), headroom=0.8, old_eval_batch=256):
    """Peak RSS of training and evaluation at each model's native size, in fresh processes.

    For each model: a training step (``speed.for_training``, SGD) at ``train_batch`` and,
    when that does not fit, at the largest power of two that does; evaluation at the
    derived batch (:func:`gluonres.analysis.footprint.inference_batch`, as ``fit`` and
    ``gluonres evaluate`` pick it) and at the former fixed batch ``old_eval_batch``.
    Each measurement is the peak-RSS mark of its own process after the network is built
    (:func:`memory_child`, :func:`eval_memory_child`); a batch predicted not to fit is
    left out with its prediction (:func:`_peak_at`).

    Parameters
    ----------
    models : sequence of str
    train_batch : int, default 128
        The recipes' training batch.
    steps : int, default 2
        Training steps or evaluation batches per process (the first one plans and
        allocates the memory).
    probes : (int, int), default (4, 8)
        Small batches measured first, to predict the larger ones.
    headroom : float, default 0.8
        Share of the available memory a predicted peak may take to be run.
    old_eval_batch : int, default 256

    Returns
    -------
    dict
        ``models``: one entry per model (``input_size``, ``activation_mb_per_image``,
        ``derived_eval_batch``, ``train``, ``train_fits``, ``eval``, ``eval_old``), with
        ``machine``, ``available_mb_at_start``, ``started``, ``finished``.
    """
    record = {"started": utc_now(), "machine": machine(),
              "available_mb_at_start": (available_memory() or 0) / 2 ** 20, "steps": steps,
              "probes": list(probes), "headroom": headroom, "train_batch": train_batch,
              "old_eval_batch": old_eval_batch, "models": []}
    for model in models:
        net = get_model(model)
        info = model_info(net)
        per_image = activation_bytes(net)
        derived = inference_batch(net, per_image=per_image)
        row = {"model": model, "input_size": info.input_size,
               "activation_mb_per_image": per_image / 2 ** 20, "derived_eval_batch": derived}
        train, evals = _probe("train", model, steps, probes), _probe("eval", model, steps, probes)
        row["train"] = _peak_at("train", model, train_batch, steps, train, headroom)
        if row["train"]["peak_rss_mb"] is None:
            fits = max(probes)
            available = (available_memory() or 0) / 2 ** 20
            slope, predicted = row["train"]["mb_per_image"], row["train"]["predicted_peak_rss_mb"]
            while 2 * fits < train_batch and (predicted - slope * (train_batch - 2 * fits)
                                              <= headroom * available):
                fits *= 2
            row["train_fits"] = _peak_at("train", model, fits, steps, train, headroom)
        row["eval"] = _peak_at("eval", model, derived, steps, evals, headroom)
        row["eval_old"] = _peak_at("eval", model, old_eval_batch, steps, evals, headroom)
        record["models"].append(row)
    record["finished"] = utc_now()
    return record


def command_peak_rss(argv):
    """Run a command under ``/usr/bin/time -v``; its exit code, peak RSS (MB) and seconds.

    The kernel's own account of the child (``ru_maxrss``), for a whole ``gluonres``
    command (data loading, training, evaluation, export).
    """
    proc = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", proc.stderr)
    seconds = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.group(1).split(":"))))
    return {"command": shlex.join(argv), "exit_code": proc.returncode,
            "peak_rss_mb": int(kb.group(1)) / 1024, "wall_s": seconds,
            "stderr_tail": proc.stderr.split("\tCommand being timed")[0].strip()[-2000:]}


def memory_table(record):
    """The peak-memory table of a :func:`peak_memory` record, as Markdown."""
    def cell(m):
        if m["peak_rss_mb"] is None:
            return f"not run (predicted {m['predicted_peak_rss_mb'] / 1024:,.1f} GB)"
        return f"{m['peak_rss_mb'] / 1024:,.1f} GB"
    train, old = record["train_batch"], record["old_eval_batch"]
    rows = [f"| model | activations per image | training, batch {train} | training, largest "
            f"batch that fits | evaluation, derived batch | evaluation, batch {old} (before) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for r in record["models"]:
        fits = r.get("train_fits")
        size = r["input_size"]
        rows.append(f"| {r['model']} at {size}x{size} | {r['activation_mb_per_image']:.0f} MB | "
                    f"{cell(r['train'])} ({r['train']['mb_per_image']:.0f} MB/image) | "
                    + (f"{cell(fits)} at {fits['batch']}" if fits else f"({train} fits)")
                    + f" | {cell(r['eval'])} at {r['eval']['batch']} | {cell(r['eval_old'])} |")
    return "\n".join(rows)


def write_peak_memory(path, command, end_to_end=(), **options):
    """:func:`peak_memory` plus whole commands (:func:`command_peak_rss`), as a JSON record.

    Parameters
    ----------
    path : str
        E.g. ``results/memory-224.json``; written atomically.
    command : str
        How the record was made, kept in it.
    end_to_end : sequence of list of str
        Commands to run under ``/usr/bin/time -v`` after the measurements.
    **options
        For :func:`peak_memory`.

    Returns
    -------
    dict
        The record.
    """
    record = peak_memory(**options)
    record["end_to_end"] = [command_peak_rss(list(argv)) for argv in end_to_end]
    record["command"] = command
    record["table"] = memory_table(record)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, json.dumps(record, indent=1, default=json_default) + "\n")
    return record
