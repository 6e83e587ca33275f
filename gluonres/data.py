"""Datasets as decoded in-memory arrays, the papers' augmentation, splits, RecordIO.

Every source becomes :class:`ImageArrays` — uint8 ``(N, H, W, 3)`` RGB images, integer
labels and class names — decoded once, so training never decodes an image twice and the
augmentation runs vectorised on whole batches.

Sources (:func:`load`):

- ``'digits'``: scikit-learn's bundled handwritten digits brought to 3x32x32; works
  offline on a fresh machine.
- ``'cifar10'``: gluon's own ``CIFAR10`` dataset (downloads on first use).
- a folder of CIFAR-10 *binary* batches (``cifar-10-batches-bin``: ``data_batch_N.bin``,
  ``test_batch.bin``), read by :func:`cifar10_binary`. The "python version" batches are
  pickles and are refused: gluonres never unpickles a file it is given.
- an image-folder root ``train/<class>/*.jpg`` (+ ``test/<class>/``), such as the
  extracted ``cifar10-jpg.tar.gz``, or its ``.tar.gz`` archive (extracted once);
- any folder with one subfolder of images per class (a single split);
- a RecordIO folder written by :func:`pack_recordio` (``train.rec/.idx`` ...), or a
  single ``.rec`` file with its ``.idx``.
"""
import contextlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field

import cv2
import mxnet as mx
import numpy as np
from tqdm import tqdm

from .errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
LOSSY_EXTENSIONS = (".jpg", ".jpeg")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
#: Images of the embedded digits set held out for testing (seeded, fixed).
DIGITS_TEST = 360
RECORDIO_META = "meta.json"
#: One record of a CIFAR-10 binary batch: a label byte, then 32x32 R, G and B planes.
CIFAR_RECORD = 1 + 3 * 32 * 32


def cache_dir():
    """Where archives are extracted: ``$GLUONRES_CACHE`` or ``~/.cache/gluonres``."""
    return os.environ.get("GLUONRES_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                         "gluonres"))


class ImageArrays(mx.gluon.data.Dataset):
    """Decoded images in memory: a gluon ``Dataset`` of ``(uint8 HxWx3 image, label)``.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 ``(N, H, W, 3)`` RGB.
    labels : numpy.ndarray
        Integer class indices ``(N,)``.
    classes : list of str
        Class names; ``labels`` index into it.
    lossy : bool, default False
        The images were stored with lossy (JPEG) compression.
    """

    def __init__(self, images, labels, classes, lossy=False):
        self.images = np.ascontiguousarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.classes = list(classes)
        self.lossy = lossy

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
        return ImageArrays(self.images[index], self.labels[index], self.classes, self.lossy)

    def resized(self, size):
        """The images brought to ``size`` x ``size`` (shorter side resized, centre crop) as
        a new ``ImageArrays``; ``self`` if they already have that size."""
        if self.images.shape[1:3] == (size, size):
            return self
        return ImageArrays(np.stack([_fit_size(im, size) for im in self.images]),
                           self.labels, self.classes, self.lossy)

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
    """

    name: str
    train: ImageArrays
    test: ImageArrays = None
    val: ImageArrays = None
    hflip: bool = True
    classes: list = field(init=False)

    def __post_init__(self):
        self.classes = self.train.classes

    def describe(self):
        """JSON-ready description: name, split sizes, classes, image shape, caveats."""
        out = {"name": self.name,
               "splits": {k: len(s) for k, s in (("train", self.train), ("val", self.val),
                                                 ("test", self.test)) if s is not None},
               "classes": self.classes, "image_shape": list(self.train.images.shape[1:])}
        if self.train.lossy:
            out["note"] = ("images stored as JPEG: compression artifacts cost accuracy (about "
                           "10 points for CIFAR-10 networks trained on the lossless set); "
                           "compare with lossless-CIFAR numbers only with this caveat")
        return out


# ---------------------------------------------------------------------------- sources
def load(spec, size=None, val_size=0, seed=0, progress=True):
    """Load a dataset by name or path into memory.

    Parameters
    ----------
    spec : str
        ``'digits'``, ``'cifar10'``, an image-folder root (or ``.tar.gz``), a folder of
        class folders, a RecordIO folder or a ``.rec`` file.
    size : int, optional
        Bring every image to ``size`` x ``size`` (shorter side resized, centre crop);
        by default images are kept as they are and must all have one size.
    val_size : int or float, default 0
        Hold out this many training images (or this fraction) as a validation split,
        chosen by ``seed``: the paper's 45k/5k split is ``val_size=5000``.
    seed : int, default 0
    progress : bool, default True
        Progress bars on standard error while decoding.

    Returns
    -------
    Data

    Raises
    ------
    DataError
        For a missing, empty or unreadable dataset, naming the problem and the fix.
    """
    if spec == "digits":
        data = digits()
    elif spec == "cifar10":
        data = gluon_cifar10()
    else:
        data = _load_path(spec, size, progress)
    if size is not None:  # the built-in sets are 32x32
        data.train = data.train.resized(size)
        if data.test is not None:
            data.test = data.test.resized(size)
    if val_size:
        data.train, data.val = split_validation(data.train, val_size, seed)
    return data


def _load_path(path, size, progress):
    if path.endswith(".rec"):
        return Data(path, read_recordio(path, size))
    root = resolve_root(path)
    names = os.listdir(root)
    if any(n.startswith("data_batch_") and n.endswith(".bin") for n in names):
        return cifar10_binary(root, path)
    if any(n.startswith("data_batch_") and "." not in n
           and os.path.isfile(os.path.join(root, n)) for n in names):
        raise DataError(f"{path!r} holds CIFAR-10's python-version batches, which are pickles "
                        "that gluonres never loads (unpickling runs code from the file); "
                        "use the binary version (cifar-10-binary.tar.gz: data_batch_N.bin, "
                        "test_batch.bin) or an image folder")
    if os.path.isfile(os.path.join(root, "train.rec")):
        test = os.path.join(root, "test.rec")
        return Data(path, read_recordio(os.path.join(root, "train.rec"), size),
                    read_recordio(test, size) if os.path.isfile(test) else None)
    if os.path.isdir(os.path.join(root, "train")):
        train = image_folder(root, "train", size, progress)
        test = None
        if os.path.isdir(os.path.join(root, "test")):
            test = image_folder(root, "test", size, progress)
            if test.classes != train.classes:
                raise DataError(f"{path!r}: test/ has classes {test.classes} but train/ has "
                                f"{train.classes}; give both splits the same class folders")
        return Data(path, train, test)
    return Data(path, image_folder(root, None, size, progress))


def digits():
    """scikit-learn's handwritten digits (1,797 8x8 images) as 3x32x32, offline.

    Grey levels 0-16 are scaled to 0-255, upsampled bilinearly to 32x32 and copied to
    three channels. A fixed seeded draw of :data:`DIGITS_TEST` images is the test split.
    Flips change a digit's meaning, so ``hflip`` is off.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.round(d.images * (255 / 16)).astype(np.uint8)
    big = np.stack([cv2.resize(g, (32, 32), interpolation=cv2.INTER_LINEAR) for g in grey])
    images = np.repeat(big[..., None], 3, axis=3)
    order = np.random.default_rng(0).permutation(len(images))
    classes = [str(c) for c in range(10)]
    full = ImageArrays(images, d.target, classes)
    return Data("digits", full.subset(np.sort(order[DIGITS_TEST:])),
                full.subset(np.sort(order[:DIGITS_TEST])), hflip=False)


def gluon_cifar10():
    """CIFAR-10 through ``mxnet.gluon.data.vision.CIFAR10`` (lossless; downloads once).

    Raises
    ------
    DataError
        When the download fails (no network): names the offline alternatives.
    """
    splits = []
    for train in (True, False):
        try:
            with contextlib.redirect_stdout(sys.stderr):  # gluon prints download progress
                ds = mx.gluon.data.vision.CIFAR10(train=train)
        except (OSError, mx.MXNetError) as err:
            raise DataError(
                f"could not get CIFAR-10 through gluon ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:120]}); it downloads on first use and needs "
                "network access; offline, pass --data an image-folder root or archive "
                "(e.g. cifar10-jpg.tar.gz) or a RecordIO folder") from None
        images, labels = ds[:]
        splits.append(ImageArrays(images.asnumpy(), labels, CIFAR10_CLASSES))
    return Data("cifar10", *splits)


def cifar10_binary(folder, name=None):
    """CIFAR-10 from its binary batches: ``data_batch_*.bin`` (train) and ``test_batch.bin``.

    Each record is one label byte followed by the 32x32 red, green and blue planes
    (3,072 bytes). Class names come from ``batches.meta.txt`` when present. Plain bytes:
    nothing is unpickled.

    Parameters
    ----------
    folder : str
        The folder holding the batches (``cifar-10-batches-bin``).
    name : str, optional
        The dataset's name (default ``folder``).

    Returns
    -------
    Data

    Raises
    ------
    DataError
        For a batch whose size is not a whole number of records, or a label without a
        class name, naming the file and the fix.
    """
    classes = CIFAR10_CLASSES
    meta = os.path.join(folder, "batches.meta.txt")
    if os.path.isfile(meta):
        with open(meta) as f:
            classes = [line.strip() for line in f if line.strip()]
    train = sorted((n for n in os.listdir(folder)
                    if n.startswith("data_batch_") and n.endswith(".bin")),
                   key=lambda n: (len(n), n))
    test = os.path.join(folder, "test_batch.bin")
    return Data(name or folder, _cifar_batches([os.path.join(folder, n) for n in train], classes),
                _cifar_batches([test], classes) if os.path.isfile(test) else None)


def _cifar_batches(paths, classes):
    records = []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR_RECORD:
            raise DataError(f"{path!r} is not a CIFAR-10 binary batch ({raw.size} bytes, not a "
                            f"whole number of {CIFAR_RECORD}-byte records: truncated?); "
                            "extract cifar-10-binary.tar.gz again")
        records.append(raw.reshape(-1, CIFAR_RECORD))
    records = np.concatenate(records)
    labels = records[:, 0].astype(np.int32)
    if labels.max() >= len(classes):
        folder = os.path.dirname(paths[0])
        raise DataError(f"the batches in {folder!r} have label {labels.max()} but only "
                        f"{len(classes)} class names; fix batches.meta.txt (one class name "
                        "per line)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return ImageArrays(images, labels, classes)


def resolve_root(path):
    """An image-folder root from a folder or a ``.tar.gz`` archive (extracted once).

    Raises
    ------
    DataError
        If the path does not exist.
    """
    if not os.path.exists(path):
        raise DataError(f"data path {path!r} does not exist; pass 'digits', 'cifar10', an "
                        "image-folder root with train/ and test/ subfolders (or its .tar.gz "
                        "archive), a folder of class folders or a RecordIO folder")
    if os.path.isdir(path):
        return path
    if not path.endswith((".tar.gz", ".tgz", ".tar")):
        raise DataError(f"data path {path!r} is a file but not a .tar.gz archive or .rec "
                        "file; pass an image-folder root or its archive")
    name = os.path.basename(path).split(".")[0]
    root = os.path.join(cache_dir(), name)
    if not os.path.isdir(root):
        os.makedirs(cache_dir(), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir())
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
            os.replace(tmp, root)  # a half-extracted archive never looks complete
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def image_files(folder):
    """``(classes, [(path, label), ...])`` of a folder holding one folder per class.

    Raises
    ------
    DataError
        For a missing folder, a folder without class subfolders, or a class folder
        without images.
    """
    if not os.path.isdir(folder):
        raise DataError(f"{folder!r} does not exist; an image-folder root needs a "
                        f"{os.path.basename(folder)}/ subfolder with one folder of images "
                        "per class")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise DataError(f"{folder!r} has no class subfolders; put the images of each class "
                        "in a folder named after the class")
    files = []
    for label, c in enumerate(classes):
        names = sorted(f for f in os.listdir(os.path.join(folder, c))
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise DataError(f"class folder {os.path.join(folder, c)!r} has no images "
                            f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
        files += [(os.path.join(folder, c, n), label) for n in names]
    return classes, files


def image_folder(root, split=None, size=None, progress=True):
    """Decode ``root/split/<class>/*`` (or ``root/<class>/*``) into :class:`ImageArrays`.

    Parameters
    ----------
    root : str
        Image-folder root (or ``.tar.gz``); with ``split=None`` the root itself holds
        the class folders.
    split : str, optional
        ``'train'`` or ``'test'``.
    size : int, optional
        See :func:`load`.
    progress : bool, default True

    Raises
    ------
    DataError
        For a missing or empty folder, a class folder without images, or an image that
        cannot be decoded (named by path).
    """
    root = resolve_root(root)
    folder = os.path.join(root, split) if split else root
    classes, files = image_files(folder)
    images = []
    for path, _ in tqdm(files, desc=f"decode {folder}", unit="img", leave=False,
                        disable=not progress, mininterval=1, delay=2):
        with open(path, "rb") as f:
            images.append(decode(f.read(), path, size))
    lossy = any(p.lower().endswith(LOSSY_EXTENSIONS) for p, _ in files)
    return ImageArrays(_stack(images, folder), [label for _, label in files], classes, lossy)


def decode(blob, where, size=None):
    """Decode encoded image bytes to uint8 RGB ``(H, W, 3)``, optionally sized.

    OpenCV decodes exactly as ``mx.image.imdecode`` (the same libjpeg), ~10x faster.

    Raises
    ------
    DataError
        If the bytes are not a readable image; ``where`` names it.
    """
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot decode image {where!r} (corrupt or not an image); replace "
                        "or remove the file")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img if size is None else _fit_size(img, size)


def _fit_size(img, size):
    """Resize the shorter side to ``size`` and centre-crop to ``size`` x ``size``."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                     else cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[top:top + size, left:left + size]


def _stack(images, where):
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images in {where!r} have different sizes ({len(shapes)} shapes, e.g. "
                        f"{sorted(shapes)[:2]}); pass a size (gluonres train and evaluate use "
                        "the model's input size)")
    return np.stack(images)


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


# ---------------------------------------------------------------------------- RecordIO
def pack_recordio(source, out_dir, progress=True):
    """Convert an image folder to MXNet RecordIO: ``SPLIT.rec`` + ``SPLIT.idx`` per split.

    Each record holds the original file bytes (no re-encoding, so reading back gives the
    same pixels as the folder) with the class index as label; ``meta.json`` keeps the
    class names. Every image is decoded once first, so a damaged file stops the packing
    before anything is written.

    Parameters
    ----------
    source : str
        Image-folder root with ``train/`` (+ ``test/``), its archive, or a folder of class
        folders (packed as ``train``).
    out_dir : str
        New or empty folder; files appear in it only once all are written.

    Returns
    -------
    dict
        ``out``, ``classes``, ``splits`` (images per split), ``files``.

    Raises
    ------
    DataError
        For bad input, or an ``out_dir`` that already holds files.
    """
    root = resolve_root(source)
    splits = [s for s in ("train", "test") if os.path.isdir(os.path.join(root, s))]
    folders = {s: os.path.join(root, s) for s in splits} or {"train": root}
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise DataError(f"{out_dir!r} is not empty; pack into a new folder so nothing there "
                        "is overwritten")
    listed = {s: image_files(f) for s, f in folders.items()}
    classes = listed["train"][0]
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pack.", dir=parent)
    try:
        counts = {}
        for split, (split_classes, files) in listed.items():
            if split_classes != classes:
                raise DataError(f"{folders[split]!r} has classes {split_classes} but train "
                                f"has {classes}; give both splits the same class folders")
            rec = mx.recordio.MXIndexedRecordIO(os.path.join(staging, f"{split}.idx"),
                                                os.path.join(staging, f"{split}.rec"), "w")
            for i, (path, label) in enumerate(tqdm(files, desc=f"pack {split}", unit="img",
                                                   leave=False, disable=not progress,
                                                   delay=2)):
                with open(path, "rb") as f:
                    blob = f.read()
                decode(blob, path)
                rec.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, label, i, 0), blob))
            rec.close()
            counts[split] = len(files)
        lossy = any(p.lower().endswith(LOSSY_EXTENSIONS) for _, fs in listed.values()
                    for p, _ in fs)
        with open(os.path.join(staging, RECORDIO_META), "w") as f:
            json.dump({"classes": classes, "splits": counts, "lossy": lossy,
                       "source": os.path.abspath(source)}, f, indent=1)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty, checked above
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))
    return {"out": out_dir, "classes": classes, "splits": counts, "files": files}


def read_recordio(rec_path, size=None):
    """Decode a ``.rec`` file (with its ``.idx``) into :class:`ImageArrays`.

    Class names come from ``meta.json`` beside it when present (written by
    :func:`pack_recordio`), else labels are named ``'0'``, ``'1'`` ... ``size`` is as
    in :func:`load`.

    Raises
    ------
    DataError
        For a missing ``.rec``/``.idx``, an empty or damaged file, or an undecodable
        record.
    """
    idx_path = rec_path[:-len(".rec")] + ".idx"
    for p in (rec_path, idx_path):
        if not os.path.isfile(p):
            raise DataError(f"RecordIO file {p!r} does not exist; RecordIO data needs NAME.rec "
                            "with NAME.idx beside it (gluonres data pack writes both)")
    meta_path = os.path.join(os.path.dirname(rec_path), RECORDIO_META)
    meta = {}
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    images, labels = [], []
    rec = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "r")
    try:
        for key in rec.keys:
            where = f"{rec_path} record {key}"
            try:
                header, blob = mx.recordio.unpack(rec.read_idx(key))
            except Exception:  # struct/MXNet errors on a truncated or foreign file
                raise DataError(f"cannot read {where} (truncated or corrupt); re-pack the "
                                "data with gluonres data pack") from None
            images.append(decode(blob, where, size))
            labels.append(int(np.asarray(header.label).ravel()[0]))
    finally:
        rec.close()
    if not images:
        raise DataError(f"{rec_path!r} holds no records; pack a non-empty image folder")
    classes = meta.get("classes") or [str(c) for c in range(max(labels) + 1)]
    return ImageArrays(_stack(images, rec_path), labels, classes, meta.get("lossy", False))
