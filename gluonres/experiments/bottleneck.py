"""Deeper bottleneck architectures (2015 paper, Sec. 4.1 and Table 1; 2016, Table 3).

A bottleneck unit (1x1 reduce, 3x3, 1x1 restore) on a 256-channel input costs about
what a basic unit (two 3x3) costs on 64 channels (2015, Fig. 5), which is how
ResNet-50/101/152 grow deep at little cost. The 2015 Table 1 is rebuilt here from the
graphs: output size per stage, layer layout, parameters and multiply-adds for
ResNet-18 to -152 beside the paper's FLOPs. On CIFAR-10, ResNet-164 (bottleneck, 9n+2)
against ResNet-110 (basic, 6n+2): about the same parameters (1.7M), counted at every
scale, and trained at ``cpu`` and ``paper`` scale. At ``cpu`` scale the pair trains on all
50,000 images for 8 epochs (3,120 updates; the depth series has 16): on two AVX-512
cores ResNet-110 took 83 min at 81 img/s, ResNet-164 3.1 h at 36 img/s with 5% fewer
multiply-adds, so its run spans sessions and resumes from its checkpoints. One seed
each: a run shows how far each network gets in that budget (ResNet-164 is the further
behind at 3,120 updates), not the paper's 0.7-point difference after 64,000.
"""
from gluonres.analysis.summary import graph_shapes, summary
from gluonres.experiments.present import fmt_pct, summarize
from gluonres.experiments.runs import RunSpec


NAME = "bottleneck"
TITLE = "Bottleneck units: Table 1 rebuilt, ResNet-164 vs ResNet-110 (2015, 2016)"
IMAGENET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CIFAR = ("resnet110_cifar", "resnet164_cifar")
#: Scales at which the CIFAR pair is trained; both warm up at 0.01 until the training
#: error is below 80% (the 2015 rule for ResNet-110).
TRAINED_AT = ("cpu", "paper")
WARMUP = {"warmup": "error"}
#: Below ``paper`` scale: the pair's training subset and length. Half the depth series'
#: 16 epochs (:data:`~gluonres.experiments.degradation.LONGER`), so that each run fits a
#: 2-3 h session on two cores; that series showed ResNet-56 still 0.3 points behind
#: ResNet-20 after 8 epochs, so a deeper net's lead may not show yet at this length.
LONGER = {"cpu": {"train_images": 50_000, "epochs": 8}}

PAPER = {
    "table1_source": "He et al. 2015, Table 1 (FLOPs are multiply-adds, 224x224 input); "
                     "parameter counts are not in the paper: torchvision's exact counts",
    "gflops": {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6,
               "resnet152": 11.3},
    "params": {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
               "resnet101": 44_549_160, "resnet152": 60_192_808},
    "output_size": {"conv1": 112, "conv2_x": 56, "conv3_x": 28, "conv4_x": 14, "conv5_x": 7},
    "cifar_source": "He et al. 2016, Table 3: CIFAR-10 test error, original units, "
                    "64k iterations on lossless CIFAR-10",
    "cifar_test_error": {"resnet110_cifar": 6.61, "resnet164_cifar": 5.93},
    "cifar_params_m": {"resnet110_cifar": 1.7, "resnet164_cifar": 1.7},
}
STAGE_NAMES = ("conv2_x", "conv3_x", "conv4_x", "conv5_x")


def cifar_run(model, scale, options=None, label=None):
    """The run of a deep CIFAR network with the pair's settings at the scale called
    ``scale`` (:data:`WARMUP`, :data:`LONGER`): the preactivation experiment's pair
    trains with them too, so that its original ResNet-164 is this experiment's."""
    longer = LONGER.get(scale, {})
    return RunSpec(model, options or {},
                   {**WARMUP, **({"epochs": longer["epochs"]} if longer else {})},
                   label=label, train_images=longer.get("train_images"))


def runs(scale):
    """The CIFAR pair's training runs at ``scale`` (none at scales not in
    :data:`TRAINED_AT`)."""
    return [cifar_run(m, scale) for m in CIFAR] if scale in TRAINED_AT else []


def cifar_counts(models=CIFAR):
    """Parameters, multiply-adds and weighted layers of ResNet-110 and ResNet-164."""
    import gluonres

    rows = []
    for name in models:
        s = summary(gluonres.get_model(name))
        rows.append({"model": name, "params": s.params, "macs": s.macs,
                     "paper_params_m": PAPER["cifar_params_m"][name],
                     "paper_test_error": PAPER["cifar_test_error"][name]})
    return rows


def cifar_counts_text(rows):
    """:func:`cifar_counts` as text."""
    lines = [f"{'model':<18}{'params':>12}{'paper':>8}{'mult-adds':>15}"
             f"{'paper test err (2016 T3)':>26}"]
    lines += [f"{r['model']:<18}{r['params']:>12,}{r['paper_params_m']:>7}M{r['macs']:>15,}"
              f"{r['paper_test_error']:>26.2f}" for r in rows]
    return "\n".join(lines)


def unit_costs(size=56):
    """Parameters and multiply-adds of a basic unit on 64 channels and a bottleneck unit
    on 256 channels, both at ``size`` x ``size`` (2015, Fig. 5)."""
    from gluonres.blocks import ResidualFactory

    rows = []
    for kind, unit, channels in (
            ("basic: 3x3, 64 -> 3x3, 64", ResidualFactory(64, 64, prefix="basic_"), 64),
            ("bottleneck: 1x1, 64 -> 3x3, 64 -> 1x1, 256",
             ResidualFactory(256, 256, bottleneck=True, prefix="bottleneck_"), 256)):
        s = summary(unit, (1, channels, size, size))
        rows.append({"unit": kind, "channels": channels, "params": s.params, "macs": s.macs})
    return rows


def layout(net):
    """Per stage: units and the kernel/width of each convolution, e.g.
    ``'[3x3, 64; 3x3, 64] x 2'``, read off the network's units."""
    out = []
    for stage in net.stages:
        units = list(stage)
        convs = [(c.conv._kwargs["kernel"][0], c.conv._channels) for c in units[0].body]
        out.append("[" + "; ".join(f"{k}x{k}, {w}" for k, w in convs) + f"] x {len(units)}")
    return out


def table1(models=IMAGENET):
    """The 2015 Table 1 rebuilt from the graphs (deterministic).

    Returns
    -------
    list of dict
        Per model: ``layout`` per stage, ``output_size`` (conv1 and each stage, from
        the graph), ``params``, ``macs``, the paper's ``paper_gflops`` and reference
        ``reference_params``.
    """
    import gluonres

    rows = []
    for name in models:
        net = gluonres.get_model(name)
        s = summary(net)
        nodes, shapes = graph_shapes(net)
        sizes = {"conv1": shapes["stem_conv_fwd_output"][2]}
        sizes.update({stage: st.output_shape[2] for stage, st in
                      zip(STAGE_NAMES, [x for x in s.stages if x.name.startswith("stage")])})
        rows.append({"model": name, "layout": layout(net), "output_size": sizes,
                     "params": s.params, "macs": s.macs,
                     "paper_gflops": PAPER["gflops"][name],
                     "reference_params": PAPER["params"][name]})
    return rows


def table1_text(rows):
    """:func:`table1` laid out like the paper: one column per network."""
    width = max(len(x) for r in rows for x in r["layout"]) + 2

    def size(stage):
        n = rows[0]["output_size"][stage]
        return f"{stage:<9}{f'{n}x{n}':>8}  "

    head = f"{'layer':<9}{'output':>8}  " + "".join(f"{r['model']:<{width}}" for r in rows)
    lines = [head, size("conv1") + "".join(f"{'7x7, 64, stride 2':<{width}}" for _ in rows)]
    for i, stage in enumerate(STAGE_NAMES):
        lines.append(size(stage) + "".join(f"{r['layout'][i]:<{width}}" for r in rows))
    lines.append(f"{'params':<17}  " + "".join(f"{r['params']:<{width},}" for r in rows))
    lines.append(f"{'  torchvision':<17}  "
                 + "".join(f"{r['reference_params']:<{width},}" for r in rows))
    lines.append(f"{'mult-adds':<17}  "
                 + "".join(f"{r['macs'] / 1e9:<{width}.3f}" for r in rows))
    lines.append(f"{'  paper FLOPs':<17}  "
                 + "".join(f"{r['paper_gflops']:<{width}.1f}" for r in rows))
    return "\n".join(line.rstrip() for line in lines)


def compute(runner):
    done = [runner.train(spec) for spec in runs(runner.scale.name)]
    return {"units": "errors in percent",
            "trained": bool(done), "trained_at": list(TRAINED_AT),
            "models": {run["model"]: summarize(run) for run in done},
            "cifar_counts": cifar_counts(), "unit_costs": unit_costs(), "table1": table1(),
            "paper": PAPER}


def trained_table(record):
    """The CIFAR pair's recorded errors beside the paper's, or why the record has none."""
    if not record["models"]:
        then = _trained_at(record)
        if record["scale"] in TRAINED_AT and record["scale"] not in then:
            return (f"(this record was made when only {then} scale trained the pair; "
                    f"`gluonres reproduce bottleneck --scale {record['scale']} --data DATA` "
                    "now trains it at this scale too)")
        return f"(the pair is trained only at {then} scale)"
    lines = [f"{'trained':<18}{'iterations':>12}{'train err':>11}{'test err':>10}"
             f"{'paper test (2016 T3)':>22}"]
    lines += [f"{name:<18}{m['iterations']:>12,}{fmt_pct(m['final_train_error']):>11}"
              f"{fmt_pct(m['final_test_error']):>10}{PAPER['cifar_test_error'][name]:>22.2f}"
              for name, m in record["models"].items()]
    return "\n".join(lines)


def table(record):
    """The CIFAR pair (counted, and trained where the record has it) and Table 1 rebuilt."""
    return "\n\n".join([cifar_counts_text(record["cifar_counts"]), trained_table(record),
                         table1_text(record["table1"])])


def _trained_at(record):
    """The scales that trained the pair when the record was made (records made before
    ``cpu`` scale trained it do not say: only ``paper`` did then)."""
    return ", ".join(record.get("trained_at", ["paper"]))


def markdown(record):
    rows = ["| model | params | paper params | mult-adds | trained iterations | train error "
            "(%) | test error (%) | paper test error (%), 2016 Table 3 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in record["cifar_counts"]:
        m = record["models"].get(r["model"], {})
        its = f"{m['iterations']:,}" if "iterations" in m else "not trained at this scale"
        rows.append(f"| {r['model']} | {r['params']:,} | {r['paper_params_m']}M | "
                    f"{r['macs']:,} | {its} | "
                    f"{fmt_pct(m.get('final_train_error'))} | "
                    f"{fmt_pct(m.get('final_test_error'))} | {r['paper_test_error']:.2f} |")
    rows += ["", "| unit (2015 Fig. 5) | params | mult-adds at 56x56 |", "| --- | ---: | ---: |"]
    rows += [f"| {u['unit']} | {u['params']:,} | {u['macs']:,} |" for u in record["unit_costs"]]
    rows += ["", "| network | params | torchvision | mult-adds (G) | paper FLOPs (G), "
             "Table 1 |", "| --- | ---: | ---: | ---: | ---: |"]
    rows += [f"| {r['model']} | {r['params']:,} | {r['reference_params']:,} | "
             f"{r['macs'] / 1e9:.3f} | {r['paper_gflops']:.1f} |" for r in record["table1"]]
    return "\n".join(rows)
