"""The bad-input matrix (docs/reliability.md): every bad input answered by one message
naming the problem and the fix, exit code 2 on the CLI, and every file that existed
before left byte for byte as it was (nothing new left behind either)."""
import os
import shutil

import cv2
import numpy as np
import pytest

import gluonres
from gluonres import io
from gluonres import train as training
from gluonres.cli import main
from gluonres.errors import GluonresError, TrainingDivergedError
from gluonres.models.init import he_initialize

from helpers import Poison, assert_clean_error, fast, resnet8, small, snapshot


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good files the cases damage copies of: ResNet-20 weights, an export, a PNG."""
    root = tmp_path_factory.mktemp("good")
    net = gluonres.get_model("resnet20_cifar", classes=10)
    he_initialize(net, 0)
    io.save_weights(net, str(root / "r20.params"), {"model": "resnet20_cifar",
                                                    "classes": [str(i) for i in range(10)]})
    assert main(["export", "resnet20_cifar", "--out", str(root / "export"),
                 "--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25"]) == 0
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "ok.png"), image)
    cv2.imwrite(str(root / "big.png"), cv2.resize(image, (40, 40)))
    return root


def copy(files, tmp, name):
    src = files / name
    dst = tmp / name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return str(dst)


def truncate(path, size=2000):
    with open(path, "r+b") as f:
        f.truncate(size)
    return path


def data_folder(tmp, bad=None):
    """An image folder train/{a,b}; ``bad`` adds a file that is not an image."""
    for c in ("a", "b"):
        os.makedirs(tmp / "data" / "train" / c)
        cv2.imwrite(str(tmp / "data" / "train" / c / "0.png"), np.zeros((32, 32, 3), np.uint8))
    if bad:
        (tmp / "data" / "train" / "b" / bad).write_bytes(b"not an image")
    return str(tmp / "data")


# (case, CLI arguments from (files, tmp), the problem, the fix): docs/reliability.md
CLI_CASES = [
    ("unknown model", lambda f, t: ["summary", "resnet56cifar"],
     "unknown model 'resnet56cifar'", "resnet56_cifar"),
    ("wrong classes", lambda f, t: ["evaluate", "resnet20_cifar", "--classes", "100",
                                    "--weights", copy(f, t, "r20.params"), "--data", "digits"],
     "'head_dense_weight' has shape (10, 64), but resnet20_cifar needs (100, 64)",
     "load weights saved from the same model (and the same classes)"),
    ("weights of another model", lambda f, t: ["evaluate", "resnet32_cifar", "--weights",
                                               copy(f, t, "r20.params"), "--data", "digits"],
     "stage1_unit4", "resnet20_cifar"),
    ("truncated params", lambda f, t: ["evaluate", "resnet20_cifar", "--data", "digits",
                                       "--weights", truncate(copy(f, t, "r20.params"))],
     "not a readable MXNet params file (truncated or corrupt)", "re-export or re-download"),
    ("corrupt manifest", lambda f, t: ["predict", _corrupt_manifest(copy(f, t, "export")),
                                       copy(f, t, "ok.png")],
     "manifest.json' is not readable JSON", "re-export"),
    ("missing data folder", lambda f, t: ["train", "resnet20_cifar", "--data",
                                          str(t / "nowhere"), "--out", str(t / "run")],
     "does not exist", "pass 'digits'"),
    ("empty data folder", lambda f, t: ["train", "resnet20_cifar", "--data",
                                        _mkdir(t / "empty"), "--out", str(t / "run")],
     "has no class subfolders", "put the images of each class in a folder"),
    ("unreadable image", lambda f, t: ["train", "resnet20_cifar", "--data",
                                       data_folder(t, bad="1.png"), "--out", str(t / "run")],
     "1.png' (corrupt or not an image)", "replace or remove the file"),
    ("wrong input shape", lambda f, t: ["predict", copy(f, t, "export"), copy(f, t, "big.png")],
     "is 40x40 pixels, but this export takes 32x32", "resize the image to 32x32 first"),
    ("unwritable output folder", lambda f, t: ["train", "resnet20_cifar", "--data", "digits",
                                               "--out", os.path.join(copy(f, t, "ok.png"),
                                                                     "run")],
     "cannot write to --out", "pass a folder you can write to"),
    ("out-of-range hyper-parameter", lambda f, t: ["train", "resnet20_cifar", "--data", "digits",
                                                   "--momentum", "1.5", "--out", str(t / "run")],
     "momentum=1.5: it must be in [0, 1)", "(--momentum)"),
    ("run folder already used", lambda f, t: ["train", "resnet20_cifar", "--data", "digits",
                                              "--out", _existing_run(t)],
     "already holds a run", "--resume"),
    ("resume without a checkpoint", lambda f, t: ["train", "resnet20_cifar", "--resume",
                                                  "--out", _mkdir(t / "run")],
     "no checkpoint to resume", "drop --resume"),
    ("kvstore without a launcher", lambda f, t: ["train", "resnet20_cifar", "--data", "digits",
                                                 "--kvstore", "dist_sync", "--iterations", "1",
                                                 "--out", str(t / "run")],
     "needs the parameter-server environment", "gluonres launch -n WORKERS"),
]


def _corrupt_manifest(folder):
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        f.write("{not json")
    return folder


def _mkdir(path):
    os.makedirs(path)
    return str(path)


def _existing_run(tmp):
    """A run folder with a checkpoint (its content does not matter: nothing reads it)."""
    run = tmp / "run"
    run.mkdir()
    (run / "checkpoint.params").write_bytes(b"a previous run's checkpoint")
    return str(run)


@pytest.mark.parametrize("case, argv, problem, fix", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(files, tmp_path, cli, monkeypatch, case, argv, problem, fix):
    for name in ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = argv(files, tmp_path)
    before = snapshot(tmp_path)
    assert_clean_error(cli(*args), problem, fix)
    assert snapshot(tmp_path) == before  # nothing lost, overwritten or left behind


def test_api_nan_loss_keeps_the_last_good_checkpoint(digits, tmp_path):  # noqa: F811
    out = str(tmp_path / "run")
    with pytest.raises(TrainingDivergedError) as caught:
        training.fit(resnet8(), small(digits), fast(), out_dir=out, progress=False,
                     callbacks=[Poison("head_dense_weight")])
    message = str(caught.value)
    assert "the loss became nan at iteration 11" in message  # the problem
    assert "fix: lower --lr or warm up" in message  # the fix
    assert isinstance(caught.value, GluonresError)
    before = snapshot(tmp_path)
    with pytest.raises(TrainingDivergedError):  # again, resumed from epoch 1
        training.fit(resnet8(), small(digits), fast(), out_dir=out, resume=True,
                     progress=False, callbacks=[Poison("head_dense_weight")])
    assert snapshot(tmp_path) == before


def test_api_settings_out_of_range_name_the_setting():
    with pytest.raises(GluonresError, match=r"lr=-0.1: it must be positive; pass a value in "
                                            r"range \(--lr\)"):
        training.TrainConfig(lr=-0.1)
    with pytest.raises(GluonresError, match=r"factor=0: it must be in \(0, 1\]; pass a value"):
        training.TrainConfig(factor=0)
