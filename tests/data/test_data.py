"""Data paths: digits, image folders, RecordIO round trip, gluon CIFAR-10, augmentation."""
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluonres import data
from gluonres.data.preprocess import Preprocess
from gluonres.errors import DataError

from helpers import write_folder


def test_digits_is_3x32x32_offline_and_fixed():
    d = data.load("digits")
    assert d.train.images.shape == (1797 - data.DIGITS_TEST, 32, 32, 3)
    assert d.test.images.shape == (data.DIGITS_TEST, 32, 32, 3)
    assert d.train.images.dtype == np.uint8 and d.classes == [str(i) for i in range(10)]
    assert not d.hflip  # a mirrored digit is another symbol
    # grey digits: the three channels are equal, and ink reaches full intensity
    np.testing.assert_array_equal(d.train.images[..., 0], d.train.images[..., 2])
    assert d.train.images.max() == 255
    again = data.load("digits")
    np.testing.assert_array_equal(again.test.images, d.test.images)
    assert len(np.unique(d.test.labels)) == 10


def test_image_folder_decodes_exactly(tmp_path):
    written = write_folder(str(tmp_path))
    d = data.load(str(tmp_path))
    assert d.classes == ["cat", "dog"]
    for split in ("train", "test"):
        images, labels = written[split]
        np.testing.assert_array_equal(getattr(d, split).images, images)  # PNG: lossless
        np.testing.assert_array_equal(getattr(d, split).labels, labels)
    assert not d.train.lossy and "note" not in d.describe()
    image, label = d.test[4]  # the gluon Dataset interface
    assert isinstance(image, mx.nd.NDArray) and label == 1


def test_folder_of_class_folders_is_one_split(tmp_path):
    write_folder(str(tmp_path), splits=(None,), classes=("finch", "robin", "wren"), ext=".jpg")
    d = data.load(str(tmp_path))
    assert d.test is None and len(d.train) == 9 and d.classes == ["finch", "robin", "wren"]
    assert d.train.lossy and "JPEG" in d.describe()["note"]


def test_size_brings_mixed_images_to_one_shape(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    cv2.imwrite(str(folder / "wide.png"), np.zeros((40, 64, 3), np.uint8))
    cv2.imwrite(str(folder / "small.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match="different sizes.*pass a size"):
        data.load(str(tmp_path))
    assert data.load(str(tmp_path), size=32).train.images.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no class subfolders"),
    (lambda p: (p / "train" / "cat").mkdir(parents=True), "has no images"),
])
def test_bad_folders_name_the_problem(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=message):
        data.load(str(root))


def test_unreadable_image_is_named_by_path(tmp_path):
    write_folder(str(tmp_path))
    bad = tmp_path / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=f"cannot decode image '{bad}'"):
        data.load(str(tmp_path))


def test_recordio_round_trip(tmp_path):
    src = tmp_path / "src"
    write_folder(str(src), ext=".jpg")
    folder = data.load(str(src))
    out = tmp_path / "rec"
    result = data.pack_recordio(str(src), str(out), progress=False)
    assert result["splits"] == {"train": 6, "test": 6}
    assert sorted(os.listdir(out)) == ["meta.json", "test.idx", "test.rec", "train.idx",
                                       "train.rec"]
    rec = data.load(str(out))
    for split in ("train", "test"):  # the original JPEG bytes: the same pixels
        np.testing.assert_array_equal(getattr(rec, split).images, getattr(folder, split).images)
        np.testing.assert_array_equal(getattr(rec, split).labels, getattr(folder, split).labels)
    assert rec.classes == ["cat", "dog"] and rec.train.lossy
    single = data.load(str(out / "train.rec"))
    assert single.test is None and len(single.train) == 6


def test_pack_writes_nothing_on_bad_input_or_into_a_full_folder(tmp_path):
    src = tmp_path / "src"
    write_folder(str(src))
    (src / "test" / "cat" / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="bad.png"):
        data.pack_recordio(str(src), str(tmp_path / "rec"), progress=False)
    assert not (tmp_path / "rec").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".pack")] == []
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        data.pack_recordio(str(src), str(full), progress=False)
    assert os.listdir(full) == ["keep.txt"]


def test_recordio_without_index_or_truncated(tmp_path):
    src = tmp_path / "src"
    write_folder(str(src), splits=("train",))
    data.pack_recordio(str(src), str(tmp_path / "rec"), progress=False)
    rec = tmp_path / "rec" / "train.rec"
    rec.write_bytes(rec.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupt|cannot decode"):
        data.load(str(rec))
    (tmp_path / "rec" / "train.idx").unlink()
    with pytest.raises(DataError, match="train.idx.*does not exist"):
        data.load(str(rec))


def test_gluon_cifar10_offline_error_and_conversion(monkeypatch):
    def offline(**kwargs):
        raise OSError("Failed to resolve 'apache-mxnet.s3-accelerate.dualstack.amazonaws.com'")
    monkeypatch.setattr(mx.gluon.data.vision, "CIFAR10", offline)
    with pytest.raises(DataError, match="network access.*cifar10-jpg.tar.gz"):
        data.load("cifar10")

    class Downloaded:  # what gluon's dataset returns for ds[:]
        def __init__(self, train):
            n = 5 if train else 3
            self.items = (mx.nd.array(np.full((n, 32, 32, 3), 7), dtype="uint8"),
                          np.arange(n, dtype=np.int32))

        def __getitem__(self, idx):
            return self.items

    monkeypatch.setattr(mx.gluon.data.vision, "CIFAR10", lambda train: Downloaded(train))
    d = data.load("cifar10")
    assert (len(d.train), len(d.test)) == (5, 3) and d.classes[0] == "airplane"
    assert d.train.images.dtype == np.uint8 and d.train.images.max() == 7


def test_validation_split_is_seeded_and_disjoint():
    d = data.load("digits", val_size=200, seed=3)
    assert (len(d.train), len(d.val)) == (1237, 200)
    full = data.load("digits").train.images.reshape(1437, -1)
    rows = {r.tobytes(): i for i, r in enumerate(full)}
    train_rows = {rows[r.tobytes()] for r in d.train.images.reshape(len(d.train), -1)}
    val_rows = {rows[r.tobytes()] for r in d.val.images.reshape(200, -1)}
    assert not train_rows & val_rows
    np.testing.assert_array_equal(data.load("digits", val_size=200, seed=3).val.labels,
                                  d.val.labels)
    assert len(data.load("digits", val_size=0.1).val) == 144
    with pytest.raises(DataError, match="leaves no training"):
        data.load("digits", val_size=1437)


def test_crop_flip_takes_windows_of_the_padded_image():
    # unique values (uint16) so a window identifies its offset
    images = np.arange(6 * 8 * 8, dtype=np.uint16).reshape(6, 8, 8)[..., None].repeat(3, 3)
    out = data.random_crop_flip(images, np.random.default_rng(0), pad=2)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    # the generator's draws, in the order every version made them: rows, columns, mirrors
    # (so recorded runs and checkpoints keep meaning the same batches)
    rng = np.random.default_rng(0)
    draws = zip(rng.integers(0, 5, 6), rng.integers(0, 5, 6), rng.random(6) < 0.5)
    flipped = 0
    for img, pad, drawn in zip(out, padded, draws):
        windows = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
                   if np.array_equal(img, (pad[dy:dy + 8, dx:dx + 8, :][:, ::-1] if f
                                           else pad[dy:dy + 8, dx:dx + 8, :]))]
        assert windows, "every output is a (possibly mirrored) window of the padded input"
        assert tuple(drawn) in windows
        flipped += windows[0][2]
    assert 0 < flipped < 6
    same = data.random_crop_flip(images, np.random.default_rng(0), pad=2)
    np.testing.assert_array_equal(same, out)
    np.testing.assert_array_equal(data.random_crop_flip(images, None, pad=0, flip=False),
                                  images)


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    split = data.load("digits").train.subset(np.arange(100))
    first = list(data.epoch_batches(split, 32, seed=1, epoch=4))
    again = list(data.epoch_batches(split, 32, seed=1, epoch=4))
    other = list(data.epoch_batches(split, 32, seed=1, epoch=5))
    assert len(first) == 3  # 100 // 32: the incomplete batch is dropped
    for (a, la), (b, lb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(first[0][1], other[0][1])


def test_preprocess_fit_pixel_and_channel():
    images = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    pixel = Preprocess.fit(images)
    np.testing.assert_allclose(pixel.mean_image, images.mean(0).transpose(2, 0, 1) / 255,
                               rtol=1e-6)
    channel = Preprocess.fit(images, "channel")
    np.testing.assert_allclose(channel.mean, (images / 255).mean((0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(channel.std, (images / 255).std((0, 1, 2)), rtol=1e-9)
    with pytest.raises(DataError, match="unknown normalisation"):
        Preprocess.fit(images, "batch")


def test_balanced_subset_is_even_seeded_and_sorted():
    labels = np.repeat(np.arange(4), [50, 30, 10, 5])
    idx = data.balanced_subset(labels, 22, seed=1)
    assert list(idx) == sorted(idx) and len(set(idx)) == 22
    counts = np.bincount(labels[idx])
    assert set(counts) == {5, 6} and counts[3] == 5  # the 5-item class gives all it has
    assert np.array_equal(idx, data.balanced_subset(labels, 22, seed=1))
    assert not np.array_equal(idx, data.balanced_subset(labels, 22, seed=2))
    # a class with too few items gives all it has; the others fill the count
    counts = np.bincount(labels[data.balanced_subset(labels, 60)])
    assert counts[2:].tolist() == [10, 5] and sorted(counts[:2]) == [22, 23]
    assert len(data.balanced_subset(labels, 1000)) == len(labels)
    with pytest.raises(DataError, match="at least one"):
        data.balanced_subset(labels, 0)


def test_resized_keeps_labels_and_leaves_the_original():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    split = data.ImageArrays(images, [0, 1, 2], ["a", "b", "c"], lossy=True)
    big = split.resized(64)
    assert big.images.shape == (3, 64, 64, 3) and big.lossy and big.classes == split.classes
    assert big.labels.tolist() == [0, 1, 2] and split.images.shape == (3, 32, 32, 3)
    assert split.resized(32) is split
