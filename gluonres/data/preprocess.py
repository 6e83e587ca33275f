"""How raw pixels (RGB or grey) become network input, as data that travels with the
weights."""
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

from gluonres.data.images import COLOR_OF
from gluonres.errors import DataError


@dataclass(eq=False)
class Preprocess:
    """Scale pixels to [0, 1], subtract a mean, divide by a standard deviation.

    Every statistic has one value per input channel: 3 for RGB, 1 for grey.

    Parameters
    ----------
    mean : tuple of float, optional
        Per-channel mean (in [0, 1] units).
    std : tuple of float, optional
        Per-channel standard deviation; ``None`` divides by nothing.
    mean_image : numpy.ndarray, optional
        Per-pixel mean ``(C, H, W)`` in [0, 1] units, the 2015 paper's CIFAR
        preprocessing; used instead of ``mean``.
    """

    mean: tuple = None
    std: tuple = None
    mean_image: np.ndarray = field(default=None, repr=False)
    # the constants as NDArrays per context: made once, not copied in on every batch
    _arrays: dict = field(default_factory=dict, init=False, repr=False)

    def __call__(self, batch):
        """Turn a uint8 ``(N, H, W, C)`` NDArray batch into float32 ``(N, C, H, W)``."""
        x = batch.astype("float32").transpose((0, 3, 1, 2)) / 255.0
        if self.mean_image is not None:
            if tuple(self.mean_image.shape) != x.shape[1:]:
                raise DataError(f"images of shape {x.shape[1:]} do not match the per-pixel "
                                f"mean of shape {tuple(self.mean_image.shape)}; resize the "
                                f"images to {self.mean_image.shape[1]}x"
                                f"{self.mean_image.shape[2]}")
            x = mx.nd.broadcast_sub(x, self._array("mean_image", x.context))
        elif self.mean is not None:
            x = mx.nd.broadcast_sub(x, self._array("mean", x.context))
        if self.std is not None:
            x = mx.nd.broadcast_div(x, self._array("std", x.context))
        return x

    def _array(self, name, ctx):
        key = (name, str(ctx))
        if key not in self._arrays:
            value = np.asarray(getattr(self, name), "float32")
            shape = (1,) + value.shape if name == "mean_image" else (1, value.size, 1, 1)
            self._arrays[key] = mx.nd.array(value.reshape(shape), ctx=ctx)
        return self._arrays[key]

    @classmethod
    def fit(cls, images, mode="pixel"):
        """The normalisation of a training set.

        Parameters
        ----------
        images : numpy.ndarray
            uint8 ``(N, H, W, C)`` training images (RGB or grey).
        mode : {'pixel', 'channel'}, default 'pixel'
            ``'pixel'``: subtract the per-pixel mean image (the 2015 paper's CIFAR
            preprocessing, Sec. 4.2); ``'channel'``: subtract the per-channel mean and
            divide by the per-channel standard deviation.

        Returns
        -------
        Preprocess
        """
        if mode not in ("pixel", "channel"):
            raise DataError(f"unknown normalisation {mode!r}; use 'pixel' (per-pixel mean, "
                            "the paper's) or 'channel' (per-channel mean and std)")
        mean_image = images.mean(axis=0, dtype=np.float64) / 255  # (H, W, C), no float copy
        if mode == "pixel":
            return cls(mean_image=mean_image.transpose(2, 0, 1).astype(np.float32))
        channels = images.shape[3]
        mean = mean_image.mean(axis=(0, 1))
        square = np.zeros(channels)
        for start in range(0, len(images), 4096):  # bounded memory on large sets
            chunk = images[start:start + 4096].astype(np.float64) / 255
            square += (chunk ** 2).sum(axis=(0, 1, 2))
        std = np.sqrt(square / (images.size / channels) - mean ** 2)
        return cls(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    @property
    def channels(self):
        """The input channels the statistics are for (``None`` when there are none)."""
        for value in (self.mean_image, self.mean, self.std):
            if value is not None:
                return len(value)
        return None

    def to_dict(self):
        """JSON-ready description (for weights files and export manifests)."""
        out = {"scale": 1 / 255, "layout": "NCHW", "color": COLOR_OF.get(self.channels, "RGB")}
        if self.mean_image is not None:
            out["mean_image"] = np.asarray(self.mean_image).tolist()
        elif self.mean is not None:
            out["mean"] = list(self.mean)
        if self.std is not None:
            out["std"] = list(self.std)
        return out

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`."""
        img = d.get("mean_image")
        return cls(mean=tuple(d["mean"]) if d.get("mean") is not None else None,
                   std=tuple(d["std"]) if d.get("std") is not None else None,
                   mean_image=np.asarray(img, "float32") if img is not None else None)


#: The input normalisation of the option-A reference weights (../shared/reference).
REFERENCE = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
