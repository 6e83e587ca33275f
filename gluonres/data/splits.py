"""Seeded subsets and validation splits of an :class:`~gluonres.data.ImageArrays`.
"""
import numpy as np

from gluonres.errors import DataError


def balanced_subset(labels, count, seed=0):
    """Indices of ``count`` items spread as evenly over the classes as they allow.

    A seeded permutation ranks the items of each class and items are taken by rank, so
    every class gives ``count // classes`` or one more (when it has them).

    Parameters
    ----------
    labels : array-like of int
    count : int
        At least 1; all items when it is ``len(labels)`` or more.
    seed : int, default 0

    Returns
    -------
    numpy.ndarray
        Sorted indices, for :meth:`ImageArrays.subset`.
    """
    labels = np.asarray(labels)
    if count < 1:
        raise DataError(f"a subset needs at least one item, got count={count}; pass e.g. 1000")
    if count >= len(labels):
        return np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    return np.sort(order[np.argsort(rank[order], kind="stable")][:count])


def split_validation(train, val_size, seed=0):
    """Hold out a seeded random validation split: ``(train, val)``.

    Parameters
    ----------
    train : ImageArrays
    val_size : int or float
        Number of images, or a fraction in (0, 1).
    seed : int, default 0
    """
    n = len(train)
    count = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 \
        else int(val_size)
    if not 0 < count < n:
        raise DataError(f"validation split of {val_size} leaves no training or no validation "
                        f"images out of {n}; pass a count between 1 and {n - 1} or a "
                        "fraction in (0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    return train.subset(np.sort(order[count:])), train.subset(np.sort(order[:count]))
