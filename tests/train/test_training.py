"""The recipe (schedule, warm-up), fit, checkpoints and resume, divergence, callbacks."""
import dataclasses
import hashlib
import json
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import io
from gluonres import train as training
from gluonres.data.preprocess import Preprocess
from gluonres.deploy import ExportCallback
from gluonres.errors import GluonresError, TrainingDivergedError, WeightsMismatchError
from gluonres.models.cifar import cifar_resnet
from gluonres.models.init import he_initialize
from gluonres.train.config import Schedule, TrainConfig
from gluonres.train.loop import split_metrics
from gluonres.train.step import SmoothedCrossEntropy, loss_for, train_step

from helpers import Poison, fast, resnet8, small, write_folder


class LearningRates(training.Callback):
    def __init__(self):
        self.lrs = []

    def on_batch_end(self, state):
        self.lrs.append(state.trainer.learning_rate)


# ---------------------------------------------------------------------------- schedule
def test_paper_schedule_milestones():
    s = Schedule(TrainConfig(), 64000)
    assert s.milestones == [32000, 48000]
    lrs = {it: s(it) for it in (0, 31999, 32000, 47999, 48000, 63999)}  # update it + 1
    assert lrs == pytest.approx({0: 0.1, 31999: 0.1, 32000: 0.01, 47999: 0.01, 48000: 0.001,
                                 63999: 0.001})


def test_epochs_compress_the_schedule_proportionally():
    config = TrainConfig(epochs=30)
    total = config.total_iterations(390)
    assert total == 11700
    assert Schedule(config, total).milestones == [5850, 8775]
    cosine = Schedule(TrainConfig(epochs=30, schedule="cosine"), total)
    assert cosine(0) == pytest.approx(0.1, rel=1e-6) and cosine(total // 2) == pytest.approx(
        0.05, rel=1e-3) and cosine(total - 1) == pytest.approx(0.0, abs=1e-8)


def test_error_warmup_returns_to_the_base_rate():
    s = Schedule(TrainConfig(warmup="error"), 64000)
    it = 0
    for err in [0.9] * 30 + [0.75] * 5:  # still high: the window mean stays >= 80%
        assert s(it) == 0.01
        s.observe(it, err)
        it += 1
    assert not s.warmup_done
    for err in [0.7] * 10:
        s.observe(it, err)
        it += 1
    # the window mean first falls below 0.8 at the second 0.7: update 37
    assert s.warmup_done and s.warmup_end == 37
    assert s(it) == pytest.approx(0.1)
    s.observe(it, 0.95)  # once over, a bad batch does not bring the warm-up back
    assert s(it + 1) == pytest.approx(0.1) and s(40000) == pytest.approx(0.01)


def test_linear_warmup_then_linear_decay_to_zero():
    s = Schedule(TrainConfig(schedule="linear", warmup="linear", warmup_lr=0.01,
                             warmup_fraction=0.1), 1000)
    assert s.warmup_iterations == 100
    assert s(0) < s(50) < s(99)  # rising
    assert [s(0), s(100), s(550), s(999)] == pytest.approx([0.0109, 0.1, 0.05, 0.0001],
                                                            abs=1e-4)


def test_a_warmup_fraction_scales_with_the_run_and_a_count_does_not():
    assert Schedule(TrainConfig(warmup="linear", warmup_fraction=0.1), 100).warmup_iterations == 10
    with pytest.raises(GluonresError, match="shorter than its 400-iteration warm-up"):
        Schedule(TrainConfig(warmup="linear"), 100)


def test_named_recipes():
    paper, fast_recipe = training.recipe("resnet20_cifar"), training.recipe("resnet20_cifar",
                                                                            "fast")
    assert paper == TrainConfig()  # the paper's recipe is the default settings
    assert (fast_recipe.epochs, fast_recipe.optimizer, fast_recipe.schedule,
            fast_recipe.label_smoothing) == (20, "nag", "linear", 0.1)
    # the fast recipe brings its own warm-up, whatever the model's paper warm-up
    assert training.recipe("resnet110_cifar", "fast").warmup == "linear"
    assert training.recipe("resnet20_cifar", "fast", epochs=5).epochs == 5
    with pytest.raises(GluonresError, match="unknown recipe 'quick'; pass one of: paper, fast"):
        training.recipe("resnet20_cifar", "quick")


def test_smoothed_cross_entropy_mixes_the_uniform_target():
    logits = mx.nd.random.uniform(-3, 3, (6, 10))
    labels = mx.nd.array([0, 1, 2, 3, 9, 5])
    logp = np.log(np.exp(logits.asnumpy()) / np.exp(logits.asnumpy()).sum(1, keepdims=True))
    target = np.full((6, 10), 0.1 / 10)
    target[np.arange(6), labels.asnumpy().astype(int)] += 0.9
    np.testing.assert_allclose(SmoothedCrossEntropy(0.1)(logits, labels).asnumpy(),
                               -(target * logp).sum(1), rtol=1e-5)
    plain = mx.gluon.loss.SoftmaxCrossEntropyLoss()(logits, labels).asnumpy()
    np.testing.assert_allclose(loss_for(TrainConfig())(logits, labels).asnumpy(), plain,
                               rtol=1e-6)
    assert isinstance(loss_for(TrainConfig(label_smoothing=0.1)), SmoothedCrossEntropy)


@pytest.mark.parametrize("name,cls", [("sgd", "SGD"), ("nag", "NAG"), ("adam", "Adam")])
def test_the_configured_optimizer_trains(name, cls):
    net = resnet8()
    he_initialize(net, 0)
    config = fast(optimizer=name, momentum=0.8, lr=0.001 if name == "adam" else 0.05)
    step, trainer = training.prepare(net, config)
    assert type(trainer._optimizer).__name__ == cls
    if name != "adam":  # Adam has no momentum setting
        assert trainer._optimizer.momentum == 0.8
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.uniform(-1, 1, (16, 3, 32, 32)))
    y = mx.nd.array(rng.randint(0, 10, 16))
    losses = [float(train_step(step, trainer, loss_for(config), x, y)[0].asscalar())
              for _ in range(8)]
    assert losses[-1] < 0.8 * losses[0]  # fits one batch


def test_fixed_warmup_is_400_updates():
    s = Schedule(TrainConfig(warmup="fixed"), 64000)
    assert [s(i) for i in (0, 399, 400)] == pytest.approx([0.01, 0.01, 0.1])


def test_recipe_picks_the_papers_warmup():
    assert training.recipe("resnet110_cifar").warmup == "error"
    assert training.recipe("resnet1202_cifar").warmup == "error"
    assert training.recipe("resnet164_cifar_v2").warmup == "fixed"
    assert training.recipe("resnet56_cifar").warmup == "none"
    assert training.recipe("resnet56_cifar", lr=0.05).lr == 0.05


@pytest.mark.parametrize("kw,message", [({"schedule": "poly"}, "schedule"),
                                        ({"milestones": (0.75, 0.5)}, "milestones"),
                                        ({"warmup": "error", "lr": 0.001}, "warmup_lr"),
                                        ({"optimizer": "rmsprop"}, "optimizer"),
                                        ({"label_smoothing": 1.0}, "label_smoothing"),
                                        ({"warmup_fraction": 1.5}, "warmup_fraction")])
def test_bad_settings_are_refused(kw, message):
    with pytest.raises(GluonresError, match=message):
        TrainConfig(**kw)


def test_config_round_trips_through_json():
    config = TrainConfig(epochs=3, schedule="cosine", milestones=(0.3, 0.6))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(GluonresError, match="unknown training settings"):
        TrainConfig.from_dict({"learning_rate": 0.1})


# ---------------------------------------------------------------------------- fit
@pytest.mark.slow
def test_error_warmup_in_a_real_run(digits):
    """The trainer's rate is 0.01 first and really returns to 0.1 once error < 80%."""
    rates = LearningRates()
    history = training.fit(resnet8(), small(digits, 512), fast(warmup="error", epochs=3),
                           progress=False, callbacks=[rates])
    end = history["warmup_end_iteration"]
    assert 10 <= end < len(rates.lrs)
    assert rates.lrs[:end] == [0.01] * end
    assert rates.lrs[end] == pytest.approx(0.1)
    assert history["epochs"][-1]["train_error_pct"] < 80


def test_fit_writes_the_run_folder(digits, tmp_path):
    out = str(tmp_path / "run")
    history = training.fit(resnet8(), small(digits, val=64), fast(), out_dir=out,
                           progress=False, info={"command": "test"},
                           callbacks=[ExportCallback()])
    assert sorted(os.listdir(out)) == ["best.params", "checkpoint.json", "checkpoint.params",
                                       "checkpoint.prev.params", "curve.png", "export",
                                       "log.csv", "log.json", "weights.params"]
    records = history["epochs"]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["iteration"] == 12
    for key in ("train_loss", "train_error_pct", "val_error_pct", "test_error_pct", "lr",
                "seconds", "img_s", "val_loss", "test_loss"):
        assert all(np.isfinite(r[key]) for r in records), key
    best = min(records, key=lambda r: r["val_error_pct"])
    assert history["selected_epoch"] == best["epoch"]
    assert history["test_accuracy"] == pytest.approx(1 - best["test_error_pct"] / 100)
    assert history["val_accuracy"] == pytest.approx(1 - best["val_error_pct"] / 100)
    with open(os.path.join(out, "log.json")) as f:
        assert json.load(f)["files"]["weights"] == os.path.join(out, "weights.params")
    with open(os.path.join(out, "log.csv")) as f:
        header = f.readline().strip().split(",")
    assert header[:5] == ["epoch", "iteration", "lr", "train_loss", "train_error_pct"]
    assert {"val_error_pct", "val_loss", "test_error_pct", "test_loss"} <= set(header)
    # curve.png: the error panel and, beside it, the loss panel
    assert cv2.imread(os.path.join(out, "curve.png")).shape[:2] == (450, 1200)
    # the final weights are the best epoch's, and carry what evaluate needs
    final, meta = io.read_weights(os.path.join(out, "weights.params"))
    kept = io.read_weights(os.path.join(out, "best.params"))[0]
    for name in final:
        np.testing.assert_array_equal(final[name].asnumpy(), kept[name].asnumpy())
    assert meta["model"] == "resnet8_cifar" and meta["classes"] == digits.classes
    assert len(meta["preprocess"]["mean_image"]) == 3
    # the exported graph computes what the trained network computes
    net = resnet8()
    io.load_weights(net, os.path.join(out, "weights.params"))
    exported = mx.gluon.SymbolBlock.imports(history["files"]["export_symbol"], ["data"],
                                            history["files"]["export_params"])
    x = mx.nd.random.uniform(shape=(2, 3, 32, 32))
    np.testing.assert_allclose(exported(x).asnumpy(), net(x).asnumpy(), rtol=1e-4, atol=1e-5)
    # ... and is what `gluonres export` writes for those weights: preprocessing, classes
    with open(os.path.join(out, "export", "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["preprocess"]["mean_image"] == "mean.npy"
    assert manifest["classes"] == digits.classes
    assert manifest["source"]["weights"] == os.path.abspath(os.path.join(out, "weights.params"))


FAST_SETTINGS = {k: v for k, v in training.RECIPES["fast"].items() if k != "epochs"}


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{"schedule": "cosine"}, FAST_SETTINGS],
                         ids=["paper-cosine", "fast-recipe"])
def test_resume_continues_at_the_same_step_lr_and_weights(digits, tmp_path, settings):
    d, config = small(digits), fast(epochs=3, **settings)
    straight_lrs = LearningRates()
    straight = training.fit(resnet8(), d, config, out_dir=str(tmp_path / "a"), progress=False,
                            callbacks=[straight_lrs])

    class Interrupt(training.Callback):
        def on_batch_end(self, state):
            if state.epoch == 1 and state.iteration == 10:  # mid epoch 2, after checkpoint 1
                raise KeyboardInterrupt

    out = str(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        training.fit(resnet8(), d, config, out_dir=out, progress=False, callbacks=[Interrupt()])
    assert training.checkpoint_meta(out)["state"]["iteration"] == 8
    resumed_lrs = LearningRates()
    resumed = training.fit(resnet8(), d, config, out_dir=out, resume=True, progress=False,
                           callbacks=[resumed_lrs])
    assert resumed_lrs.lrs == straight_lrs.lrs[8:]
    assert [r["iteration"] for r in resumed["epochs"]] == [8, 16, 24]
    # on CPU, with the same threads, the resumed run is bit-identical to the straight one
    for a, b in zip(straight["epochs"], resumed["epochs"]):
        assert (a["train_loss"], a["test_error_pct"]) == (b["train_loss"], b["test_error_pct"])
    w_a = io.read_weights(str(tmp_path / "a" / "weights.params"))[0]
    w_b = io.read_weights(os.path.join(out, "weights.params"))[0]
    for name in w_a:
        np.testing.assert_array_equal(w_a[name].asnumpy(), w_b[name].asnumpy())
    assert [r["at_epoch"] for r in resumed["resumed"]] == [1]


def test_momentum_survives_a_checkpoint(digits, tmp_path):
    out = str(tmp_path / "run")
    net = resnet8()
    training.fit(net, small(digits), fast(epochs=1), out_dir=out, progress=False)
    arrays, _ = io.load_arrays(os.path.join(out, "checkpoint.params"))
    saved = {k: v for k, v in arrays.items() if k.startswith(io.OPTIMIZER_PREFIX)}
    assert len(saved) == len([p for p in net.collect_params().values()
                              if p.grad_req != "null"])
    assert any(float(v.abs().sum().asscalar()) > 0 for v in saved.values())
    _, trainer = training.prepare(net, fast())
    training.load_optimizer_states(trainer, arrays, "checkpoint")
    again = training.optimizer_states(trainer)
    for key, value in saved.items():
        np.testing.assert_array_equal(again[key].asnumpy(), value.asnumpy())


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_resume_refuses_another_model_settings_or_fresh_start(digits, tmp_path):
    out = str(tmp_path / "run")
    d = small(digits)
    training.fit(resnet8(), d, fast(epochs=1), out_dir=out, progress=False)
    ckpt = os.path.join(out, "checkpoint.params")
    before = _digest(ckpt)
    other = gluonres.get_model("resnet20_cifar")
    with pytest.raises(WeightsMismatchError, match="checkpoint of resnet8_cifar, not "
                                                   "resnet20_cifar"):
        training.fit(other, d, fast(epochs=1), out_dir=out, resume=True, progress=False)
    with pytest.raises(GluonresError, match="trained with lr=0.1, not 0.05"):
        training.fit(resnet8(), d, fast(epochs=1, lr=0.05), out_dir=out, resume=True,
                     progress=False)
    with pytest.raises(GluonresError, match="already holds a run.*--resume"):
        training.fit(resnet8(), d, fast(epochs=1), out_dir=out, progress=False)
    with pytest.raises(GluonresError, match="data with splits"):
        training.fit(resnet8(), small(digits, 288), fast(epochs=1), out_dir=out, resume=True,
                     progress=False)
    assert _digest(ckpt) == before


@pytest.mark.parametrize("param, message", [
    # NaN in the classifier reaches the loss at the very next iteration
    ("head_dense_weight", "the loss became nan at iteration 11 \\(epoch 2\\)"),
    # oneDNN's ReLU maps NaN to 0, so a NaN stem never shows in the loss; the end-of-epoch
    # weight check is what stops it
    ("stem_conv_weight", "the weights became NaN/inf by the end of iteration 16 \\(epoch 2\\)"),
])
def test_nan_stops_and_keeps_the_last_good_checkpoint(digits, tmp_path, param, message):
    out = str(tmp_path / "run")
    d = small(digits)
    with pytest.raises(TrainingDivergedError, match=message + ".*checkpoint.*epoch 1"):
        training.fit(resnet8(), d, fast(), out_dir=out, progress=False,
                     callbacks=[Poison(param)])
    ckpt = os.path.join(out, "checkpoint.params")
    meta = training.checkpoint_meta(out)
    assert meta["state"]["epoch"] == 1
    arrays = io.read_weights(ckpt)[0]
    assert all(np.isfinite(a.asnumpy()).all() for a in arrays.values())
    assert not os.path.exists(os.path.join(out, "weights.params"))


def test_callbacks_add_to_the_epoch_record(digits, tmp_path):
    class GradNorm(training.Callback):
        def on_batch_end(self, state):
            self.last = float(state.net.collect_params()["stem_conv_weight"].grad().norm()
                              .asscalar())

        def on_epoch_end(self, state, record):
            record["stem_grad_norm"] = self.last

    out = str(tmp_path / "run")
    history = training.fit(resnet8(), small(digits), fast(), out_dir=out, progress=False,
                           callbacks=[GradNorm()])
    assert all(r["stem_grad_norm"] > 0 for r in history["epochs"])
    with open(os.path.join(out, "log.csv")) as f:
        assert "stem_grad_norm" in f.readline()


def test_fit_is_deterministic_with_a_seed(digits):
    a = training.fit(resnet8(), small(digits), fast(epochs=1), progress=False)
    b = training.fit(resnet8(), small(digits), fast(epochs=1), progress=False)
    assert a["epochs"][0]["train_loss"] == b["epochs"][0]["train_loss"]
    assert a["epochs"][0]["test_error_pct"] == b["epochs"][0]["test_error_pct"]


def test_batch_larger_than_the_data(digits):
    with pytest.raises(GluonresError, match="fewer than one batch of 512"):
        training.fit(resnet8(), small(digits, 300), fast(batch_size=512), progress=False)


def test_throughput_measures_both_inputs_side_by_side(digits):
    from gluonres.measure.timing import train_throughput
    result = train_throughput(resnet8(), small(digits), fast(), iterations=2, rounds=2,
                              progress=False)
    assert len(result["real_img_s_blocks"]) == len(result["synthetic_img_s_blocks"]) == 2
    assert result["real_img_s"] > 0 and result["synthetic_img_s"] > 0
    assert result["ratio"] == pytest.approx(result["real_img_s"] / result["synthetic_img_s"])
    assert result["machine"]["cores"] >= 1


def test_recipes_are_timed_side_by_side_with_their_own_optimizer():
    from gluonres.measure.timing import recipe_throughput
    result = recipe_throughput("resnet20_cifar", "digits", iterations=1, rounds=2,
                               progress=False)
    paper, fast_recipe = result["recipes"]["paper"], result["recipes"]["fast"]
    assert len(paper["img_s_blocks"]) == len(fast_recipe["img_s_blocks"]) == 2
    assert paper["img_s"] > 0 and fast_recipe["img_s"] > 0
    assert "nag" in fast_recipe["settings"] and "nag" not in paper["settings"]


def test_the_held_out_loss_is_the_training_loss_on_the_held_out_images(digits):
    net = resnet8()
    he_initialize(net, 0)
    net(mx.nd.zeros((1, 3, 32, 32)))
    d = small(digits)
    preprocess = Preprocess.fit(d.train.images, "pixel")
    smoothed = loss_for(TrainConfig(label_smoothing=0.1))
    error, loss = split_metrics(net, d.test, preprocess, smoothed)
    logits = net(preprocess(mx.nd.array(d.test.images, dtype="uint8"))).asnumpy()
    labels = d.test.labels
    assert error == pytest.approx(100 * (logits.argmax(1) != labels).mean())
    expected = smoothed(mx.nd.array(logits), mx.nd.array(labels)).mean().asscalar()
    assert loss == pytest.approx(float(expected), rel=1e-5)
    assert split_metrics(net, d.test, preprocess)[1] is None


def test_outputs_must_match_the_classes(digits):
    net = cifar_resnet(8, classes=5)
    net.model_name = "resnet8_cifar"
    with pytest.raises(GluonresError, match="5 outputs but 'digits' has 10 classes.*--classes 10"):
        training.fit(net, small(digits), fast(), progress=False)


def test_the_paper_length_is_kept_for_cifar_sized_data_and_replaced_for_small_folders():
    from gluonres.train.config import OTHER_DATA_EPOCHS, default_length
    paper = training.recipe("resnet20_cifar")
    assert default_length(paper, 50000) == (paper, None)  # 164 epochs: the paper's
    small_folder, said = default_length(paper, 160)
    assert small_folder.epochs == OTHER_DATA_EPOCHS == 30
    assert "training 30 epochs" in said
    assert "64000 epochs of these 160" in said and "--epochs N" in said
    chosen = dataclasses.replace(paper, epochs=500)
    assert default_length(chosen, 160) == (chosen, None)  # the user's length stays


@pytest.mark.slow
@pytest.mark.parametrize("val_split,warned", [(None, True), (0.25, False)])
def test_a_small_folder_trains_a_sane_length_and_says_when_nothing_is_held_out(
        tmp_path, capfd, val_split, warned):
    write_folder(str(tmp_path / "f"), splits=("",), per_class=50)  # 100 images, one split
    batch = 100 if val_split is None else 75  # one iteration per epoch
    run = training.train_model("resnet20_cifar", str(tmp_path / "f"), str(tmp_path / "run"),
                               val_split=val_split, progress=False, batch_size=batch)
    err = capfd.readouterr().err
    assert ("no image is held out" in err and "--val-split 20%" in err) == warned
    assert "training 30 epochs" in err and "64000 epochs of these" in err
    assert len(run.history["epochs"]) == 30  # not 64,000
