"""Analysis of layer responses (2015 paper, Sec. 4.2, Fig. 7).

The standard deviation of each 3x3 layer's response (its BatchNorm output, before the
ReLU or the addition) on test images, for trained plain and residual networks, in
layer order and sorted by magnitude. The paper: "ResNets have generally smaller
responses than their plain counterparts", and "the deeper ResNet has smaller magnitudes
of responses" -- residual functions closer to zero than non-residual ones. The
responses are measured at the end of each training run
(:class:`~gluonres.experiments.runs.RunAnalysis`), so this experiment reuses the
degradation and bottleneck runs.
"""
import numpy as np

from gluonres.experiments import bottleneck, degradation


NAME = "responses"
TITLE = "Layer responses of plain and residual networks (2015, Fig. 7)"

PAPER = {
    "source": "He et al. 2015, Fig. 7 and Sec. 4.2 (CIFAR-10, std of each 3x3 layer's "
              "response after BN, before ReLU/addition; plain-20/56, ResNet-20/56/110)",
    "claims": ["ResNets have generally smaller responses than their plain counterparts",
               "the deeper ResNet has smaller magnitudes of responses"],
}


def runs(scale):
    """Plain-20/56, ResNet-20/56 (the degradation runs), and at the scales that train it
    ResNet-110 (the bottleneck experiment's run; at ``cpu`` scale shorter than the others,
    as the plot's label says)."""
    return degradation.cifar_runs(scale) + [
        s for s in bottleneck.runs(scale) if s.model == "resnet110_cifar"]


def compute(runner):
    done = [runner.train(spec) for spec in runs(runner.scale.name)]
    models = {run["model"]: {"layers": run["layer_responses"]["layers"],
                             "std": run["layer_responses"]["std"],
                             "iterations": run["iterations"], "key": run["key"],
                             "wall_s": run["wall_s"]} for run in done}
    record = {"models": models, "images": runner.scale.analysis_images, "paper": PAPER}
    record["claims"] = claims(record)
    return record


def claims(record):
    """The paper's two observations, measured by the mean std over layers."""
    mean = {m: float(np.mean(r["std"])) for m, r in record["models"].items()}
    out = [{"claim": f"ResNet-{d} has smaller responses than plain-{d} (mean std over layers)",
            "holds": mean[f"resnet{d}_cifar"] < mean[f"plain{d}_cifar"],
            "values": {f"resnet{d}_cifar": mean[f"resnet{d}_cifar"],
                       f"plain{d}_cifar": mean[f"plain{d}_cifar"]}} for d in (20, 56)]
    out.append({"claim": "ResNet-56 has smaller responses than ResNet-20 (mean std)",
                "holds": mean["resnet56_cifar"] < mean["resnet20_cifar"],
                "values": {"resnet56_cifar": mean["resnet56_cifar"],
                           "resnet20_cifar": mean["resnet20_cifar"]}})
    return out


def table(record):
    lines = [f"{'model':<18}{'3x3 layers':>11}{'mean std':>10}{'max std':>10}"]
    for model, r in record["models"].items():
        lines.append(f"{model:<18}{len(r['std']):>11}{np.mean(r['std']):>10.4g}"
                     f"{np.max(r['std']):>10.4g}")
    return "\n".join(lines)


def markdown(record):
    rows = ["| model | 3x3 layers | mean std | max std |", "| --- | ---: | ---: | ---: |"]
    rows += [f"| {m} | {len(r['std'])} | {np.mean(r['std']):.4g} | {np.max(r['std']):.4g} |"
             for m, r in record["models"].items()]
    rows.append("")
    rows += [f"- {'holds' if c['holds'] else 'does NOT hold'}: {c['claim']}"
             for c in record["claims"]]
    return "\n".join(rows)
