"""Training: the papers' CIFAR recipe, resumable checkpoints, per-epoch logs and curves.

The recipe (2015 paper, Sec. 4.2): batch 128, SGD with momentum 0.9 and weight decay
1e-4, He initialisation, learning rate 0.1 divided by 10 at 32k and 48k iterations,
stop at 64k; 4-pixel padding, random 32x32 crops and horizontal flips; per-pixel mean
subtraction. ResNet-110/1202 warm up at 0.01 until the training error is below 80%
(about 400 iterations) and then go back to 0.1; the 2016 paper's CIFAR runs warm up for
400 iterations. ``TrainConfig(epochs=N)`` compresses the whole schedule proportionally.

:func:`fit` trains any network on a :class:`~gluonres.data.Data`; with ``out_dir`` it
writes, every epoch and atomically, ``checkpoint.params`` (weights, momentum, step,
schedule and data-order state: everything a resumed run needs; the previous one is kept
and both are verified by SHA-256, see :mod:`gluonres.checkpoints`), ``log.csv``,
``log.json`` and ``curve.png``; at the end ``weights.params`` and ``export/`` (symbol +
params). With ``kvstore='dist_sync'`` it is one of several workers on MXNet's parameter
server (:mod:`gluonres.distributed`).
"""
import time

import mxnet as mx
from mxnet import gluon
from tqdm import tqdm

from gluonres.data.preprocess import Preprocess
from gluonres.machine import machine
from gluonres.models import model_info
from gluonres.models.init import he_initialize
from gluonres.train.config import recipe
from gluonres.train.step import input_stream, prepare, train_step


# ---------------------------------------------------------------------------- throughput
def throughput(net, data, config=None, iterations=5, rounds=12, ctx=None, progress=True):
    """Training images/s with real batches against synthetic input, side by side.

    Real: a batch drawn, cropped and flipped from the in-memory training images,
    converted and normalised, then one :func:`train_step`. Synthetic: the same step on
    one fixed, already normalised batch. Short blocks of ``iterations`` steps of each
    alternate for ``rounds`` rounds (after a few untimed steps), so that other load on
    the machine hits both alike.

    Returns
    -------
    dict
        ``real_img_s`` and ``synthetic_img_s`` (all timed images over all timed
        seconds), ``ratio`` (real/synthetic), per-block values, ``batch_size``,
        ``iterations``, ``rounds``, ``machine``.
    """
    ctx = ctx or mx.cpu()
    config = config or recipe(model_info(net).name)
    he_initialize(net, config.seed, ctx)
    preprocess = Preprocess.fit(data.train.images, config.normalize)
    net(mx.nd.zeros((1, 3) + data.train.images.shape[1:3], ctx=ctx))
    step, trainer = prepare(net, config, ctx)
    trainer.set_learning_rate(config.lr)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    stream = input_stream(data.train, config, preprocess, ctx)
    fixed = next(stream)

    def timed(real, n):
        start = time.perf_counter()
        for _ in range(n):
            x, y = next(stream) if real else fixed
            train_step(step, trainer, loss_fn, x, y).asnumpy()
        return time.perf_counter() - start

    timed(True, 3), timed(False, 3)
    real, synthetic = [], []
    for _ in tqdm(range(rounds), desc="throughput", unit="round", disable=not progress,
                  leave=False):
        real.append(timed(True, iterations))
        synthetic.append(timed(False, iterations))
    images = iterations * config.batch_size
    real_img_s, synthetic_img_s = images * rounds / sum(real), images * rounds / sum(synthetic)
    return {"model": model_info(net).name, "data": data.name,
            "batch_size": config.batch_size, "iterations": iterations, "rounds": rounds,
            "real_img_s": real_img_s, "synthetic_img_s": synthetic_img_s,
            "ratio": real_img_s / synthetic_img_s,
            "real_img_s_blocks": [images / t for t in real],
            "synthetic_img_s_blocks": [images / t for t in synthetic],
            "machine": machine()}
