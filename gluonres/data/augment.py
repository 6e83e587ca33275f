"""The papers' augmentation (pad, random crop, flip), vectorised over whole batches, and
epoch batches as a pure function of ``(seed, epoch)``.
"""
import numpy as np


# ---------------------------------------------------------------------------- augmentation
def random_crop_flip(images, rng, pad=4, flip=True):
    """The papers' CIFAR augmentation on a uint8 ``(N, H, W, 3)`` batch, vectorised.

    Each image is zero-padded by ``pad`` pixels on every side (black, as torchvision's
    ``RandomCrop(32, padding=4)``), cropped back to ``H`` x ``W`` at a random offset, and
    mirrored with probability 1/2. A batch costs well under a millisecond, where
    per-image gluon transforms would cost more than the network step on two cores.

    Parameters
    ----------
    images : numpy.ndarray
    rng : numpy.random.Generator
        The only source of randomness, so a batch is a function of the generator state.
    pad : int, default 4
    flip : bool, default True

    Returns
    -------
    numpy.ndarray
        A new array; ``images`` is not modified.
    """
    n, h, w, _ = images.shape
    # drawn in the order the earlier vectorised version drew them (rows, columns,
    # mirrors), so a (seed, epoch) still gives the same batches
    offsets = [rng.integers(0, 2 * pad + 1, n) - pad for _ in "yx"] if pad else [[0] * n] * 2
    mirror = rng.random(n) < 0.5 if flip else [False] * n
    # one slice copy per image into a zeroed batch: about twice as fast as padding the
    # batch and gathering with fancy indices, and this runs on every training step
    out = np.zeros_like(images)
    for i, (y, x) in enumerate(zip(*offsets)):
        window = images[i, max(y, 0):h + min(y, 0), max(x, 0):w + min(x, 0)]
        target = out[i, max(-y, 0):h - max(y, 0), max(-x, 0):w - max(x, 0)]
        target[...] = window
        if mirror[i]:
            out[i] = out[i, :, ::-1]
    return out


def epoch_batches(split, batch_size, seed, epoch, pad=4, flip=True):
    """One epoch of augmented training batches: ``(uint8 images, int labels)`` numpy pairs.

    The order and the augmentation are a pure function of ``(seed, epoch)``, so a run
    resumed at an epoch boundary sees exactly the batches an uninterrupted run sees. The
    last incomplete batch is dropped (every batch has ``batch_size`` images).
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(split))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        images = split.images[idx]
        if pad or flip:
            images = random_crop_flip(images, rng, pad, flip)
        yield images, split.labels[idx]
