"""Bad arguments and bad data files on the command line (issue 20, item 14): one line
``gluonres: error: <problem>; <fix>``, exit code 2, checked before the work, and every
file that existed before left as it was (nothing new either)."""
import os
import tarfile

import pytest

import gluonres
from gluonres import io
from gluonres.cli import main
from gluonres.models.init import he_initialize

from helpers import assert_clean_error, snapshot, write_folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """ResNet-20 weights (digits' classes) that evaluate would run for seconds."""
    path = tmp_path_factory.mktemp("weights") / "r20.params"
    net = gluonres.get_model("resnet20_cifar", classes=10)
    he_initialize(net, 0)
    io.save_weights(net, str(path), {"model": "resnet20_cifar",
                                     "classes": [str(i) for i in range(10)]})
    return str(path)


def evaluate(weights, *args):
    return ["evaluate", "resnet20_cifar", "--weights", weights, "--data", "digits",
            "--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25", *args]


def folder(tmp):
    write_folder(str(tmp / "images"), per_class=2)
    return str(tmp / "images")


def a_file(tmp, name="taken"):
    (tmp / name).write_text("a file, not a folder")
    return str(tmp / name)


def archive(tmp, damage):
    write_folder(str(tmp / "src"), per_class=2)
    path = tmp / "data.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tmp / "src", arcname=".")
    blob = path.read_bytes()
    path.write_bytes(blob[:len(blob) // 2] if damage == "truncated" else b"not gzip\n" * 50)
    return str(path)


def empty_image(tmp):
    root = folder(tmp)
    open(os.path.join(root, "train", "dog", "empty.png"), "wb").close()
    return root


def packed(tmp, name, content):
    write_folder(str(tmp / "src"), splits=("train",), per_class=2)
    assert main(["data", "pack", str(tmp / "src"), "--out", str(tmp / "rec")]) == 0
    (tmp / "rec" / name).write_bytes(content)
    return str(tmp / "rec")


def results(tmp):
    os.makedirs(tmp / "results", exist_ok=True)
    return str(tmp / "results")


# (case, arguments from (tmp, weights), the problem, the fix)
CASES = [
    ("summary size negative", lambda t, w: ["summary", "resnet20_cifar", "--size", "-7"],
     "--size -7 is not an image size", "pass a whole number of pixels of at least 1"),
    ("summary size zero", lambda t, w: ["summary", "resnet20_cifar", "--size", "0"],
     "--size 0 is not an image size", "leave --size out for the model's own"),
    ("data info size zero", lambda t, w: ["data", "info", folder(t), "--size", "0"],
     "image size 0 is not a whole number of pixels", "pass e.g. --size 32"),
    ("evaluate batch size zero", lambda t, w: evaluate(w, "--batch-size", "0"),
     "batch size 0 is not a whole number of images", "pass e.g. --batch-size 256"),
    ("evaluate out is a file", lambda t, w: evaluate(w, "--out", a_file(t)),
     "cannot write to --out", "pass a folder"),
    ("evaluate out under a file", lambda t, w: evaluate(w, "--out",
                                                        os.path.join(a_file(t), "sub")),
     "cannot write to --out", "pass a folder you can write to"),
    ("pack out is a file", lambda t, w: ["data", "pack", folder(t), "--out", a_file(t)],
     "is a file", "pack into a new or empty folder"),
    ("pack out under a file", lambda t, w: ["data", "pack", folder(t), "--out",
                                            os.path.join(a_file(t), "rec")],
     "cannot write to --out", "pass a folder you can write to"),
    ("report out under a file", lambda t, w: ["report", "--results", results(t), "--out",
                                              os.path.join(a_file(t), "results.md")],
     "cannot write to --out", "pass a folder you can write to"),
    ("report out is a folder", lambda t, w: ["report", "--results", results(t), "--out",
                                             results(t)],
     "(it is a folder)", "pass the page's file name"),
    ("truncated archive", lambda t, w: ["data", "info", archive(t, "truncated")],
     "cannot extract archive", "download or create the archive again"),
    ("archive not gzip", lambda t, w: ["data", "info", archive(t, "not gzip")],
     "cannot extract archive", "download or create the archive again"),
    ("0-byte image", lambda t, w: ["data", "info", empty_image(t)],
     "empty.png' is empty (0 bytes)", "replace or remove the file"),
    ("0-byte image, train", lambda t, w: ["train", "resnet20_cifar", "--data", empty_image(t),
                                          "--out", str(t / "run")],
     "empty.png' is empty (0 bytes)", "replace or remove the file"),
    ("0-byte image, pack", lambda t, w: ["data", "pack", empty_image(t), "--out",
                                         str(t / "rec")],
     "empty.png' is empty (0 bytes)", "replace or remove the file"),
    ("garbage idx", lambda t, w: ["data", "info", packed(t, "train.idx", b"\x00garbage\xff")],
     "train.idx' is not a RecordIO index", "re-pack the data with gluonres data pack"),
    ("garbage meta.json", lambda t, w: ["data", "info", packed(t, "meta.json", b"\x89{[")],
     "meta.json' is not a RecordIO meta.json", "re-pack the data with gluonres data pack"),
]


@pytest.mark.parametrize("case, argv, problem, fix", CASES, ids=[c[0] for c in CASES])
def test_bad_argument_is_one_line_and_exit_2(weights, tmp_path, cli, monkeypatch, case, argv,
                                             problem, fix):
    monkeypatch.setenv("GLUONRES_CACHE", str(tmp_path / "cache"))
    os.makedirs(tmp_path / "cache")
    args = argv(tmp_path, weights)
    before = snapshot(tmp_path)
    assert_clean_error(cli(*args), problem, fix)
    assert snapshot(tmp_path) == before  # nothing written, nothing left behind


def test_checks_come_before_the_work(weights, tmp_path):
    """A bad --out or batch size is refused before the data is read: here it does not exist."""
    from gluonres.errors import GluonresError
    from gluonres.measure.accuracy import evaluate_weights

    nowhere = str(tmp_path / "nowhere")
    with pytest.raises(GluonresError, match="cannot write to --out"):
        evaluate_weights("resnet20_cifar", weights, nowhere, out=a_file(tmp_path))
    with pytest.raises(GluonresError, match="batch size 0"):
        evaluate_weights("resnet20_cifar", weights, nowhere, batch_size=0)
    with pytest.raises(GluonresError, match="cannot write to --out"):
        gluonres.data.pack_recordio(nowhere, os.path.join(a_file(tmp_path, "f2"), "x"),
                                    progress=False)


def test_data_info_escapes_class_names_from_the_file_system(tmp_path, capsys):
    """Item 13 for `data info`: a class folder named with a terminal escape is shown escaped."""
    from gluonres.cli import main
    write_folder(str(tmp_path / "d"), splits=(None,), classes=("\x1b[31mred", "blue"))
    assert not main(["data", "info", str(tmp_path / "d")])  # exit code 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31mred" in out
