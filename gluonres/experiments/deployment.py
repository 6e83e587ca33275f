"""From a Gluon network to deployed files: hybridize, export, re-import, ONNX, INT8.

Measured side by side in one process on the same weights and input:

- hybridization: the same network run imperatively, hybridized, and hybridized with
  static memory (``static_alloc``, ``static_shape``, what gluonres trains and exports
  with), forward images/s at batch 1 and a larger batch;
- the export folder read back by :mod:`gluonres.runtime` without the model code, its
  logits against the in-memory network's;
- the ONNX file run by onnxruntime, its logits and speed;
- the oneDNN INT8 graph: speed against the FP32 graphs (calibrated on random images, so
  no accuracy here); the accuracy of INT8 on real data is the committed
  ``results/int8-resnet20_cifar.json`` (``gluonres int8-bench``), quoted.

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
#: Per scale: model, batches of the speed measurements, timed repeats.
SETTINGS = {"smoke": {"model": "resnet20_cifar", "batches": (1, 8), "repeats": 2},
            "cpu": {"model": "resnet20_cifar", "batches": (1, 64), "repeats": 7},
            "paper": {"model": "resnet56_cifar", "batches": (1, 128), "repeats": 7}}


def _nets(model, seed=0):
    """Three copies of ``model`` with the same He-initialised weights: imperative,
    hybridized, and hybridized with static memory."""
    import mxnet as mx

    import gluonres
    from .. import training

    nets = {}
    for mode in ("imperative", "hybridized", "hybridized static"):
        net = gluonres.get_model(model)
        training.initialize(net, seed)
        if mode == "hybridized":
            net.hybridize()
        elif mode == "hybridized static":
            net.hybridize(static_alloc=True, static_shape=True)
        nets[mode] = net
    reference = nets["imperative"].collect_params()
    for net in list(nets.values())[1:]:
        for name, p in net.collect_params().items():
            p.set_data(reference[name].data())
    x = mx.nd.random.uniform(-1, 1, shape=(2, 3, 32, 32))
    return nets, x


def hybridize_speedup(model="resnet20_cifar", batches=(1, 64), repeats=7):
    """Forward images/s imperative vs hybridized vs hybridized-static, side by side.

    Returns
    -------
    dict
        Per batch: ``img_s`` per mode, ``speedup`` of each mode over imperative; and
        ``max_abs_diff`` of the hybridized outputs from the imperative ones.
    """
    import mxnet as mx

    from ..quantize import throughput

    nets, x = _nets(model)
    ref = nets["imperative"](x).asnumpy()
    diff = {m: float(np.abs(n(x).asnumpy() - ref).max()) for m, n in nets.items()}
    out = {"model": model, "max_abs_diff": diff, "batches": {}}
    for batch in batches:
        xb = mx.nd.random.uniform(-1, 1, shape=(batch, 3, 32, 32))
        rates = throughput(nets, xb, repeats=repeats, iters=max(3, 64 // batch))
        out["batches"][str(batch)] = {
            "img_s": rates, "speedup": {m: r / rates["imperative"] for m, r in rates.items()}}
    return out


def export_roundtrip(model="resnet20_cifar", batch=64, repeats=7, folder=None):
    """Export with ONNX and INT8, read everything back, compare outputs and speed.

    Returns
    -------
    dict
        ``files`` (name -> bytes), ``runtime_max_abs_diff`` (the export read back by
        :mod:`gluonres.runtime` vs the in-memory network), ``onnx_max_abs_diff``,
        ``int8_top1_agreement`` (random weights and inputs: a mechanics check only), and
        ``img_s`` for the hybridized network, the re-imported FP32 graph, onnxruntime and
        INT8, measured side by side.
    """
    import mxnet as mx

    from .. import deploy, runtime
    from ..preprocess import Preprocess
    from ..quantize import Calibration, throughput

    nets, _ = _nets(model)
    net = nets["hybridized static"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    preprocess = Preprocess.fit(images, "channel")
    calibration = Calibration(images, {"data": "random uint8 images", "seed": 0})
    with tempfile.TemporaryDirectory(prefix="gluonres-deploy-") as tmp:
        folder = folder or tmp
        paths = deploy.export(net, folder, model, preprocess=preprocess, onnx=True,
                              calibration=calibration)
        fp32 = runtime.load_exported(folder, "fp32")
        int8 = runtime.load_exported(folder, "int8")
        x = preprocess(mx.nd.array(images, dtype="uint8"))
        ours = net(x).asnumpy()
        session = _onnx_session(paths["onnx"])
        run_onnx = lambda b: mx.nd.array(session.run(None, {"data": b.asnumpy()})[0])  # noqa: E731
        record = {
            "model": model, "batch": batch,
            "files": {os.path.basename(p): os.path.getsize(p) for p in paths.values()},
            "runtime_max_abs_diff": float(np.abs(fp32.net(x).asnumpy() - ours).max()),
            "onnx_max_abs_diff": float(np.abs(run_onnx(x).asnumpy() - ours).max()),
            "int8_top1_agreement": float((int8.net(x).asnumpy().argmax(1)
                                          == ours.argmax(1)).mean()),
        }
        record["img_s"] = throughput({"gluon hybridized": net, "re-imported FP32": fp32.net,
                                      "onnxruntime": run_onnx, "INT8 (oneDNN)": int8.net},
                                     x, repeats=repeats)
    return record


def _onnx_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


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
    return {"hybridize": hybridize_speedup(s["model"], s["batches"], s["repeats"]),
            "export": export_roundtrip(s["model"], max(s["batches"]), s["repeats"]),
            "int8_record": int8_accuracy(runner.out)}


def table(record):
    h = record["hybridize"]
    lines = [f"{h['model']}, forward images/s (speed-up over imperative):",
             f"{'batch':>6}" + "".join(f"{m:>26}" for m in next(iter(h['batches'].values()))
                                       ["img_s"])]
    for batch, r in h["batches"].items():
        lines.append(f"{batch:>6}" + "".join(f"{r['img_s'][m]:>17.0f} ({r['speedup'][m]:4.2f}x)"
                                             for m in r["img_s"]))
    e = record["export"]
    lines += ["", f"export read back: max |logit difference| {e['runtime_max_abs_diff']:.2e} "
              f"(runtime), {e['onnx_max_abs_diff']:.2e} (onnxruntime)",
              f"images/s at batch {e['batch']}: "
              + ", ".join(f"{k} {v:.0f}" for k, v in e["img_s"].items())]
    r = record.get("int8_record")
    if r:
        lines.append(f"INT8 on real data ({r['model']}, {r['test_images']:,} JPEG CIFAR-10 "
                     f"test images): accuracy {100 * r['fp32_accuracy']:.2f}% FP32 -> "
                     f"{100 * r['int8_accuracy']:.2f}% INT8, {r['int8_vs_fp32']:.2f}x FP32 "
                     f"hybridized, {r['int8_vs_fp32_fused']:.2f}x FP32 oneDNN-fused "
                     f"(`{r['command']}`)")
    return "\n".join(lines)


def plot(record):
    """Images/s per execution mode and batch (bars)."""
    import matplotlib.pyplot as plt

    h = record["hybridize"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    modes = list(next(iter(h["batches"].values()))["img_s"])
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        axes[0].bar(np.arange(len(h["batches"])) + i * width,
                    [r["img_s"][mode] for r in h["batches"].values()], width, label=mode)
    axes[0].set_xticks(np.arange(len(h["batches"])) + width, [f"batch {b}" for b in h["batches"]])
    axes[0].set_ylabel("images/s")
    axes[0].set_title(f"{h['model']}: imperative vs hybridized")
    axes[0].legend(fontsize=8)
    e = record["export"]
    axes[1].barh(list(e["img_s"]), list(e["img_s"].values()), color="C2")
    axes[1].set_xlabel(f"images/s, batch {e['batch']}")
    axes[1].set_title("the exported graphs")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y" if ax is axes[0] else "x")
    fig.tight_layout()
    return fig


def markdown(record):
    return "```\n" + table(record) + "\n```"
