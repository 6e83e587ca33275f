"""Issue 17 at the data layer: the one resize (:func:`fit_pixels`), grey images, the
augmentation at other sizes and channel counts, and a per-channel normalisation of C
channels."""
import re

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluonres import data
from gluonres.data.images import fit_pixels
from gluonres.data.preprocess import Preprocess
from gluonres.errors import DataError

from helpers import write_folder


def _fit_size_before(img, size):
    """``gluonres.data.arrays._fit_size`` as it was before issue 17 (train and evaluate)."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                     else cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[top:top + size, left:left + size]


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(40, 48), (48, 40), (20, 30), (32, 32), (31, 100)])
def test_the_shorter_side_to_the_size_is_what_training_did(shape):
    img = RNG.integers(0, 256, shape + (3,), dtype=np.uint8)
    np.testing.assert_array_equal(fit_pixels(img, 32), _fit_size_before(img, 32))
    assert fit_pixels(img, 32).shape == (32, 32, 3)


def test_a_larger_shorter_side_crops_a_margin_and_zooms_an_image_of_the_size():
    img = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_pixels(img, 32, 40), img[4:36, 8:40])  # no resize
    square = img[:32, :32]
    zoomed = cv2.resize(square, (40, 40), interpolation=cv2.INTER_LINEAR)[4:36, 4:36]
    np.testing.assert_array_equal(fit_pixels(square, 32, 40), zoomed)
    assert fit_pixels(square, 32) is square


def test_grey_is_opencvs_conversion_of_the_rgb_pixels():
    img = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    grey = fit_pixels(img, channels=1)
    np.testing.assert_array_equal(grey, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None])
    np.testing.assert_array_equal(fit_pixels(grey, channels=3), np.repeat(grey, 3, axis=2))
    sized = fit_pixels(img, 32, channels=1)  # colour first, then the resize
    np.testing.assert_array_equal(sized, fit_pixels(grey, 32))
    assert sized.shape == (32, 32, 1)


def test_arrays_are_fitted_by_the_same_function():
    split = data.ImageArrays(RNG.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
                             [0, 1, 0, 1], ["a", "b"])
    assert split.resized(32) is split and split.resized(32, channels=3) is split
    zoomed = split.resized(32, 40, 1)
    assert zoomed.images.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(zoomed.images[2], fit_pixels(split.images[2], 32, 40, 1))


def test_load_brings_files_to_the_size_channels_and_records_the_resize(tmp_path):
    images = write_folder(str(tmp_path / "d"), splits=(None,), classes=("a", "b"),
                          per_class=3, size=(40, 48))[None][0]
    loaded = data.load(str(tmp_path / "d"), size=32, shorter_side=36, channels=1,
                       progress=False)
    assert loaded.resize == {"shorter_side": 36, "center_crop": True}
    np.testing.assert_array_equal(loaded.train.images, np.stack(
        [fit_pixels(im, 32, 36, 1) for im in images]))
    assert data.load(str(tmp_path / "d"), progress=False).resize is None
    digits = data.load("digits", size=40, channels=1)
    assert digits.train.images.shape[1:] == (40, 40, 1) and digits.resize["shorter_side"] == 40


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": 2}, "--in-channels 2: images are read as grey (1 channel) or RGB"),
    ({"size": 32, "shorter_side": 0}, "shorter side 0 is not a whole number of pixels"),
])
def test_bad_load_options(tmp_path, kwargs, message):
    write_folder(str(tmp_path / "d"), splits=(None,), per_class=1)
    with pytest.raises(DataError, match=re.escape(message)):
        data.load(str(tmp_path / "d"), progress=False, **kwargs)


@pytest.mark.parametrize("shape", [(6, 64, 64, 3), (6, 40, 40, 1), (6, 24, 36, 3)])
def test_the_augmentation_works_at_any_size_and_channels(shape):
    images = RNG.integers(1, 256, shape, dtype=np.uint8)  # no zero: padding shows as 0
    out = data.random_crop_flip(images, np.random.default_rng(1), pad=4, flip=False)
    assert out.shape == images.shape and out.dtype == np.uint8
    h, w = shape[1:3]
    for before, after in zip(images, out):  # each one a window shifted by at most 4
        padded = np.pad(before, ((4, 4), (4, 4), (0, 0)))
        assert any(np.array_equal(padded[4 + dy:4 + dy + h, 4 + dx:4 + dx + w], after)
                   for dy in range(-4, 5) for dx in range(-4, 5))
    mirrored = data.random_crop_flip(images, np.random.default_rng(1), pad=0, flip=True)
    assert all(np.array_equal(m, i) or np.array_equal(m, i[:, ::-1])
               for m, i in zip(mirrored, images))


@pytest.mark.parametrize("mode", ["channel", "pixel"])
def test_the_normalisation_of_grey_images_has_one_channel(mode):
    images = RNG.integers(0, 256, (8, 12, 12, 1), dtype=np.uint8)
    pre = Preprocess.fit(images, mode)
    assert pre.channels == 1 and pre.to_dict()["color"] == "L"
    x = pre(mx.nd.array(images, dtype="uint8")).asnumpy()
    assert x.shape == (8, 1, 12, 12)
    if mode == "channel":
        assert len(pre.mean) == len(pre.std) == 1
        assert x.mean() == pytest.approx(0, abs=1e-5) and x.std() == pytest.approx(1, abs=1e-4)
    again = Preprocess.from_dict(pre.to_dict())
    np.testing.assert_array_equal(again(mx.nd.array(images, dtype="uint8")).asnumpy(), x)
    assert Preprocess.fit(np.repeat(images, 3, axis=3), mode).to_dict()["color"] == "RGB"


def test_a_resize_is_recorded_only_where_images_were_resized(tmp_path):
    """A network trained on images stored at its size takes no others (its export refuses
    a photo rather than shrinking it to 32x32); one trained on resized images resizes."""
    from gluonres import data

    from helpers import write_folder

    write_folder(str(tmp_path / "native"), splits=(None,), per_class=2, size=(32, 32))
    write_folder(str(tmp_path / "photos"), splits=(None,), per_class=2, size=(40, 48))
    assert data.load(str(tmp_path / "native"), size=32).resize is None
    assert data.load(str(tmp_path / "photos"), size=32).resize == {"shorter_side": 32,
                                                                   "center_crop": True}
    assert data.load("digits", size=32).resize is None  # stored at 32x32 already
