"""Issue 17: the input size, the resize and the input channels, one setting end to end.

A run at ``--size 32`` (and a grey one, ``--in-channels 1``) on a generated 3-class folder
of 40x48 images records its size, resize and channels with its weights; ``evaluate``
scores exactly its held-out split; ``export`` needs no flags; and ``predict`` feeds the
network the very pixels ``evaluate`` does. resnet18 is trained because its own input is
224: at 32 it shows that the size travels (a CIFAR model would run at 32 anyway).
"""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from gluonres import data, io
from gluonres.analysis import evaluation
from gluonres.cli import main
from gluonres.deploy import runtime

from helpers import assert_clean_error, last_json, snapshot, write_folder


SIZE = 32
RUN = ["--size", str(SIZE), "--epochs", "1", "--batch-size", "8", "--val-split", "25%",
       "--seed", "3", "--schedule", "cosine", "--no-progress"]
HELD_OUT = 9  # 25% of 3 classes x 12 images


def _train(root, name, *options):
    out = str(root / name)
    assert main(["train", "resnet18", "--data", str(root / "data"), "--out", out, *RUN,
                 *options]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The folder (3 classes x 12 random 40x48 PNGs) and two runs on it: RGB and grey."""
    root = tmp_path_factory.mktemp("size")
    write_folder(str(root / "data"), splits=(None,), classes=("a", "b", "c"), per_class=12,
                 size=(40, 48))
    return {"root": root, "data": str(root / "data"), "rgb": _train(root, "rgb"),
            "grey": _train(root, "grey", "--in-channels", "1")}


def _run(runs, kind):
    return runs[kind]


def _manifest(folder):
    with open(os.path.join(folder, runtime.MANIFEST)) as f:
        return json.load(f)


@pytest.mark.parametrize("kind, channels, color", [("rgb", 3, "RGB"), ("grey", 1, "L")])
def test_the_run_records_size_resize_and_channels(runs, kind, channels, color):
    run = _run(runs, kind)
    arrays, meta = io.read_weights(os.path.join(run, "weights.params"))
    assert meta["input_size"] == SIZE and meta["in_channels"] == channels
    assert meta["resize"] == {"shorter_side": SIZE, "center_crop": True}
    assert arrays["stem_conv_weight"].shape == (64, channels, 7, 7)
    manifest = _manifest(os.path.join(run, "export"))
    assert manifest["input"]["shape"] == [1, channels, SIZE, SIZE]
    assert manifest["image"]["size"] == [SIZE, SIZE] and manifest["image"]["color"] == color
    assert manifest["image"]["resize"]["shorter_side"] == SIZE
    with open(os.path.join(run, "log.json")) as f:
        log = json.load(f)
    assert log["data"]["image_shape"] == [SIZE, SIZE, channels]
    assert log["data"]["splits"] == {"train": 36 - HELD_OUT, "val": HELD_OUT}


def test_evaluate_scores_exactly_the_held_out_split(runs, cli):
    weights = os.path.join(runs["rgb"], "weights.params")
    with open(os.path.join(runs["rgb"], "log.json")) as f:
        log = json.load(f)
    proc = cli("evaluate", "resnet18", "--weights", weights, "--data", runs["data"],
               "--val-split", "25%", "--seed", "3", "--json")
    record = last_json(proc)
    assert record["split"] == "validation" and record["samples"] == HELD_OUT
    assert record["input_size"] == SIZE and record["shorter_side"] == SIZE
    assert record["accuracy"] == pytest.approx(log["val_accuracy"])
    text = cli("evaluate", "resnet18", "--weights", weights, "--data", runs["data"],
               "--val-split", "25%", "--seed", "3").stdout
    assert "validation split held out by --val-split 25% --seed 3" in text
    every = last_json(cli("evaluate", "resnet18", "--weights", weights, "--data", runs["data"],
                          "--json"))
    assert every["split"] == "all images" and every["samples"] == 36
    assert "--val-split" in every["note"]


def test_export_reads_classes_size_and_resize_from_the_weights(runs, cli):
    out = str(runs["root"] / "exported")
    assert cli("export", "resnet18", "--weights", os.path.join(runs["rgb"], "weights.params"),
               "--out", out).returncode == 0
    mine, runs_own = _manifest(out), _manifest(os.path.join(runs["rgb"], "export"))
    assert mine["classes"] == ["a", "b", "c"]
    for manifest in (mine, runs_own):  # the same export, files and digests included
        del manifest["created"]
    assert mine == runs_own


def _evaluated(monkeypatch, cli, *args):
    """The network, split and preprocessing ``evaluate`` ran (spied on), and its record."""
    seen = {}
    original = evaluation.evaluate

    def spy(net, split, preprocess, **kwargs):
        seen.update(net=net, split=split, preprocess=preprocess)
        return original(net, split, preprocess, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    seen["record"] = last_json(cli("evaluate", "resnet18", *args, "--json"))
    return seen


def _same_input(seen, export, files):
    """``predict``'s arrays for the files equal ``evaluate``'s, bit for bit, and so do the
    probabilities of the export and of evaluate's network on them."""
    exported = runtime.load_exported(export)
    pixels = exported.load_images(files)
    np.testing.assert_array_equal(pixels, seen["split"].images)
    x_eval = seen["preprocess"](mx.nd.array(seen["split"].images, dtype="uint8")).asnumpy()
    x_pred = exported.preprocess(mx.nd.array(pixels, dtype="uint8")).asnumpy()
    np.testing.assert_array_equal(x_pred, x_eval)
    predicted = exported.predict(files[:1], top_k=len(exported.classes))[0]["top_k"]
    logits = seen["net"](mx.nd.array(x_eval[:1])).asnumpy()[0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    for top in predicted:
        assert top["probability"] == pytest.approx(float(probs[top["index"]]), abs=1e-5)


@pytest.mark.parametrize("kind", ["rgb", "grey"])
def test_predict_feeds_the_pixels_evaluate_feeds(runs, cli, monkeypatch, kind):
    run = _run(runs, kind)
    seen = _evaluated(monkeypatch, cli, "--weights", os.path.join(run, "weights.params"),
                      "--data", runs["data"])
    files = [path for path, _ in data.image_files(runs["data"])[1]]  # evaluate's order
    _same_input(seen, os.path.join(run, "export"), files)


def test_a_recorded_resize_is_used_by_evaluate_export_and_predict(runs, cli, monkeypatch,
                                                                   tmp_path):
    """Weights that record another resize (as imported ImageNet weights record 256 for
    224) are evaluated and exported with it; here JPEG files, shorter side 40 for 32."""
    arrays, meta = io.load_arrays(os.path.join(runs["rgb"], "weights.params"))
    weights = str(tmp_path / "resized.params")
    io.save_arrays(weights, arrays, {**meta, "resize": {"shorter_side": 40}})
    folder = str(tmp_path / "jpegs")
    write_folder(folder, splits=(None,), classes=("a", "b", "c"), per_class=2, size=(44, 60),
                 ext=".jpg", seed=1)
    seen = _evaluated(monkeypatch, cli, "--weights", weights, "--data", folder)
    assert seen["record"]["shorter_side"] == 40 and seen["record"]["input_size"] == SIZE
    export = str(tmp_path / "export")
    assert cli("export", "resnet18", "--weights", weights, "--out", export).returncode == 0
    assert _manifest(export)["image"]["resize"]["shorter_side"] == 40
    _same_input(seen, export, [path for path, _ in data.image_files(folder)[1]])


def test_grey_exports_predict_grey_and_colour_files(runs, cli, tmp_path):
    import cv2

    run = _run(runs, "grey")
    grey = str(tmp_path / "grey.png")
    assert cv2.imwrite(grey, np.random.default_rng(0).integers(0, 256, (50, 40), np.uint8))
    colour = os.path.join(runs["data"], "b", "0.png")
    record = last_json(cli("predict", os.path.join(run, "export"), grey, colour, "--json"))
    assert [len(p["top_k"]) for p in record["predictions"]] == [3, 3]
    exported = runtime.load_exported(os.path.join(run, "export"))
    assert exported.load_images([grey, colour]).shape == (2, SIZE, SIZE, 1)


def test_a_grey_onnx_export_runs_on_onnxruntime(runs, cli, tmp_path):
    pytest.importorskip("onnxruntime")
    run = _run(runs, "grey")
    export = str(tmp_path / "onnx")
    assert cli("export", "resnet18", "--weights", os.path.join(run, "weights.params"),
               "--out", export, "--onnx").returncode == 0
    image = os.path.join(runs["data"], "c", "5.png")
    on = {engine: last_json(cli("predict", export, image, "--engine", engine, "--json"))
          for engine in ("mxnet", "onnxruntime")}
    for a, b in zip(*(r["predictions"][0]["top_k"] for r in on.values())):
        assert a["class"] == b["class"] and a["probability"] == pytest.approx(
            b["probability"], abs=1e-4)


@pytest.mark.parametrize("args, problem, fix", [
    (["train", "resnet18", "--size", "0"], "--size 0 is not an image size",
     "pass a whole number of pixels of at least 1"),
    (["train", "alexnet", "--size", "8"], "alexnet cannot take 8x8 images",
     "pass --size 63 or more"),
    (["train", "lenet5", "--size", "8"], "lenet5 cannot take 8x8 images",
     "pass --size 32 or leave --size out"),
    (["train", "resnet18", "--in-channels", "2"], "--in-channels 2",
     "pass --in-channels 1 or 3"),
    (["export", "resnet18", "--size", "0"], "--size 0 is not an image size",
     "leave --size out for the model's own (224)"),
    (["export", "resnet18", "--in-channels", "2"], "--in-channels 2",
     "pass --in-channels 1 or 3"),
    (["evaluate", "resnet18", "--size", "-1"], "--size -1 is not an image size",
     "pass a whole number of pixels"),
])
def test_bad_sizes_and_channels_are_one_line(runs, cli, tmp_path, args, problem, fix):
    command = args[0]
    where = {"train": ["--data", runs["data"], "--epochs", "1", "--out", str(tmp_path / "r")],
             "export": ["--out", str(tmp_path / "e")],
             "evaluate": ["--weights", os.path.join(runs["rgb"], "weights.params"),
                          "--data", runs["data"]]}[command]
    before = snapshot(tmp_path)
    assert_clean_error(cli(*args, *where), problem, fix)
    assert snapshot(tmp_path) == before


def test_a_resumed_run_keeps_its_size(runs, cli):
    assert_clean_error(cli("train", "resnet18", "--resume", "--out", runs["rgb"], "--size", "64"),
                       "trains on 32x32 images, not 64x64", "resume without --size")


def test_a_resize_the_user_did_not_ask_for_is_said(runs, cli, tmp_path):
    """Without --size, the 40x48 images go to resnet20_cifar's 32x32: the run says so and
    names --size; at --size 32 (asked for) it does not."""
    common = ["train", "resnet20_cifar", "--data", runs["data"], "--iterations", "1",
              "--batch-size", "8", "--val-split", "25%", "--schedule", "cosine",
              "--no-progress"]
    proc = cli(*common, "--out", tmp_path / "default")
    assert proc.returncode == 0, proc.stderr
    assert ("images resized to 32x32, resnet20_cifar's input size (shorter side, centre "
            "crop); pass --size N") in proc.stderr
    proc = cli(*common, "--out", tmp_path / "asked", "--size", "32")
    assert proc.returncode == 0, proc.stderr
    assert "images resized to" not in proc.stderr
