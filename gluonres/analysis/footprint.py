"""Memory a network needs per image, and the inference batch that fits this machine.

Evaluation used to run in batches of 256 whatever the model and input size; a hybridized
EfficientNet-B0 at 224x224 then asked for about 26 GB (mxnet 1.9.1's statically planned
inference graph keeps nearly every activation of that network: 102 MB per image measured,
against 109 MB for all its node outputs) and was killed on a 24 GB machine. Here the
batch comes from the graph instead: all node outputs of one image (an upper bound of what
any plan keeps) into a fraction of the memory available now. docs/performance.md has the
measurements (``results/memory-224.json``).
"""
import math
import numbers
import os

import mxnet as mx
import numpy as np

from gluonres.errors import GluonresError

#: The most images per evaluation batch: the former fixed batch; more gains nothing on a CPU.
MAX_INFERENCE_BATCH = 256
#: Share of the available memory one evaluation batch may take: the rest is for the
#: training step of the same process and for other processes on the machine.
INFERENCE_MEMORY_FRACTION = 0.25
#: Peak memory of a training step per byte of activations (all node outputs of one
#: image, float32), the highest measured: EfficientNet-B0 at 224 (278 MB per image
#: against 109 MB of outputs; ResNet-50 needs 0.8, its planner reuses buffers).
TRAINING_BYTES_PER_ACTIVATION_BYTE = 2.6


def activation_bytes(net, image_size=None, in_channels=None):
    """Bytes of every node output of ``net`` for one image (float32), the input included.

    Read from the graph (no forward pass, no weights needed): an upper bound of the
    activations any memory plan keeps for one image at inference; a training step needs
    a multiple of it (:data:`TRAINING_BYTES_PER_ACTIVATION_BYTE` at most, measured).

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        A gluonres model, or any hybridizable block with one input ``data``.
    image_size : int or (int, int), optional
        Input height and width; default the model's native size
        (:func:`~gluonres.models.model_info`).
    in_channels : int, optional
        Default the model's input channels (3 for a block that is not a gluonres model).

    Returns
    -------
    int
    """
    if image_size is None or in_channels is None:
        from gluonres.models import model_info
        info = model_info(net)
        image_size = info.input_size if image_size is None else image_size
        in_channels = info.in_channels if in_channels is None else in_channels
    h, w = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    sym = net(mx.sym.var("data"))
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=(1, in_channels, int(h), int(w)))
    weights = set(sym.list_arguments()) - {"data"} | set(sym.list_auxiliary_states())
    return 4 * sum(int(np.prod(shape)) for name, shape in zip(internals.list_outputs(),
                                                              out_shapes)
                   if name not in weights)


def available_memory():
    """Bytes of memory available to a new allocation now (``MemAvailable``), or ``None``.

    ``MemAvailable`` counts free memory plus what the kernel can reclaim (file caches);
    where ``/proc/meminfo`` has no such line, the free physical pages.
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def inference_batch(net, image_size=None, in_channels=None, available=None,
                    fraction=INFERENCE_MEMORY_FRACTION, cap=MAX_INFERENCE_BATCH,
                    per_image=None):
    """The largest power-of-two batch whose activations fit ``fraction`` of ``available``.

    The default evaluation batch of :func:`gluonres.analysis.evaluation.predict_dataset`,
    ``gluonres train`` (per epoch) and ``gluonres evaluate``. A power of two, so that small
    changes in free memory do not change the batch from one run to the next.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    image_size : int or (int, int), optional
        The size evaluated at; default the model's native size.
    in_channels : int, optional
        Default the model's.
    available : int, optional
        Bytes of memory to budget from; default :func:`available_memory` now.
    fraction : float, default :data:`INFERENCE_MEMORY_FRACTION`
    cap : int, default :data:`MAX_INFERENCE_BATCH`
    per_image : int, optional
        :func:`activation_bytes` when already known.

    Returns
    -------
    int
        Between 1 and ``cap``; ``cap`` when the available memory is unknown.
    """
    available = available_memory() if available is None else available
    if available is None:
        return cap
    per_image = per_image or activation_bytes(net, image_size, in_channels)
    fits = int(fraction * available // max(per_image, 1))
    if fits < 1:
        return 1
    return max(1, min(cap, 2 ** int(math.log2(fits))))


def training_memory_warning(net, batch_size, image_size=None, in_channels=None,
                            available=None, per_image=None):
    """A warning with the fix when a training batch may not fit in the available memory.

    The estimate is an upper one (:data:`TRAINING_BYTES_PER_ACTIVATION_BYTE` times the
    activations of a batch): a warning, not a refusal, because networks whose memory
    plan reuses buffers need less than a third of it (ResNet-50: 105 MB per image at
    224, against an estimate of 357 MB). Linux kills a process that runs out of memory
    without an error to catch, so this is said before the first step.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    batch_size : int
        Images per training step.
    image_size, in_channels, per_image
        As for :func:`inference_batch`.
    available : int, optional
        Default :func:`available_memory` now.

    Returns
    -------
    str or None
        ``None`` when the estimate fits (or the available memory is unknown).
    """
    available = available_memory() if available is None else available
    if available is None:
        return None
    per_image = per_image or activation_bytes(net, image_size, in_channels)
    per_step = TRAINING_BYTES_PER_ACTIVATION_BYTE * per_image
    need = batch_size * per_step
    if need <= available:
        return None
    fits = int(available // per_step)
    fix = (f"pass --batch-size {2 ** int(math.log2(fits))} or less" if fits >= 1 else
           "train at a smaller input size")
    return (f"a training step in batches of {batch_size} may need up to {need / 2 ** 30:.0f} "
            f"GiB ({per_step / 2 ** 20:.0f} MiB per image, an upper estimate), but "
            f"{available / 2 ** 30:.0f} GiB is available; if the run is killed, {fix}")


def check_batch_size(value, option="--batch-size", name="batch size", example=32):
    """Refuse a batch size that is not a whole number of at least 1; ``None`` passes.

    Raises
    ------
    GluonresError
        Naming ``option`` as the fix.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise GluonresError(f"{name} {value!r} is not a whole number of images of at least 1; "
                            f"pass e.g. {option} {example}, or leave it out to derive it from the "
                            "model, the input size and the free memory")
