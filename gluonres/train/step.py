"""One training step: the static graph that runs it, the Trainer, and the input batches.
"""
import ctypes

import mxnet as mx
from mxnet import autograd, gluon

from gluonres.data.augment import epoch_batches


# ---------------------------------------------------------------------------- the step
def prepare(net, config, ctx=None, workers=None, lr_scheduler=None):
    """The block that runs the training steps of ``net``, and its ``gluon.Trainer``
    (``config.optimizer``).

    The one place that decides how a network executes during training: the static graph
    of :func:`gluonres.train.speed.for_training` (BatchNorm+ReLU fused; same gradients and
    statistics, measured faster by ``gluonres bench``), whose updates land in ``net``'s
    parameters. ``net`` itself is hybridized for evaluation. Its BatchNorm statistics
    arrive without an engine dependency: call ``mx.nd.waitall()`` before reading them.
    ``workers`` (:class:`~gluonres.train.distributed.Workers`) connects the trainer to the
    parameter server; ``lr_scheduler`` travels with the optimizer (``dist_async`` servers).

    Returns
    -------
    (mxnet.gluon.HybridBlock, mxnet.gluon.Trainer)
    """
    from gluonres.train import speed
    step = speed.for_training(net)
    net.hybridize(static_alloc=True, static_shape=True)
    optimizer = {"learning_rate": config.lr, "wd": config.wd}
    if config.optimizer != "adam":
        optimizer["momentum"] = config.momentum
    if lr_scheduler is not None:
        optimizer["lr_scheduler"] = lr_scheduler
    kvstore = workers.trainer_options() if workers else {"kvstore": config.kvstore}
    # BatchNorm's running statistics are not trained: left out, so that no KVStore (nor
    # its first-step broadcast, which lands after the first batch's statistics) touches
    # them
    trained = [p for p in net.collect_params().values() if p.grad_req != "null"]
    return step, gluon.Trainer(trained, config.optimizer, optimizer, **kvstore)


class SmoothedCrossEntropy(gluon.loss.Loss):
    """Softmax cross-entropy against one-hot targets mixed with ``smoothing`` of the
    uniform distribution: ``(1 - smoothing) * CE(label) + smoothing * mean_k(-log p_k)``.

    Takes sparse labels like ``gluon.loss.SoftmaxCrossEntropyLoss``; returns one loss per
    sample.
    """

    def __init__(self, smoothing, **kwargs):
        super().__init__(None, 0, **kwargs)
        self._smoothing = smoothing

    def hybrid_forward(self, F, pred, label):
        logp = F.log_softmax(pred, axis=-1)
        target = -F.pick(logp, label, axis=-1)
        uniform = -F.mean(logp, axis=-1)
        return (1 - self._smoothing) * target + self._smoothing * uniform


def default_layout(net):
    """Wait for the engine, then store every parameter of ``net`` in MXNet's plain layout.

    In mxnet 1.9.1 an inference-mode pass (``_complete_shapes``, an evaluation, an
    export) leaves convolution and dense weights in oneDNN's blocked layout, and the
    next training forward only *schedules* their reordering back, from inside the
    engine: after the optimizer updates Python has already queued. Whether the first
    updates after an evaluation see a blocked weight then depends on timing, and
    ``nag_mom_update`` (out=weight) gives another result for one (a temporary copy: the
    momentum's weight decay reads the old weight) than for a plain one (in place: it
    reads the new one). SGD's update is the same either way. Call this before training
    steps that follow inference; it costs one wait.
    """
    mx.nd.waitall()  # the blocked layout itself arrives asynchronously
    ptr = ctypes.c_void_p()
    for p in net.collect_params().values():
        for arr in p.list_data():
            # MXNDArrayGetData reorders a oneDNN array to the default layout and waits
            mx.base.check_call(mx.base._LIB.MXNDArrayGetData(arr.handle, ctypes.byref(ptr)))


def loss_for(config):
    """The training loss of ``config``: cross-entropy, label-smoothed if it says so."""
    if config.label_smoothing:
        return SmoothedCrossEntropy(config.label_smoothing)
    return gluon.loss.SoftmaxCrossEntropyLoss()


def train_step(net, trainer, loss_fn, x, y, batch_size=None):
    """One optimizer update on a batch; returns an NDArray ``[mean loss, error rate]``.

    The metrics depend on the forward pass only, so reading them does not wait for the
    backward pass and update. ``batch_size`` normalises the gradient (default: the
    batch's; distributed workers pass the whole batch, see
    :meth:`~gluonres.train.distributed.Workers.step_size`).
    """
    with autograd.record():
        out = net(x)
        loss = loss_fn(out, y)
    loss.backward()
    trainer.step(batch_size or x.shape[0])
    return mx.nd.stack(loss.mean(), (out.argmax(axis=1) != y).mean())


def to_input(images, labels, preprocess, ctx):
    """A uint8 numpy batch and its labels as network input and float labels on ``ctx``."""
    x = preprocess(mx.nd.array(images, ctx=ctx, dtype="uint8"))
    return x, mx.nd.array(labels, ctx=ctx, dtype="float32")


def input_stream(train, config, preprocess, ctx=None):
    """Endless network-ready training batches, epoch after epoch, augmented as ``fit``
    draws them (:func:`gluonres.data.epoch_batches`, then :func:`to_input`)."""
    epoch = 0
    while True:
        for images, labels in epoch_batches(train, config.batch_size, config.seed, epoch,
                                            config.pad, config.flip):
            yield to_input(images, labels, preprocess, ctx or mx.cpu())
        epoch += 1
