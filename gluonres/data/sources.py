"""The sources a dataset can come from, each read into decoded in-memory arrays.

Every source becomes :class:`ImageArrays` — uint8 ``(N, H, W, 3)`` RGB images (or
``(N, H, W, 1)`` grey ones, when asked), integer labels and class names — decoded once,
so training never decodes an image twice and the augmentation runs vectorised on whole
batches.

Sources (by name or path through :func:`gluonres.data.load`):

- ``'digits'``: scikit-learn's bundled handwritten digits brought to 3x32x32; works
  offline on a fresh machine.
- ``'cifar10'``: gluon's own ``CIFAR10`` dataset (downloads on first use).
- a folder of CIFAR-10 *binary* batches (``cifar-10-batches-bin``: ``data_batch_N.bin``,
  ``test_batch.bin``), read by :func:`cifar10_binary`. The "python version" batches are
  pickles and are refused: gluonres never unpickles a file it is given.
- an image-folder root ``train/<class>/*.jpg`` (+ ``test/<class>/``), such as the
  extracted ``cifar10-jpg.tar.gz``, or its ``.tar.gz`` archive (extracted once per
  content: the cache is keyed by the archive's SHA-256);
- any folder with one subfolder of images per class (a single split);
- a RecordIO folder written by :func:`pack_recordio` (``train.rec/.idx`` ...), or a
  single ``.rec`` file with its ``.idx``.

Files from a user are untrusted: only regular files are read, each within
:data:`LIMITS` (bytes per file, pixels per image, read from the header before decoding),
and archives are extracted only when every member is a plain file or folder inside the
target.
"""
import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zlib

import cv2
import mxnet as mx
import numpy as np
from tqdm import tqdm

from gluonres.data.arrays import Data, ImageArrays, _stack
from gluonres.data.images import fit_pixels
from gluonres._untrusted import image_size, limit, over_limit, read_bytes, regular_size
from gluonres.errors import DataError


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


LOSSY_EXTENSIONS = (".jpg", ".jpeg")


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


#: Images of the embedded digits set held out for testing (seeded, fixed).
DIGITS_TEST = 360


#: One record of a CIFAR-10 binary batch: a label byte, then 32x32 R, G and B planes.
CIFAR_RECORD = 1 + 3 * 32 * 32


def cache_dir():
    """Where archives are extracted: ``$GLUONRES_CACHE`` or ``~/.cache/gluonres``."""
    return os.environ.get("GLUONRES_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                         "gluonres"))


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
    if os.path.exists(meta):
        _regular(meta, "replace it with the batches.meta.txt of cifar-10-binary.tar.gz")
        with open(meta) as f:
            classes = [line.strip() for line in f if line.strip()]
    train = sorted((n for n in os.listdir(folder)
                    if n.startswith("data_batch_") and n.endswith(".bin")),
                   key=lambda n: (len(n), n))
    test = os.path.join(folder, "test_batch.bin")
    return Data(name or folder, _cifar_batches([os.path.join(folder, n) for n in train], classes),
                _cifar_batches([test], classes) if os.path.isfile(test) else None)


def _regular(path, fix):
    """Refuse anything but a regular file (after links): a FIFO or device would block or
    never end."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError as err:
        raise DataError(f"cannot read {path!r} ({err.strerror}); {fix}") from None
    if not regular:
        raise DataError(f"{path!r} is not a regular file (a folder, FIFO, device or a link to "
                        f"one); {fix}")


def _cifar_batches(paths, classes):
    records = []
    for path in paths:
        _regular(path, "extract cifar-10-binary.tar.gz again")
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

    The extraction is cached under :func:`cache_dir` by the archive's name and the
    SHA-256 of its bytes, so another archive of the same name, or the same archive
    updated, is extracted anew. Only plain files and folders are extracted (no links,
    devices or paths outside the target), each within the ``image_bytes`` limit.

    Raises
    ------
    DataError
        If the path does not exist, or the archive is unreadable (truncated, not gzip)
        or holds a member that is not extracted.
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
    if not os.path.isfile(path):
        raise DataError(f"data path {path!r} is not a regular file; pass the archive itself")
    name = os.path.basename(path).split(".")[0]
    root = os.path.join(cache_dir(), f"{name}-{_archive_digest(path)[:16]}")
    if not os.path.isdir(root):
        try:
            os.makedirs(cache_dir(), exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir())
        except OSError as err:
            raise DataError(_cache_problem(path, err)) from None
        try:
            _extract(path, tmp)
            try:
                os.replace(tmp, root)  # a half-extracted archive never looks complete
            except OSError:
                if not os.path.isdir(root):  # else another process extracted it meanwhile
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _archive_digest(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise DataError(f"cannot read archive {path!r} ({err.strerror}); pass a readable "
                        ".tar.gz archive") from None
    return digest.hexdigest()


def _extract(path, target):
    """Extract ``path`` into ``target``, refusing members that are not plain files or
    folders inside it, or larger than the ``image_bytes`` limit."""
    fix = "extract it yourself if you trust it, or pass an archive of image folders"
    try:
        with tarfile.open(path) as tar:
            for member in tar:  # one pass, each member checked before it is written
                where = f"member {member.name!r} of archive {path!r}"
                if not (member.isreg() or member.isdir()):
                    raise DataError(f"{where} is a link or special file, which gluonres does "
                                    f"not extract; {fix}")
                parts = member.name.replace("\\", "/").split("/")
                if member.name.startswith("/") or ".." in parts:
                    raise DataError(f"{where} points outside the folder it is extracted to; "
                                    f"{fix}")
                if member.isreg() and member.size > limit("image_bytes"):
                    raise DataError(over_limit("image_bytes", f"the size of {where} in bytes",
                                                member.size))
                tar.extract(member, target, filter="data")  # the standard checks, once more
    except tarfile.FilterError as err:
        raise DataError(f"archive {path!r} holds a member that tarfile's data filter refuses "
                        f"({type(err).__name__}); {fix}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DataError(f"cannot extract archive {path!r} ({reason}: truncated, damaged or "
                        "not a .tar.gz?); download or create the archive again") from None
    except OSError as err:  # reading the archive, or writing the cache (a full disk)
        raise DataError(_cache_problem(path, err)) from None


def _cache_problem(path, err):
    return (f"cannot extract archive {path!r} into the cache {cache_dir()!r} "
            f"({err.strerror or err}); free space there, or set GLUONRES_CACHE to a folder "
            "you can write to")


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
    for path, _ in files:  # refused before anything is read (a FIFO would block a read)
        regular_size(path, "image", "replace it with an image file or remove it")
    return classes, files


def read_image_file(path):
    """The bytes of the image file ``path``: a regular file within the ``image_bytes``
    limit (:data:`gluonres._untrusted.LIMITS`), read without blocking on a FIFO.

    Raises
    ------
    DataError
        If the file is not a regular file, is too large or cannot be read.
    """
    return read_bytes(path, "image", "replace it with an image file or remove it",
                      "image_bytes")


def image_folder(root, split=None, size=None, progress=True, shorter_side=None, channels=None):
    """Decode ``root/split/<class>/*`` (or ``root/<class>/*``) into :class:`ImageArrays`.

    Parameters
    ----------
    root : str
        Image-folder root (or ``.tar.gz``); with ``split=None`` the root itself holds
        the class folders.
    split : str, optional
        ``'train'`` or ``'test'``.
    size, shorter_side, channels : int, optional
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
    images, stored = [], set()
    for path, _ in tqdm(files, desc=f"decode {folder}", unit="img", leave=False,
                        disable=not progress, mininterval=1, delay=2):
        blob = read_image_file(path)
        stored.add(image_size(blob))
        images.append(decode(blob, path, size, shorter_side, channels))
    lossy = any(p.lower().endswith(LOSSY_EXTENSIONS) for p, _ in files)
    return ImageArrays(_stack(images, folder), [label for _, label in files], classes, lossy,
                       resized=other_sizes(stored, size, shorter_side))


def other_sizes(stored, size, shorter_side=None):
    """Whether images stored at the sizes ``stored`` (a set of ``(width, height)``) were
    brought to another size: the :attr:`ImageArrays.resized_from_other_sizes` flag."""
    return size is not None and (stored != {(size, size)} or shorter_side not in (None, size))


def decode(blob, where, size=None, shorter_side=None, channels=None):
    """Decode encoded image bytes to uint8 RGB ``(H, W, 3)``, optionally fitted.

    ``size``, ``shorter_side`` and ``channels`` bring the image to the network's input
    by :func:`~gluonres.data.images.fit_pixels` (grey: OpenCV's conversion of the RGB
    decode), as the export runtime does for ``predict``.
    OpenCV decodes exactly as ``mx.image.imdecode`` (the same libjpeg), ~10x faster.
    Only PNG, JPEG and BMP are decoded, and only within the ``image_pixels`` and
    ``image_bytes`` limits (:data:`LIMITS`), read from the header before decoding.

    Raises
    ------
    DataError
        If the bytes are empty, not a readable image or over a limit; ``where`` names them.
    """
    if len(blob) == 0:
        raise DataError(f"image {where!r} is empty (0 bytes); replace or remove the file")
    if len(blob) > limit("image_bytes"):
        raise DataError(over_limit("image_bytes", f"the size of image {where!r} in bytes",
                                    len(blob)))
    dims = image_size(blob)
    if dims is None or 0 in dims:
        raise DataError(f"cannot decode image {where!r} (corrupt or not an image); replace "
                        "or remove the file (gluonres reads PNG, JPEG and BMP)")
    if dims[0] * dims[1] > limit("image_pixels"):
        raise DataError(over_limit("image_pixels", f"image {where!r} is {dims[0]}x{dims[1]} "
                                    "pixels, a pixel count", dims[0] * dims[1]))
    try:
        img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None:
        raise DataError(f"cannot decode image {where!r} (corrupt or not an image); replace "
                        "or remove the file")
    return fit_pixels(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), size, shorter_side, channels)


