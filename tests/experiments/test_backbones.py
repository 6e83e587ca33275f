"""The backbone experiment: the comparison table and the training race, library and CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gluonres
from gluonres.experiments import backbones, records, scales

from helpers import REPO


def test_backbone_table_record(monkeypatch):
    monkeypatch.setattr(backbones, "BASELINE", "lenet5")
    record = backbones.backbone_table(["lenet5", "efficientnet_b0"], batch_size=1,
                                      warmup=1, repeats=2, progress=False)
    json.dumps(record)  # JSON-ready as it stands
    lenet, b0 = record["models"]
    assert (lenet["params"], b0["params"]) == (62_006, 5_288_548)
    assert lenet["published"]["params"] == 60_000 and lenet["params_vs_published"] == 2_006
    assert b0["params_vs_published"] == 0 and b0["published"]["gmacs"] == 0.39
    assert b0["input_shape"] == [1, 3, 224, 224] and b0["output_shape"] == [1, 1000]
    assert [s["name"] for s in lenet["stages"]] == ["c1", "s2", "c3", "s4", "c5", "f6", "head"]
    for row in (lenet, b0):
        t = row["throughput"]
        assert t["batch"] == 1 and t["repeats"] == 2
        assert t["min_batch_s"] <= t["median_batch_s"] <= t["max_batch_s"]
        assert t["images_per_s"] == pytest.approx(1 / t["median_batch_s"])
    assert lenet["speed_vs_baseline"] == 1.0 and record["baseline"] == "lenet5"
    assert record["machine"]["cores"] >= 1
    text = backbones.format_table(record)
    assert "62,006" in text and "60,000" in text and "vs lenet5" in text


def test_measure_throughput_refuses_no_timed_pass():
    with pytest.raises(gluonres.GluonresError, match="repeats"):
        backbones.measure_throughput(gluonres.get_model("lenet5"), (1, 3, 32, 32), repeats=0)


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_backbones_json_without_timing():
    proc = subprocess.run([sys.executable, "-m", "gluonres", "backbones", "lenet5", "densenet121",
                           "--no-throughput", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(m["model"], m["params"]) for m in record["models"]] == [
        ("lenet5", 62_006), ("densenet121", 7_978_856)]
    assert "throughput" not in record["models"][0] and record["baseline"] is None


# ---------------------------------------------------------------------------- training
TINY = scales.Scale("tiny", train_images=40, test_images=30, epochs=1, batch_size=16,
                    default_data="digits", description="test")


def test_train_comparison_record(tmp_path, capsys):
    record = backbones.run(TINY, models=["lenet5", "resnet20_cifar"], out=str(tmp_path),
                           command="test", progress=False)
    path = tmp_path / "backbones-tiny.json"
    assert json.loads(path.read_text()) == record
    # the common records read it back
    assert backbones.load_record("tiny", str(tmp_path)) == record
    assert records.load_record(backbones.NAME, "tiny", str(tmp_path)) == record
    assert (record["experiment"], record["scale"], record["command"]) == ("backbones", "tiny",
                                                                        "test")
    assert record["scale_settings"] == TINY.describe()
    assert record["data"]["splits"] == {"train": 40, "test": 30}
    assert record["data"]["subset"] == "seeded (seed 0), class-balanced"
    assert record["machine"]["cores"] >= 1 and record["wall_s"] > 0
    lenet, r20 = record["models"]
    assert (lenet["model"], lenet["input_size"], lenet["params"]) == ("lenet5", 32, 62_006)
    assert r20["params"] == 269_722 and r20["lr"] == 0.1 and lenet["lr"] == 0.01
    for row in (lenet, r20):
        acc = row["test_accuracy"]
        assert 0 <= acc <= 1 and row["test_images"] == 30
        assert row["test_error_pct"] == pytest.approx(100 * (1 - acc))
        assert row["std_error_pct"] == pytest.approx(100 * np.sqrt(acc * (1 - acc) / 30))
        assert row["iterations"] == 2 and len(row["epochs"]) == 1  # 40 // 16 updates
        assert row["train_img_s"] > 0 and row["wall_s"] >= row["train_s"]
    # the counts table rides along; untimed at this scale
    assert [m["model"] for m in record["table"]["models"]] == list(backbones.DEFAULT_MODELS)
    assert "throughput" not in record["table"]["models"][0]
    text = backbones.format_comparison(record)
    assert "lenet5" in text and "62,006" in text and "40 training images" in text
    with pytest.raises(gluonres.GluonresError, match="already exists"):
        backbones.run(TINY, models=["lenet5"], out=str(tmp_path), progress=False)
    assert json.loads(path.read_text()) == record  # nothing overwritten
    capsys.readouterr()
    assert backbones.load_record("cpu", str(tmp_path)) is None
    assert "`gluonres backbones --train --scale cpu --data DATA`" in capsys.readouterr().out


def test_committed_comparison_record_renders():
    """The recorded cpu comparison loads and renders as notebook 08 shows it."""
    record = backbones.load_record("cpu", str(REPO / "results"))
    assert [r["model"] for r in record["models"]] == list(backbones.TRAIN_MODELS)
    cpu = backbones.SCALES["cpu"]
    assert record["data"]["splits"] == {"train": cpu.train_images, "test": cpu.test_images}
    assert "4,000 training images" in backbones.format_comparison(record)
    assert "img/s" in backbones.format_table(record["table"])
    ax = backbones.plot_comparison(record)
    assert ax.get_xscale() == "log" and "cpu scale" in ax.get_title()
    import matplotlib.pyplot as plt
    plt.close(ax.figure)


def test_every_trained_model_builds_at_its_training_size():
    for name, setup in backbones.TRAIN_SETUPS.items():
        s = gluonres.summary(backbones.build(name, 10), (1, 3, setup.size, setup.size))
        assert s.stages[-1].output_shape == (1, 10), name


def test_train_comparison_refuses_unknown_models_and_missing_data(monkeypatch):
    monkeypatch.delenv(scales.DATA_ENV, raising=False)
    with pytest.raises(gluonres.GluonresError, match="no training setup for resnet50"):
        backbones.train_comparison("smoke", models=["resnet50"], progress=False)
    with pytest.raises(gluonres.GluonresError, match=f"pass --data .* or set {scales.DATA_ENV}"):
        backbones.train_comparison("cpu", progress=False)
    with pytest.raises(gluonres.GluonresError, match="unknown scale 'huge'; use one of smoke, cpu"):
        backbones.train_comparison("huge", progress=False)


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_train_needs_data_at_cpu_scale(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != scales.DATA_ENV}
    proc = subprocess.run([sys.executable, "-m", "gluonres", "backbones", "--train", "--scale",
                           "cpu", "--out", str(tmp_path)], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2
    assert "pass --data" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_train_smoke_one_model_json(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gluonres", "backbones", "--train", "lenet5",
                           "--out", str(tmp_path), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["record"] == str(tmp_path / "backbones-smoke.json") and out["scale"] == "smoke"
    assert [(m["model"], m["input_size"], m["params"]) for m in out["models"]] == [
        ("lenet5", 32, 62_006)]
    record = json.loads((tmp_path / "backbones-smoke.json").read_text())
    assert record["command"] == "gluonres backbones --train lenet5 --out " + str(tmp_path)
    assert record["data"]["name"] == "digits" and record["models"][0]["iterations"] == 6
