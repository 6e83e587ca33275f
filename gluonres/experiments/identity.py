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
trained alike as one of the scale's comparison runs: quick (3 epochs of the 5,000-image
subset), a short run that shows which variants fail to train, not the paper's fine
differences; or under several seeds at the scale's length (``--seeds 0 1 2 --budget
full``: 10 epochs), when the record gives each variant's mean ± sd and whether it is told
apart from the original. The original unit and the 1x1 convolution shortcut are the
shortcut experiment's option A and C runs. All use option A where the shape changes, so
only the named variant differs from the original.

The original unit against full pre-activation on a deeper network, where the paper's
gap is largest, is the preactivation experiment
(:mod:`~gluonres.experiments.preactivation`).
"""

from gluonres.experiments import degradation
from gluonres.experiments.present import (comparisons, fmt_value, is_replicated, seeds_line,
                                          summarize_runs)
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

#: The record's families of variants.
FAMILIES = ("activations", "shortcuts")

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
    scale's comparison runs (:meth:`Runner.quick`) of its base network."""
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


def shortcut_gradient(units, scale=0.5, channels=16, size=8, seed=0):
    """How much gradient a stack of pre-activation units passes back when every shortcut
    is scaled by ``scale``, against identity shortcuts (2016 paper, Eqs. 6-8).

    With ``x_{l+1} = scale * x_l + F(x_l)`` the gradient's shortcut term is
    ``prod(scale) = scale ** units`` (the first term of Eq. 8). With ``F = 0`` (each
    unit's last convolution zeroed) that term is all that is left; with random (Xavier)
    weights and BatchNorm on the batch's statistics, as in training, the gradient also
    crosses the residual branches.

    Parameters
    ----------
    units : int
        Residual units in the stack (ResNet-20: 9, ResNet-110: 54).
    scale : float, default 0.5
        The shortcut's constant (2016 Fig. 2(b)).
    channels, size : int
        The input, ``(2, channels, size, size)``.
    seed : int
        Seed of the input, the arriving gradient and the weights.

    Returns
    -------
    dict
        ``{'scaled' | 'identity': {'shortcut_only': ratio, 'with_residual': ratio}}``,
        each ``|dE/dx_0| / |dE/dx_L|``, and ``'expected'``: ``scale ** units``.
    """
    import mxnet as mx
    import numpy as np
    from mxnet import gluon

    from gluonres.blocks import ResidualFactory

    rng = np.random.default_rng(seed)
    x = mx.nd.array(rng.normal(size=(2, channels, size, size)))
    g = mx.nd.array(rng.normal(size=x.shape))
    out = {"expected": scale ** units}
    for name, op in (("scaled", {"shortcut_op": "scale",
                                 "shortcut_op_args": {"scale": scale}}), ("identity", {})):
        out[name] = {}
        for branch in ("shortcut_only", "with_residual"):
            mx.random.seed(seed)
            stack = gluon.nn.HybridSequential()
            for _ in range(units):
                stack.add(ResidualFactory(channels, channels, arrangement="full_preact",
                                          shortcut="A", **op))
            stack.initialize(mx.init.Xavier(magnitude=2))
            if branch == "shortcut_only":
                for unit in stack:
                    last = [p for n, p in unit.collect_params().items()
                            if n.endswith("_weight") and len(p.shape) == 4][-1]
                    last.set_data(mx.nd.zeros(last.shape))
            _, dx = degradation.input_gradient(stack, x, g)
            out[name][branch] = float(dx.norm().asscalar() / g.norm().asscalar())
    return out


def compute(runner):
    scale = runner.scale.name
    done = {name: summarize_runs(runner.train_seeds(spec))
            for name, spec in runs(runner).items()}
    return {"units": "errors in percent", "base": BASE[scale],
            "activations": {k: done[k] for k in ACTIVATIONS},
            "shortcuts": {k: done[k] for k in SHORTCUT_VARIANTS},
            # every variant against the original unit; for a record of several seeds
            "comparisons": comparisons(done, [("original", k) for k in done
                                              if k != "original"]),
            "paper": PAPER}


def table(record, which=None):
    """Recorded errors of one family of variants (``'activations'`` or ``'shortcuts'``;
    default both) beside the paper's; a replicated family's as mean ± sd over seeds,
    followed by whether each variant is told apart from the original."""
    if which is None:
        return "\n\n".join(table(record, w) for w in FAMILIES)
    group = record[which]
    # a replicated family's numbers read 'mean ± sd', wider than one run's
    w = 18 if any(map(is_replicated, group.values())) else 10
    title = {"activations": "(2016 Table 2: ResNet-110 / 164)",
             "shortcuts": "(2016 Table 1: ResNet-110)"}
    lines = [f"{'variant':<30}{'params':>9}{'train err':>{w + 1}}{'test err':>{w}}  paper "
             + title[which]]
    figures = SHORTCUT_VARIANTS if which == "shortcuts" else ACTIVATIONS
    for name, m in group.items():
        paper = (PAPER["table1"][name] if which == "shortcuts"
                 else f"{PAPER['table2'][name][0]:.2f} / {PAPER['table2'][name][1]:.2f}")
        lines.append(f"{name:<30}{m['params']:>9,}{fmt_value(m, 'final_train_error'):>{w + 1}}"
                     f"{fmt_value(m, 'final_test_error'):>{w}}  {paper}  "
                     f"[{figures[name][1]}]")
    return "\n".join(lines + _replicate_lines(record, which))


def _replicate_lines(record, which):
    """Under a replicated family: what its numbers are and which variants are told apart
    from the original."""
    said = seeds_line(record[which].values())
    if not said:
        return []
    return [f"({said})"] + [c["text"] for c in record.get("comparisons", [])
                            if c["b"] in record[which]]


def markdown(record):
    out = []
    titles = {"activations": "Activation variants (2016 Table 2: ResNet-110 / ResNet-164)",
              "shortcuts": "Shortcut variants (2016 Table 1: ResNet-110)"}
    for which in FAMILIES:
        out += [f"{titles[which]}, ours on {record['base']}:", "",
                "| variant | params | train error (%) | test error (%) | paper (%) |",
                "| --- | ---: | ---: | ---: | --- |"]
        for name, m in record[which].items():
            paper = (PAPER["table1"][name] if which == "shortcuts"
                     else f"{PAPER['table2'][name][0]:.2f} / {PAPER['table2'][name][1]:.2f}")
            out.append(f"| {name} | {m['params']:,} | {fmt_value(m, 'final_train_error')} | "
                       f"{fmt_value(m, 'final_test_error')} | {paper} |")
        said = _replicate_lines(record, which)
        out += [""] + [f"- {line}" for line in said] if said else []
        out.append("")
    return "\n".join(out).rstrip()
