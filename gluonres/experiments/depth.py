"""CIFAR-10 ResNets of increasing depth (2015 paper, Sec. 4.2, Table 6).

Exact parameter counts of ResNet-20 ... ResNet-1202 beside the paper's; the recorded
errors of the depths trained at this scale (reused from the degradation and bottleneck
runs); and ResNet-1202 built and stepped once, its memory measured in a fresh process.
"""
import json
import os
import subprocess
import sys
import time

from ..analysis import trainable_params
from ..errors import GluonresError
from . import bottleneck
from .common import RunSpec, fmt_pct, summarize

NAME = "depth"
TITLE = "CIFAR-10 depth table: ResNet-20 to ResNet-1202 (2015, Table 6)"
DEPTHS = (20, 32, 44, 56, 110, 1202)

PAPER = {
    "source": "He et al. 2015, Table 6: CIFAR-10 test error (%), 64k iterations, lossless "
              "CIFAR-10; ResNet-110: best of 5 runs (mean 6.61 +- 0.16)",
    "params_m": {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4},
    "test_error": {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93},
}
#: The one-step memory measurement per scale: model and batch size.
MEMORY = {"smoke": ("resnet56_cifar", 8), "cpu": ("resnet1202_cifar", 32),
          "paper": ("resnet1202_cifar", 128)}


def runs(scale):
    """The trained depths: 20 and 56 (degradation runs), 110 (bottleneck run)."""
    return ([RunSpec(f"resnet{d}_cifar") for d in (20, 56)]
            + [s for s in bottleneck.runs(scale) if s.model == "resnet110_cifar"])


def param_counts():
    """Exact trainable parameters of each depth beside the paper's (deterministic)."""
    import gluonres

    return [{"depth": d, "model": f"resnet{d}_cifar",
             "params": trainable_params(gluonres.get_model(f"resnet{d}_cifar")),
             "paper_params_m": PAPER["params_m"][d]} for d in DEPTHS]


def param_table(rows):
    lines = [f"{'depth':>6}{'params':>14}{'paper (Table 6)':>18}"]
    lines += [f"{r['depth']:>6}{r['params']:>14,}{r['paper_params_m']:>16}M" for r in rows]
    return "\n".join(lines)


def one_step_memory(model="resnet1202_cifar", batch=32, timeout=1800):
    """Build ``model``, take one SGD step on a random batch, in a fresh process.

    The child reports its peak resident memory (``VmHWM``) after building and
    initialising the network and, after the kernel's peak mark is reset, over the
    forward/backward/update step alone; with the build and step times and the loss.

    Returns
    -------
    dict
        ``model``, ``batch``, ``params``, ``build_s``, ``step_s``, ``loss``,
        ``rss_after_build_mb``, ``peak_build_mb``, ``peak_step_mb`` (``None`` where the
        kernel does not allow resetting the mark: then ``peak_total_mb`` only).

    Raises
    ------
    GluonresError
        If the child fails (e.g. out of memory), with the end of its error output.
    """
    code = ("from gluonres.experiments.depth import _memory_child; "
            f"_memory_child({model!r}, {batch})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise GluonresError(f"the one-step run of {model} at batch {batch} failed "
                            f"(exit {proc.returncode}): {proc.stderr.strip()[-400:]}; try a "
                            "smaller batch")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def _memory_child(model, batch):
    import mxnet as mx
    import numpy as np

    import gluonres
    from .. import training

    start = time.perf_counter()
    net = gluonres.get_model(model)
    training.initialize(net, seed=0)
    config = training.TrainConfig(lr=0.01)  # the 2015 warm-up rate of ResNet-1202
    x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, 32, 32))
    y = mx.nd.array(np.arange(batch) % net.classes)
    net(x[:1])
    trainer = training.prepare(net, config)
    mx.nd.waitall()
    build_s = time.perf_counter() - start
    rss_after_build, peak_build = _status_mb("VmRSS"), _status_mb("VmHWM")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak mark (VmHWM) to the current RSS
        resettable = True
    except OSError:
        resettable = False
    start = time.perf_counter()
    out = training.train_step(net, trainer, mx.gluon.loss.SoftmaxCrossEntropyLoss(), x, y)
    loss = float(out.asnumpy()[0])
    step_s = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    print(json.dumps({"model": model, "batch": batch, "params": trainable_params(net),
                      "build_s": build_s, "step_s": step_s, "loss": loss,
                      "rss_after_build_mb": rss_after_build, "peak_build_mb": peak_build,
                      "peak_step_mb": peak if resettable else None,
                      "peak_total_mb": max(peak, peak_build),
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}))


def compute(runner):
    done = [runner.train(spec) for spec in runs(runner.scale.name)]
    model, batch = MEMORY[runner.scale.name]
    return {"units": "errors in percent, memory in MiB",
            "param_counts": param_counts(),
            "models": {run["model"]: {**summarize(run), "depth": int(run["model"][6:-6])}
                       for run in done},
            "budgets": {"resnet20_cifar": "the scale's", "resnet56_cifar": "the scale's",
                        "resnet110_cifar": bottleneck.BUDGET[runner.scale.name]},
            "one_step": one_step_memory(model, batch), "paper": {
                "source": PAPER["source"],
                "params_m": {str(k): v for k, v in PAPER["params_m"].items()},
                "test_error": {str(k): v for k, v in PAPER["test_error"].items()}}}


def table(record):
    """Parameters and errors per depth beside Table 6."""
    trained = {m["depth"]: m for m in record["models"].values()}
    lines = [f"{'depth':>6}{'params':>12}{'paper':>8}{'iterations':>12}{'train err':>11}"
             f"{'test err':>10}{'paper test':>12}"]
    for r in record["param_counts"]:
        d = r["depth"]
        m = trained.get(d, {})
        lines.append(f"{d:>6}{r['params']:>12,}{r['paper_params_m']:>7}M"
                     f"{m.get('iterations', ''):>12}{fmt_pct(m.get('final_train_error')):>11}"
                     f"{fmt_pct(m.get('final_test_error')):>10}"
                     f"{PAPER['test_error'][d]:>12.2f}")
    return "\n".join(lines)


def memory_line(record):
    s = record["one_step"]
    step = (f"{s['peak_step_mb']:,.0f} MiB peak during the step" if s["peak_step_mb"]
            else f"{s['peak_total_mb']:,.0f} MiB peak overall")
    return (f"{s['model']} ({s['params']:,} parameters), batch {s['batch']}: built and "
            f"initialised in {s['build_s']:.1f} s ({s['rss_after_build_mb']:,.0f} MiB "
            f"resident, {s['peak_build_mb']:,.0f} MiB peak); one SGD step in "
            f"{s['step_s']:.1f} s, {step}; loss {s['loss']:.3f}")


def plot(record):
    """Test error against depth: ours (this scale) and the paper's Table 6."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    depths = list(PAPER["test_error"])
    ax.semilogx(depths, [PAPER["test_error"][d] for d in depths], "s--", color="gray",
                label="paper, Table 6 (lossless CIFAR-10, 64k it.)")
    ours = sorted((m["depth"], m["final_test_error"], m["iterations"])
                  for m in record["models"].values())
    ax.semilogx([d for d, _, _ in ours], [e for _, e, _ in ours], "o-", color="C0",
                label=f"ours, {record['scale']} scale (JPEG CIFAR-10)")
    for d, e, it in ours:
        ax.annotate(f"{it} it.", (d, e), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("depth")
    ax.set_ylabel("test error (%)")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def markdown(record):
    trained = {m["depth"]: m for m in record["models"].values()}
    rows = ["| depth | params | paper params | iterations | train error (%) | test error (%) "
            "| paper test error (%), Table 6 |", "| ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: |"]
    for r in record["param_counts"]:
        m = trained.get(r["depth"], {})
        rows.append(f"| {r['depth']} | {r['params']:,} | {r['paper_params_m']}M | "
                    f"{m.get('iterations', '–')} | {fmt_pct(m.get('final_train_error'))} | "
                    f"{fmt_pct(m.get('final_test_error'))} | "
                    f"{PAPER['test_error'][r['depth']]:.2f} |")
    return "\n".join(rows + ["", f"- {memory_line(record)}"])
