"""The evaluation batch fits the model, the input size and the free memory (issue 19,
item 4): derived where none is given, ``--eval-batch-size`` where one is, bad values
refused with one line."""
import numpy as np
import pytest

import gluonres
from gluonres.analysis import evaluation, footprint
from gluonres.data import ImageArrays
from gluonres.errors import GluonresError
from gluonres.models.init import he_initialize
from gluonres.train import loop

from helpers import assert_clean_error, snapshot, write_folder

MB = 2 ** 20


def budget_for(batch, per_image):
    """Available memory that leaves exactly ``batch`` images' activations to evaluation."""
    return int(batch * per_image / footprint.INFERENCE_MEMORY_FRACTION)


@pytest.fixture(scope="module")
def r20():
    net = gluonres.get_model("resnet20_cifar", classes=2)
    he_initialize(net, 0)
    net.hybridize(static_alloc=True, static_shape=True)  # as fit and evaluate run it
    return net


def test_activations_are_read_from_the_graph_and_grow_with_the_input(r20):
    at32 = footprint.activation_bytes(r20)  # the model's own size, 32
    assert at32 == footprint.activation_bytes(r20, 32, 3)
    # every map of a fully convolutional net has 4x the pixels at twice the size
    assert footprint.activation_bytes(r20, 64) == pytest.approx(4 * at32, rel=0.01)
    # ResNet-20 has 19 3x3 convolutions of 16-64 maps of 32x32..8x8: about 2.7 MB
    assert 2 * MB < at32 < 4 * MB


def test_derived_batch_is_a_power_of_two_from_1_to_256():
    net = gluonres.get_model("resnet20_cifar")
    per_image = footprint.activation_bytes(net)
    assert footprint.inference_batch(net, available=10 ** 15) == 256
    assert footprint.inference_batch(net, available=1) == 1
    assert footprint.inference_batch(net, available=budget_for(40, per_image)) == 32
    assert footprint.inference_batch(net, available=budget_for(64, per_image)) == 64
    assert footprint.inference_batch(net, available=budget_for(63.9, per_image)) == 32


def test_derived_batch_is_smaller_for_bigger_inputs_and_models():
    available = 2 * 2 ** 30
    small, big = gluonres.get_model("resnet20_cifar"), gluonres.get_model("resnet110_cifar")
    by_size = [footprint.inference_batch(small, s, available=available) for s in (32, 64, 128,
                                                                                  256)]
    assert by_size == sorted(by_size, reverse=True) and by_size[0] > by_size[-1] >= 1
    assert (footprint.inference_batch(big, 64, available=available)
            < footprint.inference_batch(small, 64, available=available))
    # the case: EfficientNet-B0 at 224 no longer evaluates 256 images at a time
    # on a 24 GB machine (256 x 109 MB of activations would be 27 GB)
    b0 = footprint.inference_batch(gluonres.get_model("efficientnet_b0"), 224,
                                   available=24 * 2 ** 30)
    assert 1 <= b0 <= 64


def test_evaluation_uses_the_derived_batch_when_none_is_given(r20, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    split = ImageArrays(images, np.arange(40) % 2, ["a", "b"])
    per_image = footprint.activation_bytes(r20, 32, 3)
    monkeypatch.setattr(footprint, "available_memory", lambda: budget_for(8, per_image))
    seen = []

    def preprocess(batch):
        seen.append(batch.shape[0])
        return batch.astype("float32").transpose((0, 3, 1, 2)) / 255

    assert evaluation.eval_batch_size(r20, split) == 8
    result = evaluation.evaluate(r20, split, preprocess, progress=False)
    assert result["batch_size"] == 8 and seen == [8] * 5
    seen.clear()
    loop.error_pct(r20, split, preprocess)  # training's evaluation, also derived
    assert seen == [8] * 5
    seen.clear()
    assert evaluation.evaluate(r20, split, preprocess, batch_size=16,
                               progress=False)["batch_size"] == 16
    assert seen == [16, 16, 8]
    with pytest.raises(GluonresError, match="batch size 0 is not a whole number"):
        evaluation.predict_dataset(r20, split, preprocess, batch_size=0)


def test_a_training_batch_that_may_not_fit_is_said_with_the_fix():
    net = gluonres.get_model("resnet20_cifar")
    per_step = footprint.TRAINING_BYTES_PER_ACTIVATION_BYTE * footprint.activation_bytes(net)
    assert footprint.training_memory_warning(net, 128, available=int(129 * per_step)) is None
    warning = footprint.training_memory_warning(net, 128, available=int(40 * per_step))
    assert "batches of 128 may need up to" in warning
    assert "pass --batch-size 32 or less" in warning


def spy_on_evaluation(monkeypatch):
    """The batch sizes training's per-epoch evaluation is called with."""
    calls, real = [], loop.split_metrics

    def spy(net, split, preprocess, loss_fn=None, ctx=None, batch_size=None):
        calls.append(batch_size)
        return real(net, split, preprocess, loss_fn, ctx, batch_size)
    monkeypatch.setattr(loop, "split_metrics", spy)
    return calls


def train_args(tmp_path, *extra):
    write_folder(str(tmp_path / "data"), per_class=4)
    return ["train", "resnet20_cifar", "--data", str(tmp_path / "data"), "--epochs", "1",
            "--batch-size", "4", "--out", str(tmp_path / "run"), *extra]


def test_eval_batch_size_reaches_training_evaluation(tmp_path, cli, monkeypatch):
    calls = spy_on_evaluation(monkeypatch)
    proc = cli(*train_args(tmp_path, "--eval-batch-size", "3"))
    assert proc.returncode == 0, proc.stderr
    assert calls == [3]  # one epoch, one test split
    assert "evaluating in batches" not in proc.stderr  # given, not derived


def test_training_derives_and_says_its_eval_batch(tmp_path, cli, monkeypatch):
    calls = spy_on_evaluation(monkeypatch)
    per_image = footprint.activation_bytes(gluonres.get_model("resnet20_cifar"))
    # room for 8 images' activations: evaluation gets a quarter of it, 2 images; a
    # training step of 4 may need 4 x 2.6 of them
    monkeypatch.setattr(footprint, "available_memory", lambda: 8 * per_image)
    proc = cli(*train_args(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert calls == [2]
    assert "evaluating in batches of 2" in proc.stderr
    assert "gluonres: warning: a training step in batches of 4 may need" in proc.stderr
    assert "pass --batch-size 2 or less" in proc.stderr


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_eval_batch_size_is_one_line_and_exit_2(tmp_path, cli, value):
    args = train_args(tmp_path, "--eval-batch-size", value)
    before = snapshot(tmp_path)
    assert_clean_error(cli(*args), f"eval batch size {int(value)} is not a whole number of "
                       "images", "pass e.g. --eval-batch-size 32")
    assert snapshot(tmp_path) == before  # refused before the data is read or a run started


def test_evaluate_batch_size_stays_checked(tmp_path, cli):
    assert_clean_error(cli("evaluate", "resnet20_cifar", "--weights", str(tmp_path / "w"),
                           "--data", "digits", "--batch-size", "0"),
                       "batch size 0 is not a whole number of images",
                       "pass e.g. --batch-size 256")
