"""MXNet RecordIO: pack any source into ``train.rec/.idx`` (+ ``test``) with a
``meta.json``, and read it back.
"""
import json
import os
import shutil
import tempfile

import mxnet as mx
import numpy as np
from tqdm import tqdm

from gluonres.data.arrays import ImageArrays, _stack
from gluonres.data.sources import LOSSY_EXTENSIONS, decode, image_files, resolve_root
from gluonres.errors import DataError


RECORDIO_META = "meta.json"


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
