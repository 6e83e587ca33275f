"""`gluonres train / evaluate / data / record` from the command line."""
import json
import os

import numpy as np
import pytest

from gluonres import data
from gluonres import train as training
from gluonres.models.cifar import cifar_resnet

from helpers import assert_clean_error, last_json, run, write_folder


@pytest.mark.slow
@pytest.mark.subprocess
def test_train_evaluate_record_on_digits(tmp_path):
    out = str(tmp_path / "run")
    proc = run("train", "resnet20_cifar", "--data", "digits", "--iterations", "6",
               "--batch-size", "64", "--out", out, "--json")
    record = last_json(proc)
    assert record["out"] == out and record["epochs"] == 1 and record["iterations"] == 6
    assert 0 <= record["test_accuracy"] <= 1 and record["train_img_s"] > 0
    for path in record["files"].values():
        assert os.path.getsize(path) > 0, path
    assert "flips change its labels" in proc.stderr
    with open(os.path.join(out, "log.json")) as f:
        log = json.load(f)
    assert log["config"]["flip"] is False and log["config"]["epochs"] is None
    assert log["info"]["command"].startswith("gluonres train resnet20_cifar --data digits")

    evaluated = last_json(run("evaluate", "resnet20_cifar", "--weights",
                              record["files"]["weights"], "--data", "digits", "--out",
                              str(tmp_path / "eval"), "--json"))
    assert evaluated["accuracy"] == pytest.approx(record["test_accuracy"])
    assert list(evaluated["per_class"]) == [str(i) for i in range(10)]
    assert os.path.getsize(evaluated["confusion_png"]) > 0

    results = str(tmp_path / "results")
    paths = last_json(run("record", out, "--name", "r20-digits", "--results", results,
                          "--json"))
    with open(paths["json"]) as f:
        rec = json.load(f)
    assert rec["command"] == log["info"]["command"] and rec["machine"]["cores"] >= 1
    assert rec["test_accuracy"] == record["test_accuracy"] and len(rec["epochs"]) == 1
    assert rec["resumed"] == [] and rec["train_s"] > 0
    assert os.path.getsize(paths["weights"]) > 0
    assert_clean_error(run("record", out, "--name", "r20-digits", "--results", results,
                            check=False), "already exists", "--force")


def _empty_class(root):
    write_folder(str(root))
    os.makedirs(root / "train" / "zebra")
    os.makedirs(root / "test" / "zebra")


def _unreadable(root):
    write_folder(str(root))
    (root / "test" / "dog" / "9.png").write_bytes(b"garbage")


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("make,fragments", [
    (lambda root: None, ["does not exist"]),
    (_empty_class, ["zebra", "has no images"]),
    (_unreadable, ["cannot decode image", os.path.join("test", "dog", "9.png")]),
])
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, make, fragments):
    root = tmp_path / "data"
    make(root)
    out = tmp_path / "run"
    assert_clean_error(run("train", "resnet20_cifar", "--data", str(root), "--out", str(out),
                            check=False), *fragments)
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.subprocess
def test_resume_with_another_models_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    net = cifar_resnet(8)
    net.model_name = "resnet8_cifar"
    digits = data.load("digits")
    small = data.Data("digits", digits.train.subset(np.arange(64)), digits.test, hflip=False)
    training.fit(net, small, training.TrainConfig(batch_size=32, iterations=2,
                                                  schedule="cosine"),
                 out_dir=out, progress=False)
    before = os.path.getmtime(os.path.join(out, "checkpoint.params"))
    assert_clean_error(run("train", "resnet20_cifar", "--resume", "--out", out, check=False),
                        "checkpoint of resnet8_cifar, not resnet20_cifar")
    assert_clean_error(run("train", "resnet20_cifar", "--resume", "--out",
                            str(tmp_path / "none"), check=False), "no checkpoint to resume")
    assert os.path.getmtime(os.path.join(out, "checkpoint.params")) == before


@pytest.mark.slow
@pytest.mark.subprocess
def test_data_pack_and_info(tmp_path):
    src = tmp_path / "src"
    write_folder(str(src), classes=("a", "b", "c"), per_class=2, ext=".jpg")
    packed = last_json(run("data", "pack", str(src), "--out", str(tmp_path / "rec"), "--json"))
    assert packed["splits"] == {"train": 6, "test": 6} and packed["classes"] == ["a", "b", "c"]
    info = last_json(run("data", "info", str(tmp_path / "rec"), "--json"))
    assert info["splits"] == {"train": 6, "test": 6}
    assert info["per_class"]["train"] == [2, 2, 2] and "JPEG" in info["note"]
