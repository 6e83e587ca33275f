"""The classic backbones beside the ResNets: one comparison table.

For each model: input and output shapes, per-stage shapes, trainable parameters and
multiply-adds read off the graph, the published figures beside ours, and (optionally)
CPU forward throughput measured side by side in the same run. Everything is returned as
one JSON-ready record; :func:`format_table` prints it for people.
"""
import os
import platform
import statistics
import time
from dataclasses import dataclass

import mxnet as mx
from tqdm import tqdm

from ..analysis import summary
from ..errors import GluonresError
from ..registry import get_model

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
    planning) are run and discarded; of the next ``repeats`` the median time counts.

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
    x = mx.nd.random.uniform(-1, 1, shape=input_shape)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        net(x).wait_to_read()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"batch": input_shape[0], "warmup": warmup, "repeats": repeats,
            "median_batch_s": median, "min_batch_s": min(times), "max_batch_s": max(times),
            "images_per_s": input_shape[0] / median}


def machine():
    """What the throughput was measured on: CPU model, usable cores, threads, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "mxnet": mx.__version__, "python": platform.python_version()}


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
            mx.random.seed(seed)
            net.initialize(mx.init.MSRAPrelu(slope=0))
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
