"""Identity mappings in deep residual networks (the 2016 paper, Tables 1 and 2).

If both the shortcut ``h`` and the after-addition function ``f`` are identities,
``x_L = x_l + sum F(x_i)`` for any two units, and the gradient
``dE/dx_l = dE/dx_L (1 + d/dx_l sum F)`` never vanishes. The paper tests both halves:

- shortcut variants (Table 1, Fig. 2), where the shortcut is no longer an identity:
  constant scaling, exclusive gating, shortcut-only gating, 1x1 convolution, dropout;
- activation variants (Table 2, Fig. 4), where ``f`` moves: BN after addition (the
  seed's MXNet unit), ReLU before addition, ReLU-only pre-activation, and full
  pre-activation, against the original unit.

At ``cpu`` scale every variant is a 20-layer network (the paper: 110 and 164 layers)
trained alike as one of the scale's quick runs (3 epochs of the 5,000-image subset): a
short run that shows which variants fail to train, not the paper's fine differences.
The original unit and the 1x1 convolution shortcut are the shortcut experiment's
option A and C runs. All use option A where the
shape changes, so only the named variant differs from the original.
"""
import numpy as np

from gluonres.experiments.present import data_line, fmt_pct, history_of, summarize
from gluonres.experiments.runs import RunSpec


NAME = "identity"
TITLE = "Identity mappings: shortcut and activation variants (2016, Tables 1 and 2)"
#: The base network per scale (the paper's Tables 1-2 use ResNet-110; Table 2 also 164).
BASE = {"smoke": "resnet20_cifar", "cpu": "resnet20_cifar", "paper": "resnet110_cifar"}

#: variant name -> (get_model options, paper's figure)
ACTIVATIONS = {
    "original": ({}, "Fig. 4(a)"),
    "bn_after_add": ({"arrangement": "bn_after_add"}, "Fig. 4(b)"),
    "relu_before_add": ({"arrangement": "relu_before_add"}, "Fig. 4(c)"),
    "relu_preact": ({"arrangement": "relu_preact"}, "Fig. 4(d)"),
    "full_preact": ({"arrangement": "full_preact", "shortcut": "A"}, "Fig. 4(e)"),
}
SHORTCUT_VARIANTS = {
    "original": ({}, "Fig. 2(a)"),
    "constant scaling 0.5": ({"shortcut_op": "scale"}, "Fig. 2(b)"),
    "exclusive gating, b_g=-6": ({"shortcut_op": "exclusive_gate"}, "Fig. 2(c)"),
    "shortcut-only gating, b_g=-6": ({"shortcut_op": "shortcut_gate"}, "Fig. 2(d)"),
    "1x1 conv shortcut": ({"shortcut": "C"}, "Fig. 2(e)"),
    "dropout shortcut 0.5": ({"shortcut_op": "dropout"}, "Fig. 2(f)"),
}

PAPER = {
    "table1_source": "He et al. 2016, Table 1: CIFAR-10 test error (%), ResNet-110, "
                     "shortcut variants on every unit ('fail': error above 20%)",
    "table1": {"original": "6.61", "constant scaling 0.5": "fail (12.35 with 0.5 on F too)",
               "exclusive gating, b_g=-6": "8.70 (fail for b_g 0 to -5)",
               "shortcut-only gating, b_g=-6": "6.91 (12.86 for b_g=0)",
               "1x1 conv shortcut": "12.22", "dropout shortcut 0.5": "fail"},
    "table2_source": "He et al. 2016, Table 2: CIFAR-10 test error (%), activation "
                     "variants; ResNet-110 / ResNet-164",
    "table2": {"original": (6.61, 5.93), "bn_after_add": (8.17, 6.50),
               "relu_before_add": (7.84, 6.14), "relu_preact": (6.71, 5.91),
               "full_preact": (6.37, 5.46)},
}


def runs(runner):
    """Activation variants, then the shortcut variants not already among them: the
    scale's quick runs of its base network."""
    base = BASE[runner.scale.name]
    variants = {**{name: opts for name, (opts, _) in ACTIVATIONS.items()},
                **{name: opts for name, (opts, _) in SHORTCUT_VARIANTS.items()}}
    return {name: runner.quick(RunSpec(base, opts, label=name))
            for name, opts in variants.items()}


def param_counts(base="resnet20_cifar"):
    """Trainable parameters of every variant (deterministic)."""
    import gluonres
    from gluonres.analysis.summary import trainable_params

    variants = {**{k: v for k, (v, _) in ACTIVATIONS.items()},
                **{k: v for k, (v, _) in SHORTCUT_VARIANTS.items()}}
    return {name: trainable_params(gluonres.get_model(base, **opts))
            for name, opts in variants.items()}


def unit_layout(**options):
    """The operations of one residual unit in forward order, e.g. ``['conv', 'BN',
    'ReLU', 'conv', 'BN', 'add', 'ReLU']`` for the original unit (``options`` as for
    :class:`~gluonres.blocks.ResidualFactory`; 16 channels, shape kept)."""
    import json

    import mxnet as mx

    from gluonres.blocks import ResidualFactory

    names = {"Convolution": "conv", "BatchNorm": "BN", "relu": "ReLU", "Activation": "ReLU",
             "elemwise_add": "add", "_plus": "add", "broadcast_add": "add",
             "sigmoid": "sigmoid", "Dropout": "dropout", "_mul_scalar": "scale",
             "elemwise_mul": "mul", "broadcast_mul": "mul", "_rminus_scalar": "1-g"}
    unit = ResidualFactory(16, 16, **options)
    nodes = json.loads(unit(mx.sym.var("data")).tojson())["nodes"]
    return [names.get(n["op"], n["op"]) for n in nodes if n["op"] != "null"]


def compute(runner):
    specs = runs(runner)
    done = {name: summarize(runner.train(spec)) for name, spec in specs.items()}
    return {"units": "errors in percent", "base": BASE[runner.scale.name],
            "activations": {k: done[k] for k in ACTIVATIONS},
            "shortcuts": {k: done[k] for k in SHORTCUT_VARIANTS}, "paper": PAPER}


def table(record, which=None):
    """Recorded errors of one family of variants (``'activations'`` or ``'shortcuts'``;
    default both) beside the paper's."""
    if which is None:
        return "\n\n".join(table(record, w) for w in ("activations", "shortcuts"))
    lines = [f"{'variant':<30}{'params':>9}{'train err':>11}{'test err':>10}  paper "
             + ("(2016 Table 2: ResNet-110 / 164)" if which == "activations"
                else "(2016 Table 1: ResNet-110)")]
    figures = ACTIVATIONS if which == "activations" else SHORTCUT_VARIANTS
    for name, m in record[which].items():
        paper = (f"{PAPER['table2'][name][0]:.2f} / {PAPER['table2'][name][1]:.2f}"
                 if which == "activations" else PAPER["table1"][name])
        lines.append(f"{name:<30}{m['params']:>9,}{fmt_pct(m['final_train_error']):>11}"
                     f"{fmt_pct(m['final_test_error']):>10}  {paper}  [{figures[name][1]}]")
    return "\n".join(lines)


def plot(record, which="activations", names=None):
    """Training (dashed) and test (bold) curves of the variants."""
    import matplotlib.pyplot as plt

    from gluonres.train.logs import plot_curves

    group = record[which]
    names = names or list(group)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    plot_curves({n: history_of(group[n]) for n in names}, ax=ax)
    ax.set_title(f"{record['base']}: {which.replace('_', ' ')} variants\n{data_line(record)}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def bars(record):
    """Final test error of every variant, ours beside the paper's numeric ones."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, which in zip(axes, ("activations", "shortcuts")):
        names = list(record[which])
        ours = [record[which][n]["final_test_error"] for n in names]
        pos = np.arange(len(names))
        ax.barh(pos, ours, color="C0", label=f"ours ({record['base']}, {record['scale']})")
        if which == "activations":
            ax.barh(pos + 0.4, [PAPER["table2"][n][0] for n in names], height=0.4,
                    color="gray", label="paper, ResNet-110 (lossless)")
        ax.set_yticks(pos, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("test error (%)")
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def markdown(record):
    out = []
    for which, title in (("activations", "Activation variants (2016 Table 2: ResNet-110 / "
                          "ResNet-164)"), ("shortcuts", "Shortcut variants (2016 Table 1: "
                                           "ResNet-110)")):
        out += [f"{title}, ours on {record['base']}:", "",
                "| variant | params | train error (%) | test error (%) | paper (%) |",
                "| --- | ---: | ---: | ---: | --- |"]
        for name, m in record[which].items():
            paper = (f"{PAPER['table2'][name][0]:.2f} / {PAPER['table2'][name][1]:.2f}"
                     if which == "activations" else PAPER["table1"][name])
            out.append(f"| {name} | {m['params']:,} | {fmt_pct(m['final_train_error'])} | "
                       f"{fmt_pct(m['final_test_error'])} | {paper} |")
        out.append("")
    return "\n".join(out).rstrip()
