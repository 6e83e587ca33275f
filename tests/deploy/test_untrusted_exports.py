"""Exports and images as untrusted input (issue 20): paths confined to the export folder,
a SHA-256 for every file loaded, limits on what a graph, a params file or an image may
make ``predict`` allocate, only regular files, escaped output; exports replaced in one
step with stale staging folders removed, and a run's export equal to `gluonres export`'s.
"""
import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import deploy
from gluonres.data.preprocess import Preprocess
from gluonres.deploy import exporter, runtime
from gluonres.errors import DataError
from gluonres.models.init import he_initialize

from helpers import REPO, assert_clean_error, run, snapshot, write_folder


PREPROCESS = Preprocess(mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3))


def net_with_seed(seed, name="resnet20_cifar"):
    net = gluonres.get_model(name)
    he_initialize(net, seed)
    return net


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """An export of resnet20_cifar (random weights) and a 32x32 RGB image for it."""
    root = tmp_path_factory.mktemp("untrusted")
    folder = str(root / "r20")
    deploy.export(net_with_seed(0), folder, preprocess=PREPROCESS)
    image = str(root / "rgb.png")
    rgb = np.random.RandomState(0).randint(0, 256, (32, 32, 3), dtype=np.uint8)
    assert cv2.imwrite(image, rgb)
    return folder, image


@pytest.fixture
def export_copy(original, tmp_path):
    """A fresh copy of the export to damage, and the image."""
    folder = str(tmp_path / "e")
    shutil.copytree(original[0], folder)
    return folder, original[1]


def manifest_of(folder):
    with open(os.path.join(folder, runtime.MANIFEST)) as f:
        return json.load(f)


def forge(folder, manifest, digests=True):
    """Write ``manifest`` with sha256 entries that match whatever its names point at, as
    someone crafting an export would."""
    if digests:
        names = {*manifest["files"].values()}
        if (manifest.get("preprocess") or {}).get("mean_image"):
            names.add(manifest["preprocess"]["mean_image"])
        manifest["sha256"] = {n: runtime.sha256_of(os.path.join(folder, n)) for n in names
                              if os.path.isfile(os.path.join(folder, n))}
    with open(os.path.join(folder, runtime.MANIFEST), "w") as f:
        json.dump(manifest, f)


def png(width, height, pixels=None):
    """PNG bytes of an RGB image; without ``pixels`` a header-only file that claims the
    size (all a size check may read)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                            0, 0, 0))
    if pixels is not None:
        rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
        out += chunk(b"IDAT", zlib.compress(rows))
    return out + chunk(b"IEND", b"")


# ------------------------------------------------------------- item 2: a run's export
@pytest.mark.slow
@pytest.mark.subprocess
def test_a_runs_export_predicts_with_the_folders_class_names(tmp_path):
    """`gluonres train` exports what `gluonres export` writes for the same weights, and
    `gluonres predict RUN/export` prints the training folder's class names."""
    write_folder(str(tmp_path / "pets"), classes=("kitten", "puppy"), per_class=4)
    out = tmp_path / "run"
    run("train", "resnet20_cifar", "--data", tmp_path / "pets", "--out", out, "--epochs", "1",
        "--batch-size", "4", "--no-progress")
    image = tmp_path / "pets" / "test" / "puppy" / "0.png"
    proc = run("predict", out / "export", image, "--top-k", "2")
    assert proc.stdout.startswith(f"{image}: ")
    assert "kitten" in proc.stdout and "puppy" in proc.stdout
    ours = manifest_of(out / "export")
    assert ours["classes"] == ["kitten", "puppy"] and ours["preprocess"]["mean_image"]
    run("export", "resnet20_cifar", "--classes", "2", "--weights", out / "weights.params",
        "--out", tmp_path / "again")
    theirs = manifest_of(tmp_path / "again")
    for m in (ours, theirs):
        del m["created"]
    assert ours == theirs  # same files, same bytes (sha256), same preprocessing and names


# ------------------------------------------------- item 9: replacing an export at once
def contents(folder):
    """Every file's bytes, the manifest without its time stamp."""
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        out[name] = "dir" if os.path.isdir(path) else open(path, "rb").read()
    m = json.loads(out.pop(runtime.MANIFEST))
    del m["created"]
    return out, m


class Crash(Exception):
    pass


def crash_at(monkeypatch, k, after):
    """Make the ``k``-th rename of any kind raise (before or after doing it)."""
    count = [0]

    def wrap(real):
        def renamer(*args, **kwargs):
            count[0] += 1
            if count[0] == k and not after:
                raise Crash(k)
            result = real(*args, **kwargs)
            if count[0] == k:
                raise Crash(k)
            return result
        return renamer
    monkeypatch.setattr(os, "rename", wrap(os.rename))
    monkeypatch.setattr(os, "replace", wrap(os.replace))
    if hasattr(exporter, "exchange"):
        monkeypatch.setattr(exporter, "exchange", wrap(exporter.exchange))
    return count


def test_replacing_an_export_leaves_the_old_or_the_new_one_at_every_step(
        original, tmp_path, monkeypatch):
    """A crash at any rename of an export over an earlier one (before or after it) leaves
    the folder holding exactly the earlier export or exactly the new one, loadable, each
    file matching its sha256; never new params beside the old manifest."""
    new_net = net_with_seed(1)
    reference = str(tmp_path / "reference")
    deploy.export(new_net, reference, preprocess=PREPROCESS)
    old, new = contents(original[0]), contents(reference)
    assert old != new
    folder = str(tmp_path / "e")
    with monkeypatch.context() as m:  # how many renames a whole replacement takes
        shutil.copytree(original[0], folder)
        count = crash_at(m, 0, False)
        deploy.export(new_net, folder, preprocess=PREPROCESS)
        renames = count[0]
    assert renames >= 1 and contents(folder) == new
    for k in range(1, renames + 1):
        for after in (False, True):
            shutil.rmtree(folder)
            shutil.copytree(original[0], folder)
            with monkeypatch.context() as m:
                crash_at(m, k, after)
                with pytest.raises(Crash):
                    deploy.export(new_net, folder, preprocess=PREPROCESS)
            state = contents(folder)
            assert state in (old, new), f"rename {k} ({'after' if after else 'before'})"
            assert runtime.read_manifest(folder)  # every file matches its sha256
            runtime.load_exported(folder)


def test_export_replaces_only_export_folders(tmp_path, cli):
    """An export replaces its whole folder, so a folder with other files is refused before
    any work, and nothing in it changes."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    before = snapshot(str(folder))
    assert_clean_error(cli("export", "resnet20_cifar", "--weights", tmp_path / "missing.params",
                           "--out", folder),
                       "holds files that are not part of an export (notes.txt)", "new folder")
    assert snapshot(str(folder)) == before
    assert os.listdir(tmp_path) == ["mine"]  # no staging folder beside it either


def test_replaced_export_keeps_the_folders_permissions(tmp_path):
    folder = str(tmp_path / "e")
    deploy.export(net_with_seed(1), folder, preprocess=PREPROCESS)
    assert os.stat(folder).st_mode & 0o777 == 0o777 & ~current_umask()
    os.chmod(folder, 0o750)
    deploy.export(net_with_seed(2), folder, preprocess=PREPROCESS)
    assert os.stat(folder).st_mode & 0o777 == 0o750


def current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


# ------------------------------------------------------- item 10: stale staging folders
def test_stale_staging_folders_are_removed_by_the_next_export(original, tmp_path):
    """Staging folders of killed exports into the same folder go at the next export; one
    still locked (in use) and those of other folders stay."""
    folder = str(tmp_path / "e")
    shutil.copytree(original[0], folder)
    os.mkdir(os.path.join(folder, ".export.k1l13d"))  # kept inside by earlier versions
    stale = tmp_path / ".e.export-killed"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "e-0000.params").write_bytes(b"partial")
    in_use, other = tmp_path / ".e.export-busy", tmp_path / ".other.export-x"
    in_use.mkdir()
    other.mkdir()
    fd = os.open(in_use, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        deploy.export(net_with_seed(1), folder, preprocess=PREPROCESS)
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == [".e.export-busy", ".other.export-x", "e"]
    assert not any(n.startswith(".") for n in os.listdir(folder))
    runtime.load_exported(folder)


KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    import gluonres
    from gluonres import deploy
    from gluonres.data.preprocess import Preprocess
    from gluonres.deploy import exporter
    from gluonres.models.init import he_initialize

    def die(*args, **kwargs):  # SIGKILL at the first rename: no cleanup code runs
        os.kill(os.getpid(), signal.SIGKILL)
    os.rename = os.replace = die
    if hasattr(exporter, "exchange"):
        exporter.exchange = die
    net = gluonres.get_model("resnet20_cifar")
    he_initialize(net, 1)
    deploy.export(net, sys.argv[1], preprocess=Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3))
""")


@pytest.mark.slow
@pytest.mark.subprocess
def test_an_export_killed_mid_replacement_is_cleaned_up_by_the_next(original, tmp_path):
    folder = str(tmp_path / "e")
    shutil.copytree(original[0], folder)
    old = contents(folder)
    proc = subprocess.run([sys.executable, "-c", KILLED_EXPORT, folder], cwd=str(REPO),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert contents(folder)[1] == old[1]  # the earlier export, whole
    runtime.load_exported(folder)
    deploy.export(net_with_seed(2), folder, preprocess=PREPROCESS)
    assert os.listdir(tmp_path) == ["e"]  # the killed export's staging folder is gone
    assert not any(n.startswith(".") for n in os.listdir(folder))


# ------------------------------------------------ item 11: paths confined, all verified
@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_manifest_paths_outside_the_folder_are_refused(export_copy, tmp_path, cli, where):
    """A manifest naming a file outside its folder (even with a matching sha256) is
    refused: before, `../../x` predicted from outside with exit 0."""
    folder, image = export_copy
    outside = tmp_path / "outside-symbol.json"
    shutil.copy(os.path.join(folder, "resnet20_cifar-symbol.json"), outside)
    m = manifest_of(folder)
    if where == "parent":
        m["files"]["symbol"] = "../outside-symbol.json"
    elif where == "absolute":
        m["files"]["symbol"] = str(outside)
    else:
        os.symlink(outside, os.path.join(folder, "link-symbol.json"))
        m["files"]["symbol"] = "link-symbol.json"
    m["sha256"] = {**m["sha256"], m["files"]["symbol"]: runtime.sha256_of(outside)}
    forge(folder, m, digests=False)
    before = snapshot(folder)
    proc = cli("predict", folder, image)
    assert_clean_error(proc, "re-export the model")
    assert "outside the export folder" in proc.stderr or "relative paths" in proc.stderr
    assert snapshot(folder) == before


def test_every_loaded_file_needs_a_sha256_entry(export_copy, cli):
    folder, image = export_copy
    m = manifest_of(folder)
    del m["sha256"]["resnet20_cifar-0000.params"]
    forge(folder, m, digests=False)
    assert_clean_error(cli("predict", folder, image), "resnet20_cifar-0000.params",
                       'without a "sha256" entry', "re-export")


@pytest.mark.parametrize("role", ["symbol", "params", "mean_image", "passwd"])
def test_errors_never_quote_a_files_content(export_copy, cli, role):
    """A manifest pointing a loaded file at something else: the error says what is wrong
    but prints nothing of the file (before, a symbol -> /etc/passwd printed its first
    line)."""
    folder, image = export_copy
    secret = "SECRET-CONTENT root:x:0:0:root:/root:/bin/bash"
    with open(os.path.join(folder, "secret.json"), "w") as f:
        f.write(secret + "\n" + secret + "\n")
    m = manifest_of(folder)
    if role == "mean_image":
        m["preprocess"] = {**m["preprocess"], "mean": None, "mean_image": "secret.json"}
        m["files"]["mean_image"] = "secret.json"
    elif role == "passwd":
        m["files"]["symbol"] = "/etc/passwd"
    else:
        m["files"][role] = "secret.json"
    forge(folder, m)
    proc = cli("predict", folder, image)
    assert_clean_error(proc, "re-export")
    assert "SECRET" not in proc.stderr and "root:" not in proc.stderr


# --------------------------------------------------------------- item 12: limits
def test_a_huge_image_is_refused_from_its_header(export_copy, tmp_path, cli):
    """20000x20000 pixels (2.5 GB decoded, a few hundred KB as a PNG): refused before
    decoding, naming the limit and how to raise it."""
    folder, image = export_copy
    huge = tmp_path / "huge.png"
    huge.write_bytes(png(20000, 20000))
    assert_clean_error(cli("predict", folder, huge), "20000x20000",
                       "exceeds the limit of 67,108,864", "GLUONRES_MAX_IMAGE_PIXELS=")


def test_the_pixel_limit_is_set_by_its_variable(export_copy, cli, monkeypatch):
    folder, image = export_copy
    monkeypatch.setenv("GLUONRES_MAX_IMAGE_PIXELS", "1000")
    assert_clean_error(cli("predict", folder, image), "32x32", "limit of 1,000",
                       "GLUONRES_MAX_IMAGE_PIXELS=1024")
    monkeypatch.setenv("GLUONRES_MAX_IMAGE_PIXELS", "many")
    assert_clean_error(cli("predict", folder, image), "GLUONRES_MAX_IMAGE_PIXELS='many'",
                       "positive integer")


def test_resizing_an_elongated_image_is_bounded():
    """1x30000 resized to a shorter side of 256 would be 7,680,000x256."""
    spec = {"size": [224, 224], "resize": {"shorter_side": 256}}
    with pytest.raises(DataError, match="7680000x256.*crop it to a less elongated shape"):
        runtime.fit_image(mx.nd.zeros((1, 30000, 3), dtype="uint8"), spec)


@pytest.mark.parametrize("kind,message", [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("dev_zero", "is a character device, not a regular file"),
    ("directory", "is a directory, not a regular file"),
    ("missing", "does not exist"),
])
def test_images_that_are_not_regular_files(export_copy, tmp_path, cli, kind, message):
    """Said for what they are (before: "does not exist"), and never read: a FIFO would
    block, /dev/zero never ends."""
    folder, _ = export_copy
    path = str(tmp_path / "x.png")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    elif kind == "directory":
        os.mkdir(path)
    assert_clean_error(cli("predict", folder, path), message, "pass paths of image files")


def write_symbol(folder, sym):
    m = manifest_of(folder)
    sym.save(os.path.join(folder, m["files"]["symbol"]))
    forge(folder, m)


def test_a_graph_with_foreign_operators_is_refused_before_it_runs(export_copy, cli):
    """An added zeros(4000, 4000) node (40000 used 6.4 GB before) is not something a
    gluonres export contains."""
    folder, image = export_copy
    m = manifest_of(folder)
    sym = mx.sym.load(os.path.join(folder, m["files"]["symbol"]))
    waste = mx.sym.sum(mx.sym.zeros((4000, 4000))).reshape((1, 1)) * 0
    write_symbol(folder, mx.sym.broadcast_add(sym, waste))
    assert_clean_error(cli("predict", folder, image),
                       "operators that no gluonres export contains", "'_zeros'", "re-export")


def test_a_graph_above_the_element_limit_is_refused(export_copy, cli, monkeypatch):
    folder, image = export_copy
    monkeypatch.setenv("GLUONRES_MAX_GRAPH_ELEMENTS", "100000")
    assert_clean_error(cli("predict", folder, image), "needs too much memory",
                       "limit of 100,000", "GLUONRES_MAX_GRAPH_ELEMENTS=")


def test_params_that_do_not_fit_the_graph(export_copy, cli):
    folder, image = export_copy
    m = manifest_of(folder)
    path = os.path.join(folder, m["files"]["params"])
    arrays = mx.nd.load(path)
    arrays["arg:head_dense_weight"] = mx.nd.zeros((11, 64))
    mx.nd.save(path, arrays)
    forge(folder, m)
    assert_clean_error(cli("predict", folder, image), "does not fit the graph",
                       "head_dense_weight", "(11, 64)", "(10, 64)")


def test_params_declaring_more_than_they_hold(export_copy, cli):
    """A params header claiming 4000x4000 floats in a small file is refused from the
    header, before mxnet allocates the array."""
    folder, image = export_copy
    m = manifest_of(folder)
    path = os.path.join(folder, m["files"]["params"])
    data = bytearray(open(path, "rb").read())
    # first array: list magic, reserved, count, NDArray magic, stype, ndim, dims...
    ndim = struct.unpack_from("<i", data, 32)[0]
    dims = [4000, 4000] + [1] * (ndim - 2) if ndim >= 2 else [4000 * 4000]
    struct.pack_into(f"<{ndim}q", data, 36, *dims)
    open(path, "wb").write(bytes(data))
    forge(folder, m)
    assert_clean_error(cli("predict", folder, image), "not a readable MXNet params file")


@pytest.mark.slow
def test_the_operator_list_covers_the_exports_of_int8(tmp_path):
    """GRAPH_OPS holds what an INT8 export contains (the float32 graphs: below)."""
    from gluonres.deploy.quantize import Calibration
    images = np.random.RandomState(0).randint(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    deploy.export(net_with_seed(0), str(tmp_path / "q"), preprocess=PREPROCESS,
                  calibration=Calibration(images, {"data": "random"}))
    m = manifest_of(tmp_path / "q")
    for key in ("symbol", "int8_symbol"):
        with open(tmp_path / "q" / m["files"][key]) as f:
            assert runtime._graph_ops(json.load(f)) <= runtime.GRAPH_OPS
    runtime.load_exported(str(tmp_path / "q"), "int8")


@pytest.mark.slow
def test_the_operator_list_covers_every_registered_model():
    for name in gluonres.list_models():
        net = gluonres.get_model(name)
        graph = json.loads(net(mx.sym.var("data")).tojson())
        assert runtime._graph_ops(graph) <= runtime.GRAPH_OPS, name


# ------------------------------------------------------ item 13: what reaches the terminal
def predict_strict_utf8(folder, *args):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    return subprocess.run([sys.executable, "-m", "gluonres", "predict", folder, *args],
                          capture_output=True, env=env, cwd=str(REPO), timeout=300)


@pytest.mark.slow
@pytest.mark.subprocess
def test_class_names_cannot_write_to_the_terminal(export_copy, tmp_path):
    """Escapes and newlines in class names (and image paths) are shown escaped: one line
    per image, no terminal codes."""
    folder, image = export_copy
    m = manifest_of(folder)
    m["classes"] = [f"c{i}\x1b[2J\nfake.png: cat 100.0%\u202e\x9b" for i in range(10)]
    forge(folder, m)
    odd = str(tmp_path / "odd\x1b[31m.png")
    shutil.copy(image, odd)
    proc = predict_strict_utf8(folder, odd, "--top-k", "10")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8")
    assert out.count("\n") == 1 and "\x1b" not in out and "\x9b" not in out
    assert "c0\\x1b[2J\\nfake.png: cat 100.0%\\u202e\\x9b" in out and "odd\\x1b[31m.png" in out


@pytest.mark.slow
@pytest.mark.subprocess
def test_non_utf8_class_names_print_on_a_strict_utf8_stdout(export_copy):
    """Class names from non-UTF-8 folder names (surrogates in JSON) crashed predict."""
    folder, image = export_copy
    m = manifest_of(folder)
    m["classes"] = [f"caf\udce9-{i}" for i in range(10)]
    forge(folder, m)
    proc = predict_strict_utf8(folder, image, "--top-k", "10")
    assert proc.returncode == 0, proc.stderr
    assert "caf\\udce9-0" in proc.stdout.decode("utf-8")
    proc = predict_strict_utf8(folder, image, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["top_k"][0]["class"].startswith("caf\udce9")


# ------------------------------------------------- item 14: one line and exit 2
def test_truncated_and_elongated_pngs(export_copy, tmp_path, cli):
    folder, image = export_copy
    truncated = tmp_path / "truncated.png"
    data = open(image, "rb").read()
    truncated.write_bytes(data[:len(data) // 2])
    assert_clean_error(cli("predict", folder, truncated), "truncated.png",
                       "not a readable image", "truncated or corrupt")
    long = tmp_path / "long.png"
    long.write_bytes(png(30000, 1, np.zeros((1, 30000, 3), np.uint8)))
    assert_clean_error(cli("predict", folder, long), "30000x1 pixels", "resize the image")


def test_a_truncated_jpeg_is_refused(export_copy, tmp_path, cli):
    """mxnet's libjpeg fills a truncated JPEG with grey without a word (before, predict
    printed a prediction for it): its missing end marker is checked."""
    folder, image = export_copy
    rgb = np.random.RandomState(1).randint(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", rgb)
    whole, damaged = tmp_path / "whole.jpg", tmp_path / "damaged.jpg"
    whole.write_bytes(data.tobytes())
    damaged.write_bytes(data.tobytes()[:-200])
    assert cli("predict", folder, whole).returncode == 0
    assert_clean_error(cli("predict", folder, damaged), "damaged.jpg", "truncated or corrupt")


MALFORMED = {
    "top-level list": lambda m: [m],
    "classes a string": lambda m: {**m, "classes": "cat dog"},
    "classes numbers": lambda m: {**m, "classes": list(range(10))},
    "too few classes": lambda m: {**m, "classes": ["a", "b"]},
    "files a list": lambda m: {**m, "files": list(m["files"].values())},
    "no params role": lambda m: {**m, "files": {"symbol": m["files"]["symbol"]}},
    "sha256 numbers": lambda m: {**m, "sha256": {k: 1 for k in m["sha256"]}},
    "size a string": lambda m: {**m, "image": {**m["image"], "size": "32x32"}},
    "size huge": lambda m: {**m, "image": {**m["image"], "size": [10 ** 9, 10 ** 9]}},
    "resize junk": lambda m: {**m, "image": {**m["image"], "resize": {"shorter": 1}}},
    "color junk": lambda m: {**m, "image": {**m["image"], "color": "CMYK"}},
    "color missing": lambda m: {**m, "image": {k: v for k, v in m["image"].items()
                                               if k != "color"}},
    "grey with RGB std": lambda m: {**m, "image": {**m["image"], "color": "L"}},
    "mean a string": lambda m: {**m, "preprocess": {**m["preprocess"], "mean": "grey"}},
    "std zero": lambda m: {**m, "preprocess": {**m["preprocess"], "std": [0, 0, 0]}},
    "format missing": lambda m: {k: v for k, v in m.items() if k != "format"},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifests(export_copy, cli, case):
    folder, image = export_copy
    m = MALFORMED[case](manifest_of(folder))
    with open(os.path.join(folder, runtime.MANIFEST), "w") as f:
        json.dump(m, f)
    before = snapshot(folder)
    assert_clean_error(cli("predict", folder, image), "manifest.json", "re-export")
    assert snapshot(folder) == before


@pytest.mark.parametrize("content", [b"[" * 100000, b'{"format": 1' + b"9" * 5000 + b"}",
                                     b"\xff\xfe{}"])
def test_unparseable_manifests(export_copy, cli, content):
    folder, image = export_copy
    with open(os.path.join(folder, runtime.MANIFEST), "wb") as f:
        f.write(content)
    assert_clean_error(cli("predict", folder, image), "is not readable JSON", "re-export")


@pytest.fixture(scope="module")
def pixel_mean_export(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("mean") / "e")
    mean = np.random.RandomState(0).uniform(0, 1, (3, 32, 32)).astype(np.float32)
    deploy.export(net_with_seed(0), folder, preprocess=Preprocess(mean_image=mean))
    return folder


@pytest.mark.parametrize("array", ["object", "shape", "not_npy"])
def test_bad_mean_npy(pixel_mean_export, original, tmp_path, cli, array):
    folder = str(tmp_path / "e")
    shutil.copytree(pixel_mean_export, folder)
    path = os.path.join(folder, "mean.npy")
    if array == "object":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif array == "shape":
        np.save(path, np.zeros((3, 8, 8), np.float32))
    else:
        open(path, "w").write("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 32, 32)}")
    forge(folder, manifest_of(folder))
    assert_clean_error(cli("predict", folder, original[1]), "mean.npy", "re-export")


def test_export_checks_its_options_before_any_work(tmp_path, cli):
    """--batch 0, and an --out that is a file or under one, are refused before the weights
    are read (a missing weights file would be the error otherwise)."""
    missing = tmp_path / "missing.params"
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_clean_error(cli("export", "resnet20_cifar", "--out", tmp_path / "e", "--batch", "0"),
                       "--batch 0", "at least 1")
    assert_clean_error(cli("export", "resnet20_cifar", "--weights", missing, "--out", afile),
                       "is a file", "pass a folder")
    assert_clean_error(cli("export", "resnet20_cifar", "--weights", missing, "--out",
                           afile / "e"), "cannot write to --out", "a folder you can write to")
    assert sorted(os.listdir(tmp_path)) == ["afile"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_export_to_an_unwritable_folder(tmp_path, cli):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_clean_error(cli("export", "resnet20_cifar", "--weights",
                               tmp_path / "missing.params", "--out", locked / "e"),
                           "cannot write to", "a folder you can write to")
    finally:
        locked.chmod(0o700)


def test_predict_on_a_folder_that_is_not_an_export(tmp_path, original, cli):
    assert_clean_error(cli("predict", tmp_path / "nowhere", original[1]),
                       "export folder", "does not exist", "gluonres export")
    assert_clean_error(cli("predict", original[1], original[1]), "is not a folder")

