"""How one decoded image becomes the pixels a network takes: its colour, then its size.

:func:`fit_pixels` is the one resize of gluonres: data loading (training, ``evaluate``)
and the export runtime (``predict``, INT8 calibration) call it, so the same image file
gives the same array on every path. It needs only numpy and OpenCV, so the runtime
imports it without any model code.
"""
import cv2
import numpy as np

from gluonres.errors import DataError


#: Input channels by the colour name an export manifest records (``image.color``).
COLORS = {"RGB": 3, "L": 1}
#: The colour name of each channel count.
COLOR_OF = {channels: name for name, channels in COLORS.items()}


def check_channels(channels):
    """Refuse a channel count images cannot be read as: 1 (grey) or 3 (RGB).

    Raises
    ------
    DataError
        Naming the count and the two that work.
    """
    if isinstance(channels, bool) or channels not in COLOR_OF:
        raise DataError(f"--in-channels {channels!r}: images are read as grey (1 channel) or "
                        "RGB (3 channels); pass --in-channels 1 or 3")
    return channels


def scaled_shape(height, width, shorter_side, crop=(0, 0)):
    """``(height, width)`` of an image whose shorter side is resized to ``shorter_side``,
    never smaller than ``crop`` ``(height, width)`` (so the crop always fits)."""
    scale = shorter_side / min(height, width)
    return max(crop[0], round(height * scale)), max(crop[1], round(width * scale))


def fit_pixels(image, size=None, shorter_side=None, channels=None):
    """Bring a decoded image to a network's input: colour first, then size.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 ``(H, W, C)``, C 3 (RGB) or 1 (grey).
    size : int or (int, int), optional
        The input's side (or ``(height, width)``): the shorter side is resized to
        ``shorter_side`` (bilinear when enlarging, pixel-area when shrinking) and the
        centre cropped to ``size``. ``None`` keeps the size.
    shorter_side : int, optional
        Default ``size``: the crop is the whole shorter side. A larger value crops a
        margin off (ImageNet evaluation: 256 for 224).
    channels : {1, 3}, optional
        Convert RGB to grey (OpenCV's ITU-R BT.601 weights) or grey to RGB (replicated);
        ``None`` keeps the channels.

    Returns
    -------
    numpy.ndarray
        uint8 ``(size, size, channels)``; ``image`` itself when nothing changes.
    """
    if channels is not None and image.shape[2] != channels:
        image = (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None] if channels == 1
                 else np.repeat(image, channels, axis=2))
    if size is None:
        return image
    crop = (size, size) if np.isscalar(size) else tuple(size)
    h, w = image.shape[:2]
    shorter_side = shorter_side or max(crop)
    if min(h, w) != shorter_side or h < crop[0] or w < crop[1]:
        nh, nw = scaled_shape(h, w, shorter_side, crop)
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA
                             if shorter_side < min(h, w) else cv2.INTER_LINEAR)
        image, (h, w) = resized.reshape(nh, nw, image.shape[2]), (nh, nw)  # cv2 drops C=1
    if (h, w) == crop:
        return image
    top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
    return image[top:top + crop[0], left:left + crop[1]]
