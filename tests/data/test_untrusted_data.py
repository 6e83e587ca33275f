"""Untrusted data (issue 20): archives cached by content and extracted safely, RecordIO
labels and files checked, image folders read only as regular files within limits."""
import io
import json
import os
import struct
import tarfile
import threading
import time
import zlib

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluonres import data
from gluonres.cli import main
from gluonres.errors import DataError

from helpers import write_folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private archive cache for every test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GLUONRES_CACHE", str(folder))
    for var in ("GLUONRES_MAX_IMAGE_PIXELS", "GLUONRES_MAX_IMAGE_BYTES"):
        monkeypatch.delenv(var, raising=False)
    return folder


def make_archive(path, root, arcname="."):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname=arcname)
    return str(path)


def png_header_only(width, height):
    """A PNG whose header claims ``width`` x ``height`` 1-bit grey pixels, with all its
    rows: it compresses to a few hundred KB but decodes to width * height * 3 bytes."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(1)
    rows = b"".join(packer.compress(row * 500) for _ in range(height // 500)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------- item 1
def test_archives_of_one_name_are_cached_by_content(tmp_path, cache, capfd):
    write_folder(str(tmp_path / "a"), classes=("cat", "dog"))
    write_folder(str(tmp_path / "b"), classes=("ant", "bee", "wasp"))
    first = make_archive(tmp_path / "A" / "data.tar.gz", tmp_path / "a")
    second = make_archive(tmp_path / "B" / "data.tar.gz", tmp_path / "b")
    infos = []
    for archive in (first, second, first):
        capfd.readouterr()
        assert main(["data", "info", archive, "--json"]) == 0
        infos.append(json.loads(capfd.readouterr().out.strip().splitlines()[-1]))
    assert infos[0]["classes"] == ["cat", "dog"]
    assert infos[1]["classes"] == ["ant", "bee", "wasp"]  # not A's extraction
    assert infos[2]["classes"] == ["cat", "dog"]
    assert infos[1]["splits"] == {"train": 9, "test": 9}
    # the same path, updated in place: extracted again
    write_folder(str(tmp_path / "c"), classes=("x", "y", "z", "w"))
    make_archive(first, tmp_path / "c")
    assert data.load(first).classes == ["w", "x", "y", "z"]
    assert not [n for n in os.listdir(cache) if n.startswith(".")]  # no half extractions


def _tar_with(path, add):
    with tarfile.open(path, "w:gz") as tar:
        for name in ("train/cat/0.png", "train/dog/0.png"):
            blob = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        add(tar)
    return str(path)


def _member(name, kind=tarfile.REGTYPE, link="", blob=b"x"):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        info.size = len(blob) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(blob) if kind == tarfile.REGTYPE else None)
    return add


@pytest.mark.parametrize("add, problem", [
    (_member("../outside.png"), "points outside the folder"),
    (_member("/tmp/absolute.png"), "points outside the folder"),
    (_member("train/cat/1.png", tarfile.SYMTYPE, "0.png"), "is a link or special file"),
    (_member("train/cat/2.png", tarfile.SYMTYPE, "/etc/passwd"), "is a link or special file"),
    (_member("train/cat/3.png", tarfile.LNKTYPE, "train/cat/0.png"), "is a link or special"),
    (_member("train/cat/4.png", tarfile.FIFOTYPE), "is a link or special file"),
], ids=["dotdot", "absolute", "symlink", "symlink-out", "hardlink", "fifo"])
def test_archive_members_outside_the_target_or_not_plain_are_refused(tmp_path, cache, add,
                                                                     problem):
    archive = _tar_with(tmp_path / "evil.tar.gz", add)
    with pytest.raises(DataError, match=problem) as caught:
        data.load(archive)
    assert "evil.tar.gz" in str(caught.value) and "extract it yourself" in str(caught.value)
    assert not (tmp_path / "outside.png").exists() and not os.path.exists("/tmp/absolute.png")
    assert os.listdir(cache) == []  # nothing half extracted


@pytest.mark.parametrize("damage", ["truncated", "not gzip", "empty"])
def test_unreadable_archive_is_a_data_error(tmp_path, cache, damage):
    write_folder(str(tmp_path / "a"))
    archive = make_archive(tmp_path / "data.tar.gz", tmp_path / "a")
    blob = open(archive, "rb").read()
    blob = {"truncated": blob[:len(blob) // 2], "not gzip": b"plain text, not an archive\n" * 9,
            "empty": b""}[damage]
    with open(archive, "wb") as f:
        f.write(blob)
    with pytest.raises(DataError, match=r"cannot extract archive .*data.tar.gz.*download or "
                                        r"create the archive again"):
        data.load(archive)
    assert not os.path.exists(cache) or os.listdir(cache) == []


# ---------------------------------------------------------------------------- item 4
def _packed(tmp_path, classes=("cat", "dog")):
    write_folder(str(tmp_path / "src"), splits=("train",), classes=classes)
    data.pack_recordio(str(tmp_path / "src"), str(tmp_path / "rec"), progress=False)
    return tmp_path / "rec"


def test_recordio_label_outside_the_meta_classes_is_refused(tmp_path):
    rec = _packed(tmp_path)
    meta = json.loads((rec / "meta.json").read_text())
    meta["classes"] = ["cat"]  # labels 0 and 1, one class: a 1-output net would train
    (rec / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as caught:
        data.load(str(rec))
    message = str(caught.value)
    assert f"{rec / 'train.rec'} record 3 has label 1" in message  # the file and label
    assert "names 1 class, so labels must be 0..0" in message
    assert "list every class in meta.json" in message and "gluonres data pack" in message


@pytest.mark.parametrize("label, shown", [(-1.0, "-1.0"), (0.5, "0.5"), (float("nan"), "nan")])
def test_recordio_label_that_is_not_a_class_index_is_refused(tmp_path, label, shown):
    os.makedirs(tmp_path / "rec")
    blob = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "rec" / "train.idx"),
                                        str(tmp_path / "rec" / "train.rec"), "w")
    rec.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, 0, 0), blob))
    rec.write_idx(1, mx.recordio.pack(mx.recordio.IRHeader(0, label, 1, 0), blob))
    rec.close()
    with pytest.raises(DataError, match=f"record 1 has label {shown}, not a class index"):
        data.load(str(tmp_path / "rec"))


@pytest.mark.parametrize("name, content, problem", [
    ("meta.json", b"{not json", "not readable JSON"),
    ("meta.json", b"\xff\xfe\x00garbage", "not readable JSON"),
    ("meta.json", b"[1, 2]", "is not a RecordIO meta.json"),
    ("meta.json", b'{"classes": "cat"}', "not a non-empty list of distinct names"),
    ("meta.json", b'{"classes": ["a", "a"]}', "not a non-empty list of distinct names"),
    ("train.idx", b"\x00\x01garbage\xff", "is not a RecordIO index"),
    ("train.idx", b"0\t0\nnot-a-key\n", "is not a RecordIO index"),
    ("train.idx", b"0\t0\n1\t99999999\n", "puts record 1 at byte 99,999,999, but"),
    ("train.idx", b"0\t0\n0\t0\n", "lists a record twice"),
], ids=["meta-json", "meta-binary", "meta-list", "meta-classes-str", "meta-dup", "idx-binary",
        "idx-line", "idx-offset", "idx-twice"])
def test_garbage_recordio_meta_or_index_is_a_data_error(tmp_path, name, content, problem):
    rec = _packed(tmp_path)
    (rec / name).write_bytes(content)
    with pytest.raises(DataError, match=problem) as caught:
        data.load(str(rec))
    assert name in str(caught.value) and "gluonres data pack" in str(caught.value)


@pytest.mark.parametrize("name", ["meta.json", "train.idx", "train.rec"])
def test_recordio_files_must_be_regular(tmp_path, name):
    rec = _packed(tmp_path)
    (rec / name).unlink()
    os.symlink("/dev/zero", rec / name)
    with pytest.raises(DataError, match=f"{name}' is not a regular file"):
        data.load(str(rec))


# ---------------------------------------------------------------------------- item 12
def _unblock(fifo, stop):
    """Before the fix a read of the FIFO blocks forever: open its other end now and then
    so that the test fails instead of hanging."""
    while not stop.is_set():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader (yet)
            pass
        time.sleep(0.5)


@pytest.mark.parametrize("kind", ["fifo", "dev-null", "dev-zero", "folder"])
def test_only_regular_image_files_are_read(tmp_path, kind):
    write_folder(str(tmp_path / "data"), splits=("train",))
    bad = tmp_path / "data" / "train" / "dog" / "x.png"
    stop = threading.Event()
    if kind == "fifo":
        os.mkfifo(bad)
        threading.Thread(target=_unblock, args=(str(bad), stop), daemon=True).start()
    elif kind == "folder":
        bad.mkdir()
    else:
        os.symlink("/dev/null" if kind == "dev-null" else "/dev/zero", bad)
    try:
        with pytest.raises(DataError, match="not a regular file") as caught:
            data.load(str(tmp_path / "data"))
    finally:
        stop.set()
    assert str(bad) in str(caught.value) and "remove it" in str(caught.value)
    with pytest.raises(DataError, match="not a regular file"):  # and nothing packed
        data.pack_recordio(str(tmp_path / "data"), str(tmp_path / "rec"), progress=False)
    assert not (tmp_path / "rec").exists()


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    write_folder(str(tmp_path / "data"), splits=("train",))
    big = tmp_path / "data" / "train" / "cat" / "huge.png"
    big.write_bytes(png_header_only(20000, 20000))  # < 1 MB, 1.2 GB decoded
    assert big.stat().st_size < 1 << 20
    with pytest.raises(DataError) as caught:
        data.load(str(tmp_path / "data"))
    message = str(caught.value)
    assert f"image '{big}' is 20000x20000 pixels" in message
    assert "(400,000,000) exceeds the limit of 67,108,864 set by GLUONRES_MAX_IMAGE_PIXELS" \
        in message
    assert "GLUONRES_MAX_IMAGE_PIXELS=400000000" in message  # how to raise it
    # the limit is the variable's: lowered, a 32x32 image is over it; raised, it loads
    big.unlink()
    monkeypatch.setenv("GLUONRES_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataError, match=r"is 32x32 pixels, a pixel count \(1,024\) exceeds"):
        data.load(str(tmp_path / "data"))
    monkeypatch.setenv("GLUONRES_MAX_IMAGE_PIXELS", "1024")
    assert len(data.load(str(tmp_path / "data")).train) == 6
    monkeypatch.setenv("GLUONRES_MAX_IMAGE_PIXELS", "many")
    with pytest.raises(DataError, match="GLUONRES_MAX_IMAGE_PIXELS='many' is not a positive"):
        data.load(str(tmp_path / "data"))


def test_image_file_over_the_byte_limit_is_refused_before_reading(tmp_path, monkeypatch):
    write_folder(str(tmp_path / "data"), splits=("train",))
    big = tmp_path / "data" / "train" / "cat" / "big.png"
    with open(big, "wb") as f:  # sparse: 100 MB that take no disk
        f.truncate(100 << 20)
    with pytest.raises(DataError) as caught:
        data.load(str(tmp_path / "data"))
    message = str(caught.value)
    assert f"the size of image '{big}' in bytes (104,857,600) exceeds the limit of " \
           "67,108,864 set by GLUONRES_MAX_IMAGE_BYTES" in message
    assert "GLUONRES_MAX_IMAGE_BYTES=104857600" in message
    big.unlink()
    monkeypatch.setenv("GLUONRES_MAX_IMAGE_BYTES", "100")  # the PNGs are larger
    with pytest.raises(DataError, match="set by GLUONRES_MAX_IMAGE_BYTES"):
        data.load(str(tmp_path / "data"))


@pytest.mark.parametrize("blob", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a" + b"\0" * 40],
                         ids=["empty", "png-signature-only", "gif"])
def test_decode_refuses_what_it_cannot_size(blob):
    with pytest.raises(DataError, match="'where'.*(empty|corrupt or not an image)"):
        data.decode(blob, "where")


def test_image_size_reads_png_jpeg_and_bmp_headers():
    image = np.zeros((7, 13, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp"):
        blob = cv2.imencode(ext, image)[1].tobytes()
        assert data.sources.image_size(blob) == (13, 7), ext
    assert data.sources.image_size(b"not an image") is None
