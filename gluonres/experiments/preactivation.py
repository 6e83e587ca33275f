"""Original vs full pre-activation on a deeper network (2016 paper, Table 3, Fig. 6).

The identity experiment compares the 2016 variants on a 20-layer network, where the
paper's differences are smallest. The paper's case for full pre-activation rests on
deeper networks: it lowers the test error of ResNet-110 from 6.61 to 6.37 and of
ResNet-164 from 5.93 to 5.46 (Table 3), and its training curves (Fig. 6, and Fig. 1 for
ResNet-1001) show the pre-activation network reaching a lower training error from the
start, which the paper reads as easier optimisation. Here the pair is :data:`NETWORK`'s
network with the bottleneck experiment's settings
(:func:`~gluonres.experiments.bottleneck.cifar_run`), so that its original network is
that experiment's run. At ``cpu`` scale the network is ResNet-110 (basic units, 6.61 vs 6.37 in
Table 3), all 50,000 images for 8 epochs (3,120 updates), one seed each: the
pre-activation ResNet-110 took 96 min on two cores, where a second ResNet-164 would
take about 3 h (the bottleneck experiment's took 3.1 h). One run each is an anecdote:
the record gives both curves and final errors, not a ranking.
"""
from gluonres.experiments import bottleneck
from gluonres.experiments.present import fmt_pct, summarize


NAME = "preactivation"
TITLE = "Original vs full pre-activation on a deeper network (2016, Table 3, Fig. 6)"
#: The pair's network per scale (smoke: a 20-layer stand-in that proves the code; cpu:
#: ResNet-110, whose original run the bottleneck experiment already trains).
NETWORK = {"smoke": "resnet20_cifar", "cpu": "resnet110_cifar", "paper": "resnet164_cifar"}
#: unit name -> (get_model options, the 2016 paper's figure of the unit)
UNITS = {
    "original": ({}, "Fig. 4(a)"),
    "full_preact": ({"arrangement": "full_preact", "shortcut": "A"}, "Fig. 4(e)"),
}

PAPER = {
    "source": "He et al. 2016, Table 3: CIFAR-10 test error (%), original vs "
              "pre-activation units, 64k iterations on lossless CIFAR-10 (ResNet-110: "
              "6.61 / 6.37; Fig. 6 draws the training curves)",
    "test_error": {"resnet110_cifar": {"original": 6.61, "full_preact": 6.37},
                   "resnet164_cifar": {"original": 5.93, "full_preact": 5.46}},
}


def runs(scale):
    """The pair's runs at the scale called ``scale``: :data:`UNITS` of :data:`NETWORK`'s
    network with the bottleneck experiment's settings."""
    return {name: bottleneck.cifar_run(NETWORK[scale], scale, opts, label=name)
            for name, (opts, _) in UNITS.items()}


def compute(runner):
    scale = runner.scale.name
    done = {name: summarize(runner.train(spec)) for name, spec in runs(scale).items()}
    return {"units": "errors in percent", "base": NETWORK[scale], "models": done,
            "paper": PAPER}


def _paper(record, name):
    """The paper's Table 3 error of ``name`` on the record's network, or '-'."""
    value = PAPER["test_error"].get(record["base"], {}).get(name)
    return "-" if value is None else f"{value:.2f}"


def table(record):
    """Both units' errors beside the paper's Table 3."""
    lines = [f"ours: {record['base']}, one run each (an anecdote, not a ranking)",
             f"{'unit':<14}{'params':>11}{'iterations':>12}{'train err':>11}{'test err':>10}"
             f"  paper (2016 Table 3)"]
    lines += [f"{name:<14}{m['params']:>11,}{m['iterations']:>12,}"
              f"{fmt_pct(m['final_train_error']):>11}{fmt_pct(m['final_test_error']):>10}"
              f"  {_paper(record, name)}  [{UNITS[name][1]}]"
              for name, m in record["models"].items()]
    return "\n".join(lines)


def markdown(record):
    rows = [f"Ours on {record['base']}, one run each:", "",
            "| unit | params | iterations | train error (%) | test error (%) | paper (%), "
            "2016 Table 3 |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    rows += [f"| {name} | {m['params']:,} | {m['iterations']:,} | "
             f"{fmt_pct(m['final_train_error'])} | {fmt_pct(m['final_test_error'])} | "
             f"{_paper(record, name)} |" for name, m in record["models"].items()]
    return "\n".join(rows)
