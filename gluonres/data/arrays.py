"""In-memory datasets: :class:`ImageArrays` (uint8 NHWC images, labels, class names) and
:class:`Data` (the train / val / test splits of one source).
"""
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

from gluonres.data.images import fit_pixels
from gluonres.errors import DataError


#: The one wording of the caveat that travels with every number measured on JPEG images
#: (``Data.describe()['note']``, experiment records, reports, the results page).
JPEG_CAVEAT = ("images stored as JPEG: networks trained on the lossless CIFAR-10 the papers "
               "used lose about 10 points on this copy, a train/test shift (the reference "
               "ResNet-20 scores 91.7% on lossless CIFAR-10 and 81.03% on the shared JPEG "
               "copy); trained on the JPEG images themselves, our ResNet-20 reaches 86.26% "
               "(results/resnet20_cifar-cifar10jpg.json), and a public report puts the cost "
               "of training on a JPEG copy of CIFAR-10 at 2-3 points, so most of the gap to "
               "the papers is our shorter schedules (390 to 17,550 updates against their "
               "64,000: 3.6-164x fewer); compare with lossless-CIFAR and paper numbers only "
               "with this caveat")


class ImageArrays(mx.gluon.data.Dataset):
    """Decoded images in memory: a gluon ``Dataset`` of ``(uint8 HxWxC image, label)``.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 ``(N, H, W, C)``: RGB (C 3) or grey (C 1).
    labels : numpy.ndarray
        Integer class indices ``(N,)``.
    classes : list of str
        Class names; ``labels`` index into it.
    lossy : bool, default False
        The images were stored with lossy (JPEG) compression.
    resized : bool, default False
        Some images were stored at another size than they are here: a network trained on
        them takes other sizes (its export resizes them alike); one trained on images
        stored at its size does not.
    """

    def __init__(self, images, labels, classes, lossy=False, resized=False):
        self.images = np.ascontiguousarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.classes = list(classes)
        self.lossy = lossy
        self.resized_from_other_sizes = resized

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return mx.nd.array(self.images[idx], dtype="uint8"), int(self.labels[idx])

    @property
    def synsets(self):
        """Class names (the name ``ImageFolderDataset`` uses)."""
        return self.classes

    def subset(self, index):
        """The images at ``index`` (indices or a boolean mask) as a new ``ImageArrays``."""
        return ImageArrays(self.images[index], self.labels[index], self.classes, self.lossy,
                           self.resized_from_other_sizes)

    def resized(self, size=None, shorter_side=None, channels=None):
        """The images brought to ``size`` x ``size`` (and ``channels``) as a new
        ``ImageArrays``, each by :func:`~gluonres.data.images.fit_pixels` (shorter side to
        ``shorter_side``, default ``size``, then the centre crop); ``self`` if nothing
        changes."""
        channels = channels or self.images.shape[3]
        sized = size is None or (self.images.shape[1:3] == (size, size)
                                 and shorter_side in (None, size))
        if sized and self.images.shape[3] == channels:
            return self
        return ImageArrays(np.stack([fit_pixels(im, size, shorter_side, channels)
                                     for im in self.images]),
                           self.labels, self.classes, self.lossy,
                           self.resized_from_other_sizes or not sized)

    def batches(self, batch_size):
        """``(images, labels)`` NDArray batches in order, the last one possibly smaller."""
        for start in range(0, len(self), batch_size):
            yield (mx.nd.array(self.images[start:start + batch_size], dtype="uint8"),
                   mx.nd.array(self.labels[start:start + batch_size], dtype="int32"))


@dataclass
class Data:
    """The splits of one dataset.

    Attributes
    ----------
    name : str
        ``'digits'``, ``'cifar10'`` or the path given.
    train, test, val : ImageArrays
        ``test`` is ``None`` for a single-split folder, ``val`` unless a validation
        split was asked for.
    hflip : bool
        Whether a horizontal flip keeps the label (not for digits).
    resize : dict, optional
        ``{"shorter_side": S, "center_crop": True}`` when the images were brought to
        their size by
        :func:`gluonres.data.load` (shorter side to S, centre crop): what training
        records with its weights, so that evaluation and exports resize alike.
    """

    name: str
    train: ImageArrays
    test: ImageArrays = None
    val: ImageArrays = None
    hflip: bool = True
    resize: dict = None
    classes: list = field(init=False)

    def __post_init__(self):
        self.classes = self.train.classes

    def describe(self, per_class=False):
        """JSON-ready description: name, split sizes, classes, image shape, caveats.

        Parameters
        ----------
        per_class : bool, default False
            Also ``per_class``: each split's image count per class, in class order.
        """
        splits = {k: s for k, s in (("train", self.train), ("val", self.val),
                                    ("test", self.test)) if s is not None}
        out = {"name": self.name, "splits": {k: len(s) for k, s in splits.items()},
               "classes": self.classes, "image_shape": list(self.train.images.shape[1:])}
        if self.train.lossy:
            out["note"] = JPEG_CAVEAT
        if per_class:
            out["per_class"] = {k: np.bincount(s.labels, minlength=len(self.classes)).tolist()
                                for k, s in splits.items()}
        return out


def _stack(images, where):
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images in {where!r} have different sizes ({len(shapes)} shapes, e.g. "
                        f"{sorted(shapes)[:2]}); pass a size (gluonres train and evaluate use "
                        "the model's input size)")
    return np.stack(images)

