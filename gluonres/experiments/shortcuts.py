"""Identity vs projection shortcuts (2015 paper, Sec. 3.3 and 4.1, Table 3).

Where a stage changes the shape, a shortcut must match dimensions:

- option A: identity, with the extra channels zero-padded (and ``x[:, :, ::2, ::2]``):
  no parameters;
- option B: identity, and a 1x1 projection (with BN) where the shape changes;
- option C: a 1x1 projection on every shortcut.

Parameters and multiply-adds are read off the graph for ResNet-34 (the paper's
Table 3) and ResNet-20 on CIFAR-10 (whose 2015 runs use option A); the three options of
ResNet-20 are trained alike, as the scale's comparison runs: quick single runs, or under
several seeds (``--seeds 0 1 2 --budget full``), when the record gives each option's
mean ± sd and whether the options are told apart.
"""
import numpy as np

from gluonres.analysis.summary import summary
from gluonres.experiments.present import (comparisons, fmt_value, is_replicated, seeds_line,
                                          summarize_runs)
from gluonres.experiments.runs import RunSpec


NAME = "shortcuts"
TITLE = "Dimension matching: shortcut options A, B and C (2015, Sec. 3.3, Table 3)"
OPTIONS = ("A", "B", "C")
CIFAR_MODEL = "resnet20_cifar"

PAPER = {
    "source": "He et al. 2015, Table 3: ImageNet validation error (10-crop), ResNet-34",
    "top1": {"A": 25.03, "B": 24.52, "C": 24.19},
    "top5": {"A": 7.76, "B": 7.46, "C": 7.40},
    "plain34": {"top1": 28.54, "top5": 10.02},
    "claim": "all three options are much better than the plain network; B is slightly "
             "better than A, C marginally better than B, and the differences are small: "
             "projections are not essential for addressing the degradation problem",
}


def runs(runner):
    """ResNet-20 with options A, B and C: quick runs of the scale (option A and C are
    shared with the identity experiment)."""
    return [runner.quick(RunSpec(CIFAR_MODEL, {} if o == "A" else {"shortcut": o},
                                 label=f"option {o}")) for o in OPTIONS]


def counts(models=("resnet20_cifar", "resnet34")):
    """Parameters and multiply-adds of each option, from the graph (deterministic).

    Returns
    -------
    list of dict
        ``model``, ``option``, ``input``, ``params``, ``macs``, ``shortcut_params``.
    """
    import gluonres

    rows = []
    for model in models:
        for option in OPTIONS:
            net = gluonres.get_model(model, shortcut=option)
            s = summary(net)
            shortcut = sum(int(np.prod(p.shape)) for n, p in net.collect_params().items()
                           if "shortcut" in n and p.grad_req != "null")
            rows.append({"model": model, "option": option,
                         "input": "x".join(map(str, s.input_shape[2:])), "params": s.params,
                         "macs": s.macs, "shortcut_params": shortcut})
    return rows


def counts_table(rows):
    """:func:`counts` as text."""
    lines = [f"{'model':<16}{'option':>7}{'input':>9}{'params':>14}{'of which shortcuts':>20}"
             f"{'mult-adds':>16}"]
    for r in rows:
        lines.append(f"{r['model']:<16}{r['option']:>7}{r['input']:>9}{r['params']:>14,}"
                     f"{r['shortcut_params']:>20,}{r['macs']:>16,}")
    return "\n".join(lines)


def zero_pad_example():
    """Option A on a small tensor: 2 channels of 4x4 -> 4 channels of 2x2.

    Returns ``(x, y)`` as numpy arrays: ``y`` is ``x[:, :, ::2, ::2]`` with one zero
    channel before and one after (the identity lands in the middle channels).
    """
    import mxnet as mx

    from gluonres.blocks import ZeroPadShortcut

    x = mx.nd.arange(1, 33).reshape((1, 2, 4, 4))
    return x.asnumpy(), ZeroPadShortcut(2, 4, 2)(x).asnumpy()


#: Pairs whose test errors a replicated record compares.
PAIRS = [("A", "B"), ("B", "C"), ("A", "C")]


def compute(runner):
    done = [runner.train_seeds(spec) for spec in runs(runner)]
    models = {o: summarize_runs(seeded) for o, seeded in zip(OPTIONS, done)}
    return {"units": "errors in percent", "models": models,
            "comparisons": comparisons(models, PAIRS), "counts": counts(), "paper": PAPER}


def table(record):
    """Recorded CIFAR errors of A/B/C beside the paper's ImageNet numbers (mean ± sd over
    seeds, and whether the options are told apart, for a replicated record)."""
    models = record["models"]
    # a replicated record's numbers read 'mean ± sd', wider than one run's
    w = 18 if any(map(is_replicated, models.values())) else 10
    lines = [f"{'option':<8}{'params':>10}{'train err':>{w + 1}}{'test err':>{w}}"
             f"{'paper ResNet-34 top-1 / top-5 (ImageNet)':>44}"]
    for o, m in models.items():
        lines.append(f"{o:<8}{m['params']:>10,}{fmt_value(m, 'final_train_error'):>{w + 1}}"
                     f"{fmt_value(m, 'final_test_error'):>{w}}"
                     f"{PAPER['top1'][o]:>36.2f} / {PAPER['top5'][o]:.2f}")
    plain = PAPER["plain34"]
    lines.append(f"{'plain':<8}{'(not trained here)':>{10 + 2 * w + 1}}"
                 f"{plain['top1']:>36.2f} / {plain['top5']:.2f}")
    return "\n".join(lines + _replicate_lines(record))


def _replicate_lines(record):
    """Under a replicated record's tables: what its numbers are and the comparisons."""
    said = seeds_line(record["models"].values())
    return ([f"({said})"] + [c["text"] for c in record.get("comparisons", [])]
            if said else [])


def markdown(record):
    rows = ["| ResNet-20 option | params | train error (%) | test error (%) | paper: ResNet-34 "
            "top-1 / top-5 (%), ImageNet, Table 3 |", "| --- | ---: | ---: | ---: | ---: |"]
    for o, m in record["models"].items():
        rows.append(f"| {o} | {m['params']:,} | {fmt_value(m, 'final_train_error')} | "
                    f"{fmt_value(m, 'final_test_error')} | {PAPER['top1'][o]:.2f} / "
                    f"{PAPER['top5'][o]:.2f} |")
    rows.append(f"| plain (paper's plain-34; not trained here) | – | – | – | "
                f"{PAPER['plain34']['top1']:.2f} / {PAPER['plain34']['top5']:.2f} |")
    said = _replicate_lines(record)
    rows += [""] + [f"- {line}" for line in said] if said else []
    rows += ["", "| model | option | params | mult-adds |", "| --- | --- | ---: | ---: |"]
    rows += [f"| {r['model']} | {r['option']} | {r['params']:,} | {r['macs']:,} |"
             for r in record["counts"]]
    return "\n".join(rows)
