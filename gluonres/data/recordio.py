"""MXNet RecordIO: pack any source into ``train.rec/.idx`` (+ ``test``) with a
``meta.json``, and read it back.
"""
import json
import math
import os
import shutil
import stat
import tempfile

import mxnet as mx
import numpy as np
from tqdm import tqdm

from gluonres._files import check_writable
from gluonres.data.arrays import ImageArrays, _stack
from gluonres._untrusted import image_size
from gluonres.data.sources import (LOSSY_EXTENSIONS, decode, image_files, other_sizes,
                                   read_image_file, resolve_root)
from gluonres.errors import DataError


RECORDIO_META = "meta.json"


#: The largest ``meta.json`` or ``.idx`` read (ours are a few KB per 1,000 images).
MAX_INDEX_BYTES = 1 << 28

_REPACK = "re-pack the data with gluonres data pack"


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
    # the output first: a bad --out is refused before the archive or images are read
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"--out {out_dir!r} is a file; pack into a new or empty folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise DataError(f"{out_dir!r} is not empty; pack into a new folder so nothing there "
                        "is overwritten")
    check_writable(out_dir)
    root = resolve_root(source)
    splits = [s for s in ("train", "test") if os.path.isdir(os.path.join(root, s))]
    folders = {s: os.path.join(root, s) for s in splits} or {"train": root}
    listed = {s: image_files(f) for s, f in folders.items()}
    classes = listed["train"][0]
    for split, (split_classes, _) in listed.items():
        if split_classes != classes:
            raise DataError(f"{folders[split]!r} has classes {split_classes} but train "
                            f"has {classes}; give both splits the same class folders")
    parent = os.path.dirname(os.path.abspath(out_dir))
    created = []  # folder levels made for the output: removed again if packing fails
    level = parent
    while not os.path.exists(level):
        created.append(level)
        level = os.path.dirname(level)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pack.", dir=parent)
    done = False
    try:
        counts = {}
        for split, (split_classes, files) in listed.items():
            rec = mx.recordio.MXIndexedRecordIO(os.path.join(staging, f"{split}.idx"),
                                                os.path.join(staging, f"{split}.rec"), "w")
            for i, (path, label) in enumerate(tqdm(files, desc=f"pack {split}", unit="img",
                                                   leave=False, disable=not progress,
                                                   delay=2)):
                blob = read_image_file(path)
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
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            for level in created:  # innermost first; a level holding anything else stays
                try:
                    os.rmdir(level)
                except OSError:
                    break
    files = sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))
    return {"out": out_dir, "classes": classes, "splits": counts, "files": files}


def read_recordio(rec_path, size=None, shorter_side=None, channels=None):
    """Decode a ``.rec`` file (with its ``.idx``) into :class:`ImageArrays`.

    Class names come from ``meta.json`` beside it when present (written by
    :func:`pack_recordio`), else labels are named ``'0'``, ``'1'`` ... ``size``,
    ``shorter_side`` and ``channels`` are as in :func:`load`. Every label must be a whole
    number in ``range(len(classes))``.

    Raises
    ------
    DataError
        For a missing ``.rec``/``.idx``, an empty or damaged file, a ``meta.json`` or
        ``.idx`` that is not what :func:`pack_recordio` writes, an undecodable record,
        or a label without a class.
    """
    idx_path = rec_path[:-len(".rec")] + ".idx"
    for p in (rec_path, idx_path):
        if not os.path.exists(p):
            raise DataError(f"RecordIO file {p!r} does not exist; RecordIO data needs NAME.rec "
                            "with NAME.idx beside it (gluonres data pack writes both)")
        _check_regular(p)
    meta_path = os.path.join(os.path.dirname(rec_path), RECORDIO_META)
    meta = _read_meta(meta_path) if os.path.exists(meta_path) else {}
    keys = _read_index(idx_path, rec_path)
    images, labels, stored = [], [], set()
    try:
        rec = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "r")
    except (OSError, ValueError, mx.MXNetError):
        raise DataError(f"cannot open RecordIO file {rec_path!r} (damaged or not RecordIO); "
                        f"{_REPACK}") from None
    try:
        for key in keys:
            where = f"{rec_path} record {key}"
            try:
                header, blob = mx.recordio.unpack(rec.read_idx(key))
            except Exception:  # struct/MXNet errors on a truncated or foreign file
                raise DataError(f"cannot read {where} (truncated or corrupt); {_REPACK}"
                                ) from None
            stored.add(image_size(blob))
            images.append(decode(blob, where, size, shorter_side, channels))
            labels.append(_label(header.label, where))
    finally:
        rec.close()
    if not images:
        raise DataError(f"{rec_path!r} holds no records; pack a non-empty image folder")
    if "classes" in meta:
        classes = meta["classes"]
        for key, label in zip(keys, labels):
            if label >= len(classes):
                raise DataError(
                    f"{rec_path} record {key} has label {label}, but {meta_path!r} names "
                    f"{len(classes)} class{'es' if len(classes) != 1 else ''}, so labels must "
                    f"be 0..{len(classes) - 1}; list every class in meta.json \"classes\" (in "
                    f"label order), or {_REPACK}")
    else:
        classes = [str(c) for c in range(max(labels) + 1)]
    return ImageArrays(_stack(images, rec_path), labels, classes, meta.get("lossy", False),
                       resized=other_sizes(stored, size, shorter_side))


def _label(value, where):
    """A record's class index: a whole, non-negative number."""
    first = float(np.asarray(value, dtype=np.float64).ravel()[0]) if np.size(value) else -1.0
    if not math.isfinite(first) or first < 0 or first != int(first):
        raise DataError(f"{where} has label {first!r}, not a class index (0, 1, ...); "
                        f"{_REPACK}")
    return int(first)


def _check_regular(path):
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
        raise DataError(f"{path!r} is not a regular file (a folder, FIFO, device or a link to "
                        f"one); {_REPACK}")


def _read_bounded(path, what):
    _check_regular(path)
    if os.path.getsize(path) > MAX_INDEX_BYTES:
        raise DataError(f"{what} {path!r} is larger than {MAX_INDEX_BYTES:,} bytes, far more "
                        f"than a RecordIO {what} holds; {_REPACK}")
    with open(path, "rb") as f:
        return f.read(MAX_INDEX_BYTES + 1)


def _read_meta(path):
    """``meta.json`` as :func:`pack_recordio` writes it: a JSON object whose ``classes``
    (if any) is a list of distinct names."""
    bad = (f"{path!r} is not a RecordIO meta.json (a JSON object with \"classes\": a list "
           f"of class names)")
    raw = _read_bounded(path, "meta.json")  # outside the try: DataError is a ValueError
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DataError(f"{bad}: it is not readable JSON; {_REPACK}, or delete meta.json "
                        "to name the classes 0, 1, ...") from None
    if not isinstance(meta, dict):
        raise DataError(f"{bad}; {_REPACK}")
    classes = meta.get("classes")
    if "classes" in meta and (not isinstance(classes, list) or not classes
                              or not all(isinstance(c, str) for c in classes)
                              or len(set(classes)) != len(classes)):
        raise DataError(f"{bad}: its \"classes\" is not a non-empty list of distinct names; "
                        f"{_REPACK}")
    if not isinstance(meta.get("lossy", False), bool):
        raise DataError(f"{bad}: its \"lossy\" is not true or false; {_REPACK}")
    return meta


def _read_index(path, rec_path):
    """The keys of a ``.idx`` file: lines ``KEY<TAB>OFFSET`` with whole-number keys and
    offsets inside the ``.rec`` file (checked here, not left to MXNet's reader)."""
    rec_size = os.path.getsize(rec_path)
    keys, beyond = [], None
    raw = _read_bounded(path, "index")  # outside the try: DataError is a ValueError
    try:
        text = raw.decode("ascii")
        for line in text.splitlines():
            if not line.strip():
                continue
            key, offset = line.split("\t")
            key, offset = int(key), int(offset)
            if offset < 0:
                raise ValueError(offset)
            if offset >= rec_size and beyond is None:
                beyond = (key, offset)
            keys.append(key)
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"{path!r} is not a RecordIO index (lines KEY<TAB>OFFSET); "
                        f"{_REPACK}") from None
    if beyond is not None:
        raise DataError(f"{path!r} puts record {beyond[0]} at byte {beyond[1]:,}, but "
                        f"{rec_path!r} has {rec_size:,} bytes (truncated or corrupt); {_REPACK}")
    if len(set(keys)) != len(keys):
        raise DataError(f"{path!r} lists a record twice; {_REPACK}")
    return keys
