"""CIFAR-10 ResNets of increasing depth (2015 paper, Sec. 4.2, Table 6).

Exact parameter counts of ResNet-20 ... ResNet-1202 beside the paper's; the recorded
errors of the depths trained at this scale (ResNet-20 and -56 are the degradation runs,
ResNet-32 and -44 train with their settings: at ``cpu`` scale all 50,000 images for 16
epochs; ResNet-110 at ``paper`` scale); at ``cpu`` scale also the 45-epoch ResNet-20 of
``gluonres train`` (:data:`LONGER_RECORD`), where its record is, as the longer point; and
ResNet-1202 built and stepped, its peak memory measured in a fresh process, ordinary and
with gradient checkpointing (:func:`gluonres.measure.memory.memory`).
"""
import json
import os

from gluonres.analysis.summary import trainable_params
from gluonres.errors import GluonresError
from gluonres.experiments import bottleneck, degradation
from gluonres.experiments.present import RESNET110_2015, fmt_pct, summarize


NAME = "depth"
TITLE = "CIFAR-10 depth table: ResNet-20 to ResNet-1202 (2015, Table 6)"
DEPTHS = (20, 32, 44, 56, 110, 1202)
#: Depths trained with the degradation runs' settings (2015, Table 6 and Fig. 6).
TRAINED = (20, 32, 44, 56)
#: Per scale: a ``gluonres train`` record in the records folder whose longer run of the
#: same data is shown beside the series (its recipe differs: cosine decay, 45 epochs).
LONGER_RECORD = {"cpu": "resnet20_cifar-cifar10jpg.json"}

PAPER = {
    "source": "He et al. 2015, Table 6: CIFAR-10 test error (%), 64k iterations, lossless "
              "CIFAR-10; ResNet-110: best of 5 runs (mean 6.61 +- 0.16)",
    "params_m": {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4},
    "test_error": {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93},
}
#: The memory measurement per scale: model, batch and training steps (the first step,
#: which plans and allocates, is left out of the step time, not of the peak).
MEMORY = {"smoke": ("resnet56_cifar", 8, 1), "cpu": ("resnet1202_cifar", 8, 1),
          "paper": ("resnet1202_cifar", 128, 3)}


def runs(scale):
    """The trained depths: :data:`TRAINED` with the degradation runs' settings (20 and 56
    are those runs), and at ``paper`` scale 110 (the bottleneck experiment's run; below
    it that run is shorter than the series, so it is left out)."""
    return ([degradation.cifar_run(f"resnet{d}_cifar", scale) for d in TRAINED]
            + [s for s in bottleneck.runs(scale)
               if s.model == "resnet110_cifar" and scale == "paper"])


def longer_point(scale, out="results"):
    """The :data:`LONGER_RECORD` of ``scale`` in ``out``, reduced to what the table and
    :func:`~gluonres.experiments.present.depth_figure` show, or ``None`` when the scale
    has none or it is missing.

    Returns
    -------
    dict or None
        ``model``, ``depth``, ``iterations``, ``epochs``, ``schedule``,
        ``final_test_error`` (%), ``command``, ``record`` (its file name).
    """
    name = LONGER_RECORD.get(scale)
    path = name and os.path.join(out, name)
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        r = json.load(f)
    return {"model": r["model"], "depth": int(r["model"][6:-6]),
            "iterations": r["total_iterations"], "epochs": r["config"]["epochs"],
            "schedule": r["config"]["schedule"],
            "final_test_error": 100 * (1 - r["test_accuracy"]), "command": r["command"],
            "record": name}


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


def memory(model, batch, steps):
    """Peak memory and time of ``model``'s training steps, ordinary and checkpointed.

    :func:`gluonres.measure.memory.memory`: each mode builds the network in a fresh process and
    reports the peak resident memory of its steps.

    Raises
    ------
    GluonresError
        If a child process fails (e.g. out of memory), naming a smaller batch as the fix.
    """
    from gluonres.measure.memory import memory

    try:
        return memory(model, batch, steps)
    except RuntimeError as err:
        raise GluonresError(f"measuring {model} at batch {batch} failed ({err}); try a "
                            "smaller batch") from None


def compute(runner):
    done = [runner.train(spec) for spec in runs(runner.scale.name)]
    model, batch, steps = MEMORY[runner.scale.name]
    return {"units": "errors in percent, memory in MiB",
            "param_counts": param_counts(),
            "models": {run["model"]: {**summarize(run), "depth": int(run["model"][6:-6])}
                       for run in done},
            "longer": longer_point(runner.scale.name, runner.out),
            "memory": memory(model, batch, steps), "paper": {
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
                     f"{PAPER['test_error'][d]:>12.2f}{'*' if d == 110 else ''}")
    return "\n".join(lines + [_RESNET110_NOTE] + _longer_lines(record)
                     + ["", memory_line(record)])


#: The paper's ResNet-110 entry is its best run; the mean is what the 2016 paper quotes.
_RESNET110 = (f"best of 5 runs; mean {RESNET110_2015['mean']:.2f} ± "
              f"{RESNET110_2015['std']:.2f}")
_RESNET110_NOTE = f"* ResNet-110: {_RESNET110} (He et al. 2015, Table 6)"


def _longer_lines(record):
    """The longer point as a sentence, in a list (empty without one)."""
    p = record.get("longer")
    if not p:
        return []
    return ["", f"longer run: {p['model']}, {p['epochs']} epochs ({p['iterations']:,} "
                f"updates, {p['schedule']} schedule), test error {p['final_test_error']:.2f}% "
                f"({p['record']}: {p['command']})"]


def memory_line(record):
    """The memory measurement in one sentence."""
    m = record["memory"]
    s, c = m["static"], m["checkpointed"]
    # a single step is also the first, whose time is mostly the graph's set-up
    timed = "for the one step, set-up included" if m["steps"] == 1 else "per step"
    return (f"{m['model']}, batch {m['batch']}, built and trained {m['steps']} step(s) in a "
            f"fresh process per mode: peak resident memory {s['peak_rss_mb']:,.0f} MiB "
            f"ordinary, {c['peak_rss_mb']:,.0f} MiB checkpointed ({100 * m['memory_saved']:.0f}"
            f"% less); {s['median_step_s']:.1f} s vs {c['median_step_s']:.1f} s {timed}")


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
                    f"{PAPER['test_error'][r['depth']]:.2f}"
                    f"{f' ({_RESNET110})' if r['depth'] == 110 else ''} |")
    longer = [f"- {line}" for line in _longer_lines(record) if line]
    return "\n".join(rows + ["", *longer, f"- {memory_line(record)}"])
