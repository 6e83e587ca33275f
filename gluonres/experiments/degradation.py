"""The degradation problem (2015 paper, Sec. 4.2, Fig. 1 and Fig. 6) and the gradient
argument behind its cure.

Plain networks of 20 and 56 layers, and the same networks with identity shortcuts
(ResNet-20/56, option A), trained alike on CIFAR-10: the deeper plain network ends with
the *higher training error* (an optimisation problem, not overfitting), the deeper
ResNet does not. The seed's ResNet-18 (the ImageNet layout with the original MXNet
example's unit, BN after the addition) is trained with and without its shortcuts too, as
the experiment's comparison runs: quick single runs, or under several seeds
(``--seeds 0 1 2 --budget full``), when the record gives the pair's mean ± sd and whether
the two are told apart. The four CIFAR networks train once (seed 0) either way.

Gradient argument: in a residual unit ``h = x + F(x)``, so ``dh/dx = 1 + dF/dx`` and
the gradient reaching an early layer is a product of factors near one; in a plain
network it is a product of ``dF/dx`` alone. The per-layer gradient norms at
initialisation and after training (:func:`gluonres.analysis.gradient_norms`) show it.
"""
from gluonres.experiments.present import (comparisons, fmt_pct, fmt_value, is_replicated,
                                          seeds_line, summarize, summarize_runs)
from gluonres.experiments.runs import RunSpec


NAME = "degradation"
TITLE = "Degradation: plain vs residual networks on CIFAR-10 (2015, Fig. 1 and Fig. 6)"

CIFAR_MODELS = ("plain20_cifar", "plain56_cifar", "resnet20_cifar", "resnet56_cifar")
#: The seed's ResNet-18: the ImageNet layout (7x7/2 stem, max pool, 64-512 widths,
#: option B) built from its MXNet unit, BN after the addition; run on 32x32 images.
SEED_OPTIONS = {"arrangement": "bn_after_add"}
SEED_RUNS = (RunSpec("resnet18", SEED_OPTIONS), RunSpec("plain18", SEED_OPTIONS))
#: Below ``paper`` scale all four CIFAR networks warm up alike, at 0.01 until the
#: training error is below 80% (the paper's own remedy for ResNet-110, Sec. 4.2). A
#: compressed run has no room for a bad start: from He initialisation ResNet-56 starts
#: at loss 5.2, and at lr 0.1 its loss reached 17 within 8 updates; in the first
#: ``cpu`` attempt it ended its 390 updates at 84% training error, and plain-56 at 89%.
COMPRESSED_TRAIN = {"warmup": "error"}
#: At ``cpu`` scale these four runs are longer than the scale's others: all 50,000
#: training images for 16 epochs (6,240 updates of 128, about 5.6 h on 2 cores). The
#: depth advantage needs time at lr 0.1: with the scale's 5,000 images and 390 updates,
#: ResNet-56 (warmed up) ended at 56.3% training error against ResNet-20's 47.9%; with
#: all 50,000 images for 8 epochs (3,120 updates, 4 epochs at lr 0.1) the gap shrank
#: every epoch (7.5, 5.7, 3.8, 2.3 points at lr 0.1; 0.9, 0.5, 0.4, 0.3 after the drops)
#: but ResNet-56 still ended 0.3 points above (19.94% vs 19.67%; test 21.1% vs 20.2%).
LONGER = {"cpu": {"train_images": 50_000, "epochs": 16}}

#: What the paper reports for these networks.
PAPER = {
    "source": "He et al. 2015, Fig. 1 and Fig. 6 (curves), Table 6 (ResNet test error, "
              "CIFAR-10, 64k iterations on 50k lossless images)",
    "test_error": {"resnet20_cifar": 8.75, "resnet56_cifar": 6.97},
    "claims": [
        "Fig. 1: the 56-layer plain network has higher training error (and so higher test "
        "error) than the 20-layer plain network",
        "Fig. 6: deeper plain networks have higher training error; deeper ResNets have "
        "lower training and test error",
    ],
}


def cifar_run(model, scale):
    """The run of a CIFAR network at the scale called ``scale`` with the four degradation
    networks' settings (the depth experiment's ResNet-32 and -44 use them too)."""
    if scale == "paper":
        return RunSpec(model)
    longer = LONGER.get(scale, {})
    train = {**COMPRESSED_TRAIN, **({"epochs": longer["epochs"]} if longer else {})}
    return RunSpec(model, train=train, train_images=longer.get("train_images"))


def cifar_runs(scale):
    """The four CIFAR networks' runs at the scale called ``scale``, shared by the depth
    and response experiments (same settings, same cached runs)."""
    return [cifar_run(m, scale) for m in CIFAR_MODELS]


def seed_runs(runner):
    """The seed's ResNet-18 pair: the runner's comparison runs (:meth:`Runner.quick`),
    each trained under the runner's seeds."""
    return [runner.quick(s) for s in SEED_RUNS]


def runs(runner):
    """The training runs, in order: the four CIFAR networks, then the seed's ResNet-18
    pair."""
    return cifar_runs(runner.scale.name) + seed_runs(runner)


def compute(runner):
    """Train (or reuse) every run; the record's body."""
    done = {spec.label: runner.train(spec) for spec in cifar_runs(runner.scale.name)}
    models = {m: summarize(done[m]) for m in CIFAR_MODELS}
    pair = {s.label: summarize_runs(runner.train_seeds(s)) for s in seed_runs(runner)}
    record = {
        "units": "errors in percent",
        "models": models,
        "seed_resnet18": pair,
        "seed_comparisons": comparisons(pair, [tuple(pair)]) + comparisons(
            pair, [tuple(pair)], "final_train_error"),
        "gradient_norms": {m: done[m]["gradient_norms"] for m in CIFAR_MODELS},
        "paper": PAPER,
    }
    record["claims"] = claims(record)
    return record


def claims(record):
    """The two claims the record must show, each with its numbers and whether it holds.

    Training error here is the last epoch's running training error (the curves'
    dashed lines), as in the paper's figures.
    """
    m = record["models"]
    err = {k: m[k]["final_train_error"] for k in CIFAR_MODELS}
    return [
        {"claim": "plain-56 ends with a higher training error than plain-20",
         "holds": err["plain56_cifar"] > err["plain20_cifar"],
         "values": {"plain56_cifar": err["plain56_cifar"],
                    "plain20_cifar": err["plain20_cifar"]}},
        {"claim": "ResNet-56 ends with a training error not higher than ResNet-20's",
         "holds": err["resnet56_cifar"] <= err["resnet20_cifar"],
         "values": {"resnet56_cifar": err["resnet56_cifar"],
                    "resnet20_cifar": err["resnet20_cifar"]}},
    ]


def check(record):
    """Assert both claims on the recorded numbers (recomputed, not read back).

    Raises
    ------
    AssertionError
        Naming the claim that does not hold and its numbers.
    """
    for c in claims(record):
        assert c["holds"], f"not shown by this record: {c['claim']} ({c['values']})"
    return [c["claim"] for c in claims(record)]


def table(record):
    """Final errors beside the paper's, as text (the seed pair's as mean ± sd over seeds,
    and whether the two are told apart, when it is replicated)."""
    pair = record["seed_resnet18"]
    # a replicated pair's numbers read 'mean ± sd', wider than one run's
    w = 17 if any(map(is_replicated, pair.values())) else 10
    lines = [f"{'model':<26}{'params':>10}{'train err':>{w + 1}}{'train err':>{w + 1}}"
             f"{'test err':>{w}}{'paper test':>12}",
             f"{'':<26}{'':>10}{'(last ep.)':>{w + 1}}{'(eval)':>{w + 1}}{'(all)':>{w}}"
             f"{'(Table 6)':>12}"]
    rows = list(record["models"].items()) + [
        (f"{k} (seed unit)", v) for k, v in pair.items()]
    for name, m in rows:
        paper = PAPER["test_error"].get(name)
        lines.append(f"{name:<26}{m['params']:>10,}"
                     f"{fmt_value(m, 'final_train_error'):>{w + 1}}"
                     f"{fmt_value(m, 'final_train_error_eval'):>{w + 1}}"
                     f"{fmt_value(m, 'final_test_error'):>{w}}{fmt_pct(paper):>12}")
    return "\n".join(lines + _pair_lines(record))


def _pair_lines(record):
    """Under a replicated record's table: what the pair's numbers are and whether the two
    are told apart."""
    said = seeds_line(record["seed_resnet18"].values())
    return ([f"(seed unit: {said})"] + [c["text"] for c in record.get("seed_comparisons", [])]
            if said else [])


def plot_gradients(record, models=("plain56_cifar", "resnet56_cifar")):
    """Per-layer gradient norms at initialisation and after training (log scale)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, when in zip(axes, ("init", "trained")):
        for i, m in enumerate(models):
            g = record["gradient_norms"][m]
            if g[when] is not None:
                ax.semilogy(range(1, len(g[when]) + 1), g[when], "o-", ms=3, color=f"C{i}",
                            label=m)
        ax.set_title("at initialisation" if when == "init" else "after training")
        ax.set_xlabel("layer (input -> output)")
        ax.grid(alpha=0.3, which="both")
    # log scale: the norms span orders of magnitude from layer to layer, and a ratio is
    # what "explode" and "vanish" mean
    axes[0].set_ylabel("||dL/dW|| of the layer's weights\n(log scale: norms span decades)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def input_gradient(block, x, g, train_mode=True):
    """``(block(x), dE/dx)`` for the gradient ``g`` arriving at the block's output.

    Parameters
    ----------
    block : mxnet.gluon.Block
        Initialised.
    x, g : mxnet.nd.NDArray
        Input, and the gradient at the output (its shape).
    train_mode : bool, default True
        BatchNorm on the batch's statistics (``True``) or on its running ones.
    """
    import mxnet as mx

    x = x.copy()
    x.attach_grad()
    with mx.autograd.record(train_mode=train_mode):
        h = block(x)
    h.backward(g)
    return h, x.grad


def shortcut_gradient(arrangement, channels=16, size=16, batch=4, seed=0):
    """What the identity shortcut adds to the input gradient of one unit.

    The unit and its plain counterpart (the same layers without the shortcut) get the
    same random (Xavier) weights; a random gradient ``g`` arrives at the output and
    autograd carries it to the input. For the 2016 pre-activation unit,
    ``h = x + F(x)``, the unit's input gradient is exactly ``g`` plus the plain layers'
    (2016 paper, Eqs. 4-5); for the 2015 unit, ``h = ReLU(x + F(x))``, the ReLU after
    the addition stops the shortcut's gradient wherever the sum is not positive.

    Parameters
    ----------
    arrangement : {'original', 'full_preact'}
        The unit, as :class:`gluonres.blocks.ResidualFactory` names it.
    channels, size, batch : int
        Shape of the input ``(batch, channels, size, size)``.
    seed : int
        Seed of the input, the arriving gradient and the weights.

    Returns
    -------
    dict
        ``off``: the largest ``|dE/dx(unit) - dE/dx(plain) - g|`` (rounding only when the
        shortcut passes ``g`` unchanged); ``plain_ratio``: ``|dE/dx(plain)| / |g|``;
        ``stopped``: the fraction of outputs that are 0 (where a ReLU after the addition
        passes no gradient); ``values``: the number of values in ``g``; ``g_max``: the
        largest ``|g|``.
    """
    import mxnet as mx
    import numpy as np

    from gluonres.blocks import ResidualFactory

    mx.random.seed(seed)
    rng = np.random.default_rng(seed)
    x = mx.nd.array(rng.normal(size=(batch, channels, size, size)))
    g = mx.nd.array(rng.normal(size=x.shape))
    unit, plain = (ResidualFactory(channels, channels, shortcut="A", arrangement=arrangement,
                                   residual=r) for r in (True, False))
    unit.initialize(mx.init.Xavier(magnitude=2))
    plain.initialize()
    for p, q in zip(unit.collect_params().values(), plain.collect_params().values()):
        q.set_data(p.data())
    (h, dx_unit), (_, dx_plain) = (input_gradient(b, x, g, train_mode=False)
                                   for b in (unit, plain))
    return {
        "off": float((dx_unit - dx_plain - g).abs().max().asscalar()),
        "plain_ratio": float(dx_plain.norm().asscalar() / g.norm().asscalar()),
        "stopped": float((h == 0).mean().asscalar()),
        "values": int(g.size),
        "g_max": float(g.abs().max().asscalar()),
    }


def gradient_ratio(record, model, when="init", first=5):
    """Mean gradient norm of the ``first`` layers over that of the last ``first``:
    how much of the gradient reaches the input end of the network."""
    norms = record["gradient_norms"][model][when]
    return (sum(norms[:first]) / first) / (sum(norms[-first:]) / first)


def markdown(record):
    """The docs section of this record."""
    lines = [table_markdown(record), ""] + [f"- {line}" for line in _pair_lines(record)]
    for c in record["claims"]:
        lines.append(f"- {'holds' if c['holds'] else 'does NOT hold'}: {c['claim']} ("
                     + ", ".join(f"{k} {v:.2f}%" for k, v in c["values"].items()) + ")")
    g = record["gradient_norms"]
    if g["plain56_cifar"]["init"] and g["resnet56_cifar"]["init"]:
        lines.append("- gradient reaching the first 5 layers relative to the last 5, at "
                     f"initialisation: plain-56 {gradient_ratio(record, 'plain56_cifar'):.3g}"
                     f", ResNet-56 {gradient_ratio(record, 'resnet56_cifar'):.3g}")
    return "\n".join(lines)


def table_markdown(record):
    rows = ["| model | params | train error, last epoch (%) | train error, eval (%) | "
            "test error (%) | paper test error (%), Table 6 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    items = list(record["models"].items()) + [
        (f"{k} (seed unit: BN after addition)", v) for k, v in record["seed_resnet18"].items()]
    for name, m in items:
        rows.append(f"| {name} | {m['params']:,} | {fmt_value(m, 'final_train_error')} | "
                    f"{fmt_value(m, 'final_train_error_eval')} | "
                    f"{fmt_value(m, 'final_test_error')} | "
                    f"{fmt_pct(PAPER['test_error'].get(name))} |")
    return "\n".join(rows)
