"""The classic backbones beside the ResNets: a comparison table and a short training race.

:func:`backbone_table`: for each model, input and output shapes, per-stage shapes,
trainable parameters and multiply-adds read off the graph, the published figures beside
ours, and (optionally) CPU forward throughput measured side by side in the same run.
:func:`format_table` prints it for people.

:func:`train_comparison`: every backbone trained on the same seeded, class-balanced
subset of a real dataset with the same budget (images x epochs), each at the smallest
input its architecture handles sensibly (:data:`TRAIN_SETUPS`); test accuracy, training
images/s, wall time and parameters per model. :func:`run` writes it, with the table, to
``results/backbones-SCALE.json`` (command, data, machine, wall time). Its budgets
(:data:`SCALES`) are common :class:`~gluonres.experiments.scales.Scale` objects; data,
training settings, the final test and the record come from the paper experiments'
``scales``, ``runs`` and ``records``. No model is kept as a shared run (``Runner``): each
trains on images resized to its own input size, with its own learning rate.
"""
import math
import statistics
import sys
import time
from dataclasses import dataclass

import mxnet as mx
from tqdm import tqdm

from gluonres import data as data_module
from gluonres import train as training
from gluonres._files import refuse_existing
from gluonres.analysis.summary import summary
from gluonres.errors import GluonresError, TrainingDivergedError
from gluonres.experiments import records, scales
from gluonres.experiments.runs import FinalTest
from gluonres.machine import machine
from gluonres.measure.timing import forward, interleaved
from gluonres.models import get_model, model_spec
from gluonres.models.init import he_initialize


NAME = "backbones"
TITLE = "Classic backbones beside the ResNets"

# the tour in order of publication, with two ResNets for reference
DEFAULT_MODELS = ("lenet5", "alexnet", "vgg16", "inception_v3", "resnet18", "resnet50",
                  "densenet121", "efficientnet_b0", "efficientnet_b1")
BASELINE = "resnet50"


@dataclass(frozen=True)
class Published:
    """Published figures for one network at 1000 classes (LeNet-5: 10) and native size.

    ``params`` is the exact trainable count of the reference implementation (or the
    paper's own total where it gives one); ``gmacs`` is multiply-adds in billions, or
    ``None`` where no comparable figure is published.
    """

    params: int
    gmacs: float | None
    source: str


PUBLISHED = {
    "lenet5": Published(
        60_000, None,
        "LeCun et al. 1998, Sec. II.B: per-layer counts adding to 60,000 for 1 input "
        "channel, sparse C3 table, trainable S2/S4, fixed RBF output; ours is the common "
        "modern form on 3 channels (see gluonres.models.classic.LeNet5)"),
    "alexnet": Published(
        61_100_840, 0.71,
        "torchvision/GluonCV AlexNet (the single-tower 'one weird trick' variant, "
        "Krizhevsky 2014); the 2012 paper quotes 60M parameters"),
    "vgg16": Published(
        138_357_544, 15.5,
        "Simonyan & Zisserman 2015, Table 2 (138M, configuration D); exact count and "
        "15.5 G multiply-adds: torchvision"),
    "inception_v3": Published(
        23_834_568, 5.7,
        "torchvision Inception-v3 without the auxiliary classifier (27,161,264 with it), "
        "as GluonCV builds it; 5.7 G multiply-adds: timm model card"),
    "resnet18": Published(
        11_689_512, 1.8,
        "He et al. 2015, Table 1 (1.8 GFLOPs = multiply-adds); exact count: torchvision"),
    "resnet50": Published(
        25_557_032, 3.8,
        "He et al. 2015, Table 1 (3.8 GFLOPs = multiply-adds); exact count: torchvision"),
    "densenet121": Published(
        7_978_856, 2.9,
        "Huang et al. 2017 (DenseNet-BC, k=32); exact count: torchvision/GluonCV; "
        "2.9 G multiply-adds as commonly quoted (torchvision lists 2.83)"),
    "efficientnet_b0": Published(
        5_288_548, 0.39,
        "Tan & Le 2019, Table 2 (5.3M, 0.39B FLOPS = multiply-adds); exact count: the "
        "TensorFlow reference / timm"),
    "efficientnet_b1": Published(
        7_794_184, 0.70,
        "Tan & Le 2019, Table 2 (7.8M, 0.70B FLOPS); exact count: the TensorFlow "
        "reference / timm"),
}


def measure_throughput(net, input_shape, warmup=2, repeats=5):
    """CPU forward throughput of an initialised network, hybridized, in inference mode.

    The first ``warmup`` passes (graph building, deferred initialisation, memory
    planning) are run and discarded; of the next ``repeats`` the median time counts
    (:func:`gluonres.measure.timing.interleaved`, one pass per sample).

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Initialised (deferred initialisation is finished by the first warm-up pass).
    input_shape : tuple
        ``(batch, C, H, W)``.
    warmup, repeats : int
        Discarded and timed forward passes; ``warmup >= 1``, ``repeats >= 1``.

    Raises
    ------
    GluonresError
        If ``warmup`` or ``repeats`` is below 1.

    Returns
    -------
    dict
        ``batch``, ``warmup``, ``repeats``, ``median_batch_s``, ``min_batch_s``,
        ``max_batch_s`` and ``images_per_s`` (batch / median).
    """
    if warmup < 1 or repeats < 1:
        raise GluonresError(f"throughput needs warmup >= 1 and repeats >= 1, got {warmup} "
                            f"and {repeats}; e.g. warmup=2, repeats=5")
    net.hybridize(static_alloc=True, static_shape=True)
    timer = forward("forward", net, mx.nd.random.uniform(-1, 1, shape=input_shape))
    interleaved([timer], repeats, warmup, 1)
    times = timer.seconds
    median = statistics.median(times)
    return {"batch": input_shape[0], "warmup": warmup, "repeats": repeats,
            "median_batch_s": median, "min_batch_s": min(times), "max_batch_s": max(times),
            "images_per_s": input_shape[0] / median}


def backbone_table(models=DEFAULT_MODELS, throughput=True, batch_size=8, warmup=2,
                   repeats=5, seed=0, progress=True):
    """The comparison table: shapes, parameters, multiply-adds, published figures, speed.

    Parameters
    ----------
    models : sequence of str, default :data:`DEFAULT_MODELS`
        Registered names, each built at its default classes and native input size.
    throughput : bool, default True
        Measure CPU forward throughput (He-initialised weights, random inputs); the
        models are measured one after another in this run, so their ratios compare.
    batch_size, warmup, repeats : int
        See :func:`measure_throughput`.
    seed : int, default 0
        Seed for the weights and inputs of the throughput runs.
    progress : bool, default True
        Progress bar on standard error.

    Returns
    -------
    dict
        ``models``: one row per model with ``input_shape``, ``output_shape``,
        ``stages`` (per-stage shapes, params, multiply-adds), ``params``, ``macs``,
        ``published`` (``params``, ``gmacs``, ``source``; ``None`` if unknown),
        ``params_vs_published`` (ours minus published) and, with ``throughput``, a
        ``throughput`` record plus ``speed_vs_baseline`` (images/s relative to
        :data:`BASELINE` where it is in the table); ``machine`` and ``settings``.
    """
    rows = []
    for name in tqdm(models, desc="backbones", unit="model", disable=not progress):
        net = get_model(name)
        s = summary(net)
        pub = PUBLISHED.get(name)
        row = {"model": name, "input_shape": list(s.input_shape),
               "output_shape": list(s.stages[-1].output_shape), "params": s.params,
               "macs": s.macs,
               "stages": s.to_dict()["stages"],
               "published": None if pub is None else {
                   "params": pub.params, "gmacs": pub.gmacs, "source": pub.source},
               "params_vs_published": None if pub is None else s.params - pub.params}
        if throughput:
            he_initialize(net, seed)
            row["throughput"] = measure_throughput(
                net, (batch_size,) + tuple(s.input_shape[1:]), warmup, repeats)
        rows.append(row)
    speeds = {r["model"]: r["throughput"]["images_per_s"] for r in rows if "throughput" in r}
    if BASELINE in speeds:
        for row in rows:
            row["speed_vs_baseline"] = speeds[row["model"]] / speeds[BASELINE]
    return {"models": rows, "baseline": BASELINE if BASELINE in speeds else None,
            "machine": machine(),
            "settings": {"throughput": throughput, "batch_size": batch_size,
                         "warmup": warmup, "repeats": repeats, "seed": seed}}


def format_table(record):
    """The record of :func:`backbone_table` as a fixed-width text table."""
    timed = record["settings"]["throughput"]
    head = (f"{'model':<16}{'input':>12}{'output':>8}{'params':>14}{'published':>14}"
            f"{'GMACs':>11}{'published':>10}")
    if timed:
        head += f"{'img/s':>9}{'vs ' + str(record['baseline']):>13}"
    lines = [head]
    for r in record["models"]:
        pub = r["published"] or {}
        line = (f"{r['model']:<16}{'x'.join(map(str, r['input_shape'][1:])):>12}"
                f"{r['output_shape'][-1]:>8}{r['params']:>14,}"
                f"{'' if not pub else format(pub['params'], ','):>14}"
                f"{r['macs'] / 1e9:>11.4g}"
                f"{'' if pub.get('gmacs') is None else format(pub['gmacs'], '.2f'):>10}")
        if timed:
            rel = r.get("speed_vs_baseline")
            line += (f"{r['throughput']['images_per_s']:>9.1f}"
                     f"{'' if rel is None else format(rel, '.2f') + 'x':>13}")
        lines.append(line)
    if timed:
        m, st = record["machine"], record["settings"]
        lines.append(f"img/s: batch {st['batch_size']}, median of {st['repeats']} timed "
                     f"forward passes after {st['warmup']} warm-up ones; {m['cpu']}, "
                     f"{m['cores']} cores, OMP_NUM_THREADS={m['omp_num_threads']}, "
                     f"mxnet {m['mxnet']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainSetup:
    """How one backbone is trained in the comparison.

    ``size`` is the input resolution (CIFAR's 32x32 images are resized to it), ``lr`` the
    initial SGD rate and ``why`` the reason for both.
    """

    size: int
    lr: float
    why: str


_STRIDE32 = ("an ImageNet network of total stride 32: 64x64 leaves 2x2 maps at the end, "
             "32x32 would leave 1x1")
_NO_BN = ("; lr 0.01: no BatchNorm (torchvision's reference recipes train AlexNet and VGG "
          "at 0.01, the BatchNorm nets here start at 0.1)")
#: The trained backbones in order of publication, the CIFAR ResNet-20 beside them.
TRAIN_SETUPS = {
    "lenet5": TrainSetup(32, 0.01, "32x32 is the paper's input (C5's 5x5 kernel meets 5x5 "
                                   "maps); lr 0.01 like the other nets without BatchNorm"),
    "alexnet": TrainSetup(64, 0.01, "63 is the smallest input its 11x11/4 stem and three "
                                    "3x3/2 poolings leave a map for; 64 ends in 1x1" + _NO_BN),
    "vgg16": TrainSetup(32, 0.01, "32 is its minimum (five 2x2 poolings end in 1x1 maps), "
                                  "the usual CIFAR configuration; 64 would cost 4x the "
                                  "time" + _NO_BN),
    "inception_v3": TrainSetup(75, 0.1, "75 is the smallest input its valid-padded stem "
                                        "and grid reductions accept (1x1 maps at the end; "
                                        "the fixed 8x8 pool becomes global pooling)"),
    "resnet20_cifar": TrainSetup(32, 0.1, "the CIFAR ResNet's native 32x32"),
    "resnet18": TrainSetup(64, 0.1, _STRIDE32),
    "densenet121": TrainSetup(64, 0.1, _STRIDE32 + " (the fixed 7x7 pool becomes global "
                                                  "pooling)"),
    "efficientnet_b0": TrainSetup(64, 0.1, _STRIDE32),
    "efficientnet_b1": TrainSetup(64, 0.1, _STRIDE32 + "; B1's native 240 vs B0's 224 is "
                                                      "not kept: both train at 64"),
}
TRAIN_MODELS = tuple(TRAIN_SETUPS)


#: The comparison's budgets, the same for every model: seeded, class-balanced subsets of
#: the training and test splits (``train_images``, ``test_images``), ``epochs`` in
#: batches of ``batch_size``; SGD with momentum 0.9, weight decay 1e-4, cosine decay from
#: the model's ``lr``. Named like the paper experiments' scales, sized for this race.
SCALES = {
    "smoke": scales.Scale(
        "smoke", train_images=96, test_images=100, epochs=1, batch_size=16,
        default_data="digits",
        description="seconds: 96 training images (scikit-learn's digits unless data says "
                    "otherwise), one epoch of 6 updates of 16; proves the pipeline, "
                    "measures nothing"),
    "cpu": scales.Scale(
        "cpu", train_images=4000, test_images=2000, epochs=3, batch_size=32,
        default_data=None,
        description="a real race sized for 2 CPU cores, about 45 minutes: 4,000 training "
                    "images (400 per class) for 3 epochs (375 updates of 32), accuracy on "
                    "2,000 test images (200 per class); plus the forward-throughput table "
                    "at native sizes"),
}
#: Scales whose record times the table's forward passes (a smoke run measures nothing).
TIMED_SCALES = ("cpu",)


def build(name, classes, size=None):
    """``name`` with ``classes`` outputs, built for input ``size`` where that matters.

    ``size`` defaults to the model's :data:`TRAIN_SETUPS` size. LeNet-5 and the ResNets
    take no size: LeNet-5 is 32x32 by design and the ResNets pool globally.
    """
    size = size or TRAIN_SETUPS[name].size
    # built with an input_size so that summary and counts are those at the training size
    sized = {"input_size": size} if model_spec(name).sizable else {}
    return get_model(name, classes=classes, **sized)


def train_one(name, d, scale, seed=0, progress=True):
    """Train one backbone on ``d`` at its :data:`TRAIN_SETUPS` size; one result row.

    Parameters
    ----------
    name : str
        A name from :data:`TRAIN_SETUPS`.
    d : gluonres.data.Data
        ``train`` is trained on, ``test`` measured once at the end.
    scale : Scale
        Epochs and batch size.
    seed : int, default 0
        Initial weights, data order and augmentation.
    progress : bool, default True

    Returns
    -------
    dict
        ``model``, ``input_size``, ``why``, ``lr``, ``params`` and ``macs`` (at the
        training size and class count), ``test_accuracy`` (0-1), ``test_error_pct``,
        ``std_error_pct`` (binomial standard error of the accuracy, points),
        ``test_images``, ``train_img_s``, ``train_s``, ``eval_s``, ``wall_s`` and per
        epoch ``train_loss`` / ``train_error_pct``. A run that diverges is kept with
        ``diverged`` (the message) and no accuracy.
    """
    setup = TRAIN_SETUPS[name]
    start = time.time()
    net = build(name, len(d.classes), setup.size)
    s = summary(net, (1, 3, setup.size, setup.size))
    train, test = d.train.resized(setup.size), d.test.resized(setup.size)
    config = scale.config(name, d.hflip, lr=setup.lr, schedule="cosine", pad=setup.size // 8,
                          normalize="channel", seed=seed)
    row = {"model": name, "input_size": setup.size, "why": setup.why, "lr": setup.lr,
           "params": s.params, "macs": s.macs, "test_images": len(test)}
    final = FinalTest(test)
    try:
        history = training.fit(net, data_module.Data(d.name, train, hflip=d.hflip), config,
                               progress=progress, callbacks=[final])
    except TrainingDivergedError as err:
        return {**row, "diverged": str(err), "test_accuracy": None,
                "wall_s": time.time() - start}
    acc = 1 - final.error_pct / 100
    return {**row, "test_accuracy": acc, "test_error_pct": final.error_pct,
            "std_error_pct": 100 * math.sqrt(acc * (1 - acc) / len(test)),
            "train_img_s": history["train_img_s"], "train_s": history["train_s"],
            "eval_s": final.seconds, "iterations": history["total_iterations"],
            "epochs": [{k: r[k] for k in ("epoch", "train_loss", "train_error_pct")}
                       for r in history["epochs"]],
            "wall_s": time.time() - start}


def train_comparison(scale="smoke", data=None, models=TRAIN_MODELS, seed=0, progress=True):
    """Train every backbone with the same budget on the same real images.

    Parameters
    ----------
    scale : str or Scale, default 'smoke'
        A name in :data:`SCALES`: ``'smoke'`` (seconds, digits) or ``'cpu'`` (about 45
        minutes, real data).
    data : str, optional
        Dataset spec for :func:`gluonres.data.load`; default: the scale's, else
        ``$GLUONRES_DATA`` (:func:`~gluonres.experiments.scales.data_spec`).
    models : sequence of str, default :data:`TRAIN_MODELS`
        Names from :data:`TRAIN_SETUPS`.
    seed : int, default 0
        Subsets, initial weights, data order and augmentation.
    progress : bool, default True

    Returns
    -------
    dict
        ``scale``, ``scale_settings``, ``data`` (with caveats), ``settings`` (the
        shared training recipe), ``models`` (one :func:`train_one` row each).

    Raises
    ------
    GluonresError
        For a model without a training setup, an unknown scale or missing data.
    """
    scale = scales.get_scale(scale, SCALES)
    unknown = [m for m in models if m not in TRAIN_SETUPS]
    if unknown:
        raise GluonresError(f"no training setup for {', '.join(unknown)}; choose from "
                            f"{', '.join(TRAIN_MODELS)}")
    loaded = scales.load_data(scale, data, progress, seed=seed)
    d = data_module.Data(loaded.data.name, loaded.data.train, loaded.final_test,
                         hflip=loaded.data.hflip)
    # recorded as the comparison always was: split sizes, no curve images
    info = {"spec": loaded.spec, **d.describe(), "subset": loaded.describe()["subset"]}
    rows = []
    for name in tqdm(models, desc="training", unit="model", disable=not progress,
                     file=sys.stderr):
        rows.append(train_one(name, d, scale, seed, progress))
    return {"scale": scale.name, "scale_settings": scale.describe(), "data": info,
            "settings": {"optimizer": "SGD, momentum 0.9, weight decay 1e-4",
                         "schedule": "cosine decay to 0 from the model's lr",
                         "augmentation": "zero padding of size/8, random crop, horizontal "
                                         "flips (where they keep the label)",
                         "normalize": "per-channel mean/std of the training subset",
                         "batch_size": scale.batch_size, "epochs": scale.epochs,
                         "seed": seed},
            "models": rows}


def make_command(scale):
    """The command that makes the record at the scale called ``scale``, short of its
    ``--data``."""
    return f"gluonres backbones --train --scale {scale}"


def record_path(scale, out="results"):
    """``out/backbones-SCALE.json``."""
    return records.record_path(NAME, scale, out)


def run(scale="smoke", data=None, out="results", models=TRAIN_MODELS, force=False,
        command=None, progress=True):
    """The training comparison (and, at :data:`TIMED_SCALES`, the timed table) as a record.

    Writes ``out/backbones-SCALE.json``: command, data (with caveats), machine, start,
    finish and wall time around :func:`train_comparison` and :func:`backbone_table`.

    Parameters
    ----------
    scale, data, models, progress
        See :func:`train_comparison`.
    out : str, default 'results'
    force : bool, default False
        Replace an existing record.
    command : str, optional
        The command line to record; default: the equivalent ``gluonres backbones``.

    Returns
    -------
    dict
        The record written.

    Raises
    ------
    GluonresError
        If the record exists and ``force`` is off (checked before any work).
    """
    scale = scales.get_scale(scale, SCALES)
    # no training runs are kept to make a replacement quick, unlike `gluonres reproduce`
    refuse_existing(record_path(scale.name, out), force,
                    "pass --force to replace it or --out another folder")
    if command is None:
        command = make_command(scale.name) + (f" --data {data}" if data else "")

    def compute():
        return {**train_comparison(scale, data, models, progress=progress),
                "table": backbone_table(throughput=scale.name in TIMED_SCALES,
                                        progress=progress)}

    return records.write_record(NAME, TITLE, scale, command, compute, out)


def load_record(scale="cpu", out="results"):
    """The record ``out/backbones-SCALE.json``, or ``None`` (printing the command that
    makes it) when it has not been made."""
    return records.load_record(NAME, scale, out, make_command(scale))


def format_comparison(record):
    """A training comparison (:func:`train_comparison` or :func:`run`) as a text table."""
    lines = [f"{'model':<16}{'input':>6}{'lr':>6}{'params':>12}{'MMACs':>9}{'test acc %':>12}"
             f"{'± s.e.':>8}{'train img/s':>13}{'wall s':>8}"]
    for r in record["models"]:
        acc = ("diverged" if r.get("diverged") else f"{100 * r['test_accuracy']:.1f}")
        line = (f"{r['model']:<16}{r['input_size']:>6}{r['lr']:>6g}{r['params']:>12,}"
                f"{r['macs'] / 1e6:>9.1f}{acc:>12}")
        if not r.get("diverged"):
            line += (f"{r['std_error_pct']:>8.1f}{r['train_img_s']:>13.1f}"
                     f"{r['wall_s']:>8.0f}")
        lines.append(line)
    d, st = record["data"], record["settings"]
    lines.append(f"{d['splits']['train']:,} training images of {d['name']} x {st['epochs']} "
                 f"epochs, batch {st['batch_size']}; accuracy on {d['splits']['test']:,} test "
                 "images; params and multiply-adds at the input size and 10 classes")
    if d.get("note"):
        lines.append(f"caveat: {d['note']}")
    return "\n".join(lines)


def plot_comparison(record, ax=None):
    """Test accuracy against multiply-adds (log scale), one labelled point per model.

    Returns the matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(7, 4.5))[1]
    rows = [r for r in record["models"] if r.get("test_accuracy") is not None]
    for r in rows:
        ax.errorbar(r["macs"] / 1e6, 100 * r["test_accuracy"], yerr=r["std_error_pct"],
                    fmt="o", capsize=3)
        ax.annotate(f"{r['model']} ({r['input_size']}px)",
                    (r["macs"] / 1e6, 100 * r["test_accuracy"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per image at the training size (millions, log scale)")
    ax.set_ylabel("test accuracy (%) ± 1 s.e.")
    d = record["data"]
    ax.set_title(f"{record['scale']} scale: {d['splits']['train']:,} {d['name']} training "
                 f"images x {record['settings']['epochs']} epochs", fontsize=9)
    ax.grid(alpha=0.3)
    return ax
