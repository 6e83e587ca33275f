"""From a Gluon network to deployed files: hybridize, export, re-import, ONNX, INT8.

- speed, measured side by side in one process (:func:`gluonres.measure.bench.bench_model`):
  forward and training images/s of the network run imperatively and hybridized (the
  hybridize speed-up), GluonCV's same network, the ONNX file under onnxruntime, and
  the oneDNN INT8 graph;
- the round trip: the network exported (symbol, params, manifest, ONNX, INT8), the
  export read back by :mod:`gluonres.deploy.runtime` without the model code and the ONNX file
  run by onnxruntime, their logits against the in-memory network's;
- INT8 on real data: the committed ``results/int8-resnet20_cifar.json``
  (``gluonres int8-bench``, trained weights, the JPEG CIFAR-10 test set), quoted.

Speed numbers depend on the machine and its load; they are measured, never compared
by tests.
"""
import json
import os
import tempfile

import numpy as np


NAME = "deployment"
TITLE = "Deployment: hybridize, export, re-import, ONNX and INT8, measured"
INT8_RECORD = "int8-resnet20_cifar.json"
#: Per scale: model and the benchmark's batch, timed repeats, warm-up calls, fewest
#: calls per sample.
SETTINGS = {"smoke": {"model": "resnet20_cifar", "batch": 4, "repeats": 1, "warmup": 1,
                      "iters": 1},
            "cpu": {"model": "resnet20_cifar", "batch": 64, "repeats": 5, "warmup": 2,
                    "iters": 2},
            "paper": {"model": "resnet56_cifar", "batch": 128, "repeats": 5, "warmup": 2,
                      "iters": 2}}
#: The benchmark's speed keys shown here, with their labels.
SPEED = {"imperative_fwd_img_s": "gluonres imperative", "hybrid_fwd_img_s": "gluonres hybridized",
         "gluoncv_fwd_img_s": "GluonCV hybridized", "onnxruntime_fwd_img_s": "onnxruntime",
         "int8_fwd_img_s": "INT8 (oneDNN)", "imperative_train_img_s": "gluonres imperative",
         "hybrid_train_img_s": "gluonres hybridized", "gluoncv_train_img_s": "GluonCV hybridized"}


def speed(model="resnet20_cifar", batch=64, repeats=5, warmup=2, iters=2):
    """:func:`gluonres.measure.bench.bench_model` (no external peers), with the speed-ups.

    Returns
    -------
    dict
        The benchmark's record plus ``hybridize_speedup_fwd`` and
        ``hybridize_speedup_train`` (hybridized over imperative images/s).
    """
    from gluonres.measure import bench

    record = bench.bench_model(model, batch, repeats, warmup, iters)
    r = bench.ratios(record)
    record["hybridize_speedup_fwd"] = r["hybrid_vs_imperative_fwd"]
    record["hybridize_speedup_train"] = r["hybrid_vs_imperative_train"]
    return record


def export_roundtrip(model="resnet20_cifar", batch=8):
    """Export a He-initialised ``model`` with ONNX and INT8 and read everything back.

    Returns
    -------
    dict
        ``files`` (name -> bytes), ``runtime_max_abs_diff`` (the export read back by
        :mod:`gluonres.deploy.runtime` vs the in-memory network), ``onnx_max_abs_diff``
        (onnxruntime vs the network) and ``int8_top1_agreement`` (random weights and
        inputs: a check of the mechanics only, the accuracy on real data is the
        ``int8-bench`` record).
    """
    import mxnet as mx

    import gluonres
    from gluonres import deploy
    from gluonres.data.preprocess import Preprocess
    from gluonres.deploy import runtime
    from gluonres.deploy.quantize import Calibration
    from gluonres.models.init import he_initialize

    net = gluonres.get_model(model)
    he_initialize(net, 0)
    images = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    preprocess = Preprocess.fit(images, "channel")
    calibration = Calibration(images, {"data": "random uint8 images", "seed": 0})
    with tempfile.TemporaryDirectory(prefix="gluonres-deploy-") as folder:
        paths = deploy.export(net, folder, model, preprocess=preprocess, onnx=True,
                              calibration=calibration)
        x = preprocess(mx.nd.array(images, dtype="uint8"))
        ours = net(x).asnumpy()
        fp32 = runtime.load_exported(folder, "fp32").net(x).asnumpy()
        int8 = runtime.load_exported(folder, "int8").net(x).asnumpy()
        onnx_out = runtime.onnx_session(paths["onnx"]).run(None, {"data": x.asnumpy()})[0]
        return {"model": model, "batch": batch,
                "files": {os.path.basename(p): os.path.getsize(p) for p in paths.values()},
                "runtime_max_abs_diff": float(np.abs(fp32 - ours).max()),
                "onnx_max_abs_diff": float(np.abs(onnx_out - ours).max()),
                "int8_top1_agreement": float((int8.argmax(1) == ours.argmax(1)).mean())}


def int8_accuracy(out="results"):
    """The committed ``int8-bench`` record (real weights, real data), or ``None``."""
    path = os.path.join(out, INT8_RECORD)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        r = json.load(f)
    keep = ("model", "weights", "test_images", "fp32_accuracy", "int8_accuracy",
            "accuracy_drop_points", "fp32_img_s", "fp32_fused_img_s", "int8_img_s",
            "int8_vs_fp32", "int8_vs_fp32_fused", "batch", "command", "machine")
    return {k: r[k] for k in keep if k in r}


def compute(runner):
    s = SETTINGS[runner.scale.name]
    return {"speed": speed(s["model"], s["batch"], s["repeats"], s["warmup"], s["iters"]),
            "speed_batch": s["batch"],
            "export": export_roundtrip(s["model"]), "int8_record": int8_accuracy(runner.out)}


def table(record):
    """Speeds, the round trip's differences and the INT8 record, as text."""
    sp = record["speed"]
    lines = [f"{sp['model']}, images/s at batch {record['speed_batch']} (measured side by "
             "side, median of the repeats):"]
    for kind, suffix in (("forward", "_fwd_img_s"), ("training step", "_train_img_s")):
        lines.append(f"  {kind}: " + ", ".join(
            f"{label} {sp[key]:.0f}" for key, label in SPEED.items()
            if key.endswith(suffix) and sp.get(key)))
    lines.append(f"  hybridize speed-up: {sp['hybridize_speedup_fwd']:.2f}x forward, "
                 f"{sp['hybridize_speedup_train']:.2f}x training")
    e = record["export"]
    lines += [f"export read back: max |logit difference| {e['runtime_max_abs_diff']:.2e} "
              f"(gluonres.deploy.runtime), {e['onnx_max_abs_diff']:.2e} (onnxruntime); INT8 top-1 "
              f"agreement {100 * e['int8_top1_agreement']:.0f}% (random weights)",
              "files: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in e["files"].items())]
    r = record.get("int8_record")
    if r:
        lines.append(f"INT8 on real data ({r['model']}, {r['test_images']:,} JPEG CIFAR-10 "
                     f"test images): accuracy {100 * r['fp32_accuracy']:.2f}% FP32 -> "
                     f"{100 * r['int8_accuracy']:.2f}% INT8, {r['int8_vs_fp32']:.2f}x FP32 "
                     f"hybridized, {r['int8_vs_fp32_fused']:.2f}x FP32 oneDNN-fused "
                     f"(`{r['command']}`)")
    return "\n".join(lines)


def plot(record):
    """Images/s of every way of running the network, forward and training (bars)."""
    import matplotlib.pyplot as plt

    sp = record["speed"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    for ax, (kind, suffix) in zip(axes, (("forward", "_fwd_img_s"),
                                         ("training step", "_train_img_s"))):
        rows = [(label, sp[key]) for key, label in SPEED.items()
                if key.endswith(suffix) and sp.get(key)]
        ax.barh([r[0] for r in rows], [r[1] for r in rows], color="C0")
        ax.invert_yaxis()
        ax.set_xlabel(f"images/s, batch {record['speed_batch']}")
        ax.set_title(f"{sp['model']}: {kind}")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def markdown(record):
    return "```\n" + table(record) + "\n```"
