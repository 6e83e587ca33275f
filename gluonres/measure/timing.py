"""Timing, one way for every measurement: warm-up calls excluded, then the variants timed
round by round, interleaved, so that a slow spell of the machine falls on every variant
alike; the median sample is the figure.

:class:`Timer` is a named workload, :func:`local` and :func:`forward` make one for work in
this process, :func:`interleaved` times several side by side. :func:`train_throughput`
times the training step on real against synthetic batches with them; :func:`data_bench`
does so for a registered model on a dataset (``gluonres data bench``).
"""
import dataclasses
import time

import mxnet as mx
import numpy as np
from tqdm import tqdm

from gluonres.data.loading import load
from gluonres.data.preprocess import Preprocess
from gluonres.machine import machine
from gluonres.models import get_model, model_info
from gluonres.models.init import he_initialize
from gluonres.train.config import recipe
from gluonres.train.step import input_stream, loss_for, prepare, train_step


# ---------------------------------------------------------------------------- timing
class Timer:
    """A named workload: ``run(iters)`` returns the seconds ``iters`` calls took.

    Attributes
    ----------
    name : str
    images : int
        Images per call.
    seconds : list of float
        Each timed sample's seconds.
    samples : list of float
        Each timed sample's images per second.
    iters : int or None
        Calls per sample when set (:func:`calibrate`), in place of the caller's.
    """

    def __init__(self, name, run, images_per_call):
        self.name, self.run, self.images = name, run, images_per_call
        self.seconds, self.samples = [], []
        self.iters = None

    def time(self, iters):
        """Time one sample of ``iters`` calls (or of :attr:`iters`, when
        :func:`calibrate` set it) and keep it."""
        iters = self.iters or iters
        seconds = self.run(iters)
        self.seconds.append(seconds)
        self.samples.append(iters * self.images / seconds)

    def median_rate(self):
        """Median images per second over the samples (``None`` before any)."""
        return float(np.median(self.samples)) if self.samples else None


def local(name, fn, images):
    """A timer for an in-process callable that blocks until its work is done."""
    def run(iters):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        return time.perf_counter() - start
    return Timer(name, run, images)


def forward(name, block, x):
    """A timer for forward passes of ``block`` on the batch ``x``, each waited for."""
    return local(name, lambda: block(x).wait_to_read(), x.shape[0])


def interleaved(timers, repeats, warmup, iters, progress=None, drop_failing=False, gap=0.0,
                settle=0, start=0):
    """Warm each timer up, then time ``repeats`` rounds of all timers in turn.

    Every other round runs the timers in reverse order (A B C, C B A, A B C ...): a
    timer's place in a fixed order moved its speed by up to 15% on a 2-core AMD EPYC
    (two copies each of two training steps that differ only in their optimizer, fixed
    order: 441, 389, 447, 386 img/s), which would bias every ratio; with an even
    ``repeats`` each timer holds each place equally often.

    Parameters
    ----------
    timers : list of Timer
        Each collects ``repeats`` samples of ``iters`` calls (of its own
        :attr:`Timer.iters` where :func:`calibrate` set it).
    repeats, warmup, iters : int
        Timed rounds, untimed calls per timer first, calls per sample.
    progress : callable, optional
        Called as ``progress(round, repeats)`` after each round.
    drop_failing : bool, default False
        A timer whose warm-up raises is removed from ``timers`` and its error recorded,
        instead of aborting the others (optional peers).
    gap : float, default 0
        Untimed seconds of sleep before each sample: OpenMP threads spin for a while
        after their last parallel region, so the variant timed before must fall idle
        before the next one starts (a peer in another process shares the cores).
    settle : int, default 0
        Untimed calls of a timer right before each of its samples, so that a sample
        starts from the timer's own state, not from what the variant before it left in
        the caches and allocators.
    start : int, default 0
        Rounds already timed in earlier calls: the order alternates on from there, so
        that blocks of odd length keep forward and reversed rounds balanced overall.

    Returns
    -------
    dict of str to str
        The errors of dropped timers, by name.
    """
    errors = {}
    for t in list(timers) if warmup else []:
        try:
            t.run(warmup)
        except Exception as err:
            if not drop_failing:
                raise
            errors[t.name] = f"{type(err).__name__}: {err}"
            timers.remove(t)
    for r in range(repeats):
        for t in (timers if (start + r) % 2 == 0 else timers[::-1]):
            if gap:
                time.sleep(gap)
            if settle:
                t.run(settle)
            t.time(iters)
        if progress:
            progress(r + 1, repeats)
    return errors


def calibrate(timers, min_seconds, iters):
    """Give each timer enough calls per sample to last ``min_seconds``, at least
    ``iters``: one call of each is timed (after its warm-up). Short samples carry the
    machine's sub-second noise: 85 ms samples of a ResNet-20 forward spread by 30% within
    a round on a 2-core AMD EPYC.

    Parameters
    ----------
    timers : list of Timer
        A timer whose call raises is removed from the list, its error returned.
    min_seconds : float
    iters : int
        The fewest calls per sample.

    Returns
    -------
    tuple of (dict of str to int, dict of str to str)
        Calls per sample by timer name, and the errors of removed timers.
    """
    errors = {}
    for t in list(timers):
        try:
            seconds = t.run(1)
        except Exception as err:
            errors[t.name] = f"{type(err).__name__}: {err}"
            timers.remove(t)
            continue
        t.iters = max(iters, int(np.ceil(min_seconds / max(seconds, 1e-6))))
    return {t.name: t.iters for t in timers}, errors


def gemm_gflops(n=2048, repeats=5):
    """fp32 GEMM rate through mxnet's oneDNN ``FullyConnected`` on the same threads.

    ``n x n`` by ``n x n``: ``2 n^3`` floating-point operations; the median of
    ``repeats`` after one warm-up.
    """
    a = mx.nd.random.uniform(shape=(n, n))
    b = mx.nd.random.uniform(shape=(n, n))
    gemm = local("gemm", lambda: mx.nd.FullyConnected(a, b, no_bias=True,
                                                       num_hidden=n).wait_to_read(), 1)
    interleaved([gemm], repeats, 1, 1)
    return gemm.median_rate() * 2 * n ** 3 / 1e9


# ---------------------------------------------------------------------------- training
def train_throughput(net, data, config=None, iterations=5, rounds=12, ctx=None,
                     progress=True):
    """Training images/s with real batches against synthetic input, side by side.

    Real: a batch drawn, cropped and flipped from the in-memory training images,
    converted and normalised, then one :func:`~gluonres.train.step.train_step`.
    Synthetic: the same step on one fixed, already normalised batch. Blocks of
    ``iterations`` steps of each alternate for ``rounds`` rounds after three untimed
    steps of each (:func:`interleaved`), so that other load on the machine hits both
    alike.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        A registered model, initialised here.
    data : gluonres.data.Data
    config : gluonres.train.TrainConfig, optional
        Defaults to the model's recipe.
    iterations, rounds : int
        Steps per timed block, timed blocks of each input.
    ctx : mxnet.Context, optional
    progress : bool, default True
        Progress bar on standard error.

    Returns
    -------
    dict
        ``real_img_s`` and ``synthetic_img_s`` (all timed images over all timed
        seconds), ``ratio`` (real/synthetic), per-block values, ``batch_size``,
        ``iterations``, ``rounds``, ``machine``.
    """
    ctx = ctx or mx.cpu()
    config = config or recipe(model_info(net).name)
    step, stream = _training_step(net, data, config, ctx)
    fixed = next(stream)

    def timer(name, batch):
        return local(name, lambda: step(*batch()), config.batch_size)
    real, synthetic = timer("real", lambda: next(stream)), timer("synthetic", lambda: fixed)
    with tqdm(total=rounds, desc="throughput", unit="round", disable=not progress,
              leave=False) as bar:
        interleaved([real, synthetic], rounds, 3, iterations, lambda r, n: bar.update())
    images = iterations * config.batch_size * rounds
    real_img_s, synthetic_img_s = images / sum(real.seconds), images / sum(synthetic.seconds)
    return {"model": model_info(net).name, "data": data.name,
            "batch_size": config.batch_size, "iterations": iterations, "rounds": rounds,
            "real_img_s": real_img_s, "synthetic_img_s": synthetic_img_s,
            "ratio": real_img_s / synthetic_img_s,
            "real_img_s_blocks": real.samples, "synthetic_img_s_blocks": synthetic.samples,
            "machine": machine()}


def _training_step(net, data, config, ctx):
    """``(step, stream)``: one training update of a freshly initialised ``net`` with
    ``config`` (optimizer and loss included) on a batch, its metrics read back, and
    ``data``'s training batches as ``gluonres train`` makes them."""
    he_initialize(net, config.seed, ctx)
    preprocess = Preprocess.fit(data.train.images, config.normalize)
    net(mx.nd.zeros((1, 3) + data.train.images.shape[1:3], ctx=ctx))
    block, trainer = prepare(net, config, ctx)
    trainer.set_learning_rate(config.lr)
    loss_fn = loss_for(config)

    def step(x, y):
        return train_step(block, trainer, loss_fn, x, y).asnumpy()
    return step, input_stream(data.train, config, preprocess, ctx)


def recipe_throughput(model, data, recipes=("paper", "fast"), iterations=5, rounds=8,
                      progress=True):
    """Training images/s of a model under named recipes, side by side on real batches.

    Each recipe gets its own network, optimizer and loss (:func:`~gluonres.train.recipe`:
    e.g. Nesterov momentum and the label-smoothed loss for ``fast``) and the training
    pipeline's batches; blocks of ``iterations`` steps of each alternate for ``rounds``
    rounds after three untimed steps of each (:func:`interleaved`). Multiplied by a run's
    epochs, this gives the per-epoch cost of each recipe on one machine at one time.

    Parameters
    ----------
    model, data, progress
        As for :func:`data_bench`.
    recipes : sequence of str
        Names in :data:`gluonres.train.RECIPES`.
    iterations, rounds : int
        Steps per timed block, timed blocks of each recipe.

    Returns
    -------
    dict
        ``recipes``: per name ``img_s`` (all timed images over all timed seconds),
        ``img_s_blocks`` and ``settings`` (:meth:`TrainConfig.describe`); ``model``,
        ``data``, ``batch_size``, ``iterations``, ``rounds``, ``machine``.
    """
    ctx = mx.cpu()
    dataset = load(data, size=model_info(get_model(model)).input_size, progress=progress)
    timers, configs = [], {}
    for name in recipes:
        config = configs[name] = recipe(model, name, flip=dataset.hflip)
        step, stream = _training_step(get_model(model, classes=len(dataset.classes)), dataset,
                                      config, ctx)
        timers.append(local(name, lambda step=step, stream=stream: step(*next(stream)),
                            config.batch_size))
    with tqdm(total=rounds, desc="recipes", unit="round", disable=not progress,
              leave=False) as bar:
        interleaved(timers, rounds, 3, iterations, lambda r, n: bar.update())
    return {"model": model, "data": dataset.name, "iterations": iterations, "rounds": rounds,
            "batch_size": {n: c.batch_size for n, c in configs.items()},
            "recipes": {t.name: {"img_s": t.images * iterations * rounds / sum(t.seconds),
                                 "img_s_blocks": t.samples,
                                 "settings": configs[t.name].describe()} for t in timers},
            "machine": machine()}


def data_bench(model, data, batch_size=128, iterations=5, rounds=12, progress=True,
               **model_kwargs):
    """:func:`train_throughput` of a registered model on a dataset, with the model's recipe.

    Parameters
    ----------
    model : str
        Registered name.
    data : str
        As for :func:`gluonres.data.load`, decoded at the model's input size.
    batch_size : int, default 128
    iterations, rounds : int
        As for :func:`train_throughput`.
    progress : bool, default True
        Progress bars on standard error.
    **model_kwargs
        Builder options: ``classes``, ``shortcut`` ...

    Returns
    -------
    dict
        :func:`train_throughput`'s record.
    """
    net = get_model(model, **model_kwargs)
    dataset = load(data, size=model_info(net).input_size, progress=progress)
    # flips only where they keep the label (not for digits), as training does
    config = dataclasses.replace(recipe(model), batch_size=batch_size, flip=dataset.hflip)
    return train_throughput(net, dataset, config, iterations=iterations, rounds=rounds,
                            progress=progress)
