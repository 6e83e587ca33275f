"""Fine-tuning: weights to start from (file, shipped, re-initialised head), frozen parts,
and the normalisation that travels with the weights."""
import os

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import io
from gluonres import train as training
from gluonres.data.preprocess import Preprocess
from gluonres.errors import GluonresError
from gluonres.train.finetune import freeze, freeze_parts, init_weights

from helpers import fast, small


def _values(net):
    return {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()}


@pytest.mark.parametrize("upto", ["stem", "stage2"])
def test_frozen_weights_are_bit_identical_after_training(digits, upto):
    net = gluonres.get_model("resnet20_cifar")
    frozen = set(freeze(net, upto))
    start = {}  # the values fit starts from (it initialises the net)

    class Keep(training.Callback):
        def on_train_begin(self, state):
            start.update(_values(state.net))

    training.fit(net, small(digits, 128), fast(epochs=2), progress=False, callbacks=[Keep()])
    end = _values(net)
    names = [n for n, _ in freeze_parts(net)]
    assert names[:4] == ["stem", "stage1", "stage2", "stage3"]
    # BatchNorm statistics (aux states) are frozen too
    assert any(n.endswith("running_mean") for n in frozen)
    assert all(np.array_equal(start[n], end[n]) for n in frozen)
    trained = [n for n in end if n not in frozen and n.endswith("_weight")]
    assert trained and all(not np.array_equal(start[n], end[n]) for n in trained)


def test_freeze_names_the_parts_it_has():
    net = gluonres.get_model("resnet20_cifar")
    with pytest.raises(GluonresError, match="stem, stage1, stage2, stage3, features"):
        freeze(net, "stage4")


def test_init_weights_reinitialises_the_head_for_other_classes(tmp_path, digits):
    src = gluonres.get_model("resnet20_cifar")
    src.initialize(mx.init.Xavier())
    src(mx.nd.zeros((1, 3, 32, 32)))
    pre = Preprocess(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    path = str(tmp_path / "w.params")
    io.save_weights(src, path, {"model": "resnet20_cifar", "classes": [str(i) for i in range(10)],
                                "preprocess": pre.to_dict()})
    made = init_weights("resnet20_cifar", path, classes=2)
    assert "re-initialised for 2 classes" in made.note
    assert made.preprocess.mean == pre.mean and made.preprocess.std == pre.std
    theirs = _values(src)
    params = made.net.collect_params()
    for name, p in params.items():
        if name.startswith("head_dense"):
            assert p.shape[0] == 2
        else:
            np.testing.assert_array_equal(p.data().asnumpy(), theirs[name])
    # same classes: nothing re-initialised, nothing said
    assert init_weights("resnet20_cifar", path, classes=10).note is None


def test_fit_keeps_the_given_normalisation(digits, tmp_path):
    net = gluonres.get_model("resnet20_cifar")
    pre = Preprocess(mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    training.fit(net, small(digits, 64), fast(epochs=1), out_dir=str(tmp_path / "run"),
                 progress=False, preprocess=pre)
    _, meta = io.read_weights(str(tmp_path / "run" / "weights.params"))
    assert meta["preprocess"]["mean"] == list(pre.mean)
    assert meta["preprocess"]["std"] == list(pre.std)


def test_shipped_weights_start_a_fine_tune():
    made = init_weights("resnet20_cifar", "pretrained", classes=2)
    assert "re-initialised for 2 classes" in made.note
    assert made.preprocess.mean_image.shape == (3, 32, 32)
    assert gluonres.model_info(made.net).classes == 2


def test_builder_options_travel_with_the_weights(digits, tmp_path):
    """A run of resnet20_cifar with option-B shortcuts records them: the weights rebuild
    without --shortcut (option A, the default, has no projection to load into)."""
    net = gluonres.get_model("resnet20_cifar", shortcut="B")
    training.fit(net, small(digits, 64), fast(epochs=1), out_dir=str(tmp_path / "run"),
                 progress=False)
    weights = str(tmp_path / "run" / "weights.params")
    assert io.read_weights(weights)[1]["model_options"] == {"shortcut": "B"}
    rebuilt, _ = io.model_for_weights("resnet20_cifar", weights)
    assert gluonres.model_info(rebuilt).options == {"shortcut": "B"}


def test_fine_tune_from_a_local_gluoncv_file(tmp_path):
    """--init-weights gluoncv:NAME=FILE, offline: the converted network keeps v1b's stride
    placement through fine-tuning, and the run's weights record it."""
    from gluoncv.model_zoo import get_model as gluoncv_model

    from helpers import write_folder

    src = gluoncv_model("resnet18_v1b", pretrained=False)
    src.initialize(mx.init.Xavier())
    src(mx.nd.zeros((1, 3, 224, 224)))
    path = str(tmp_path / "resnet18_v1b.params")
    src.save_parameters(path)
    made = init_weights("resnet18", f"gluoncv:resnet18_v1b={path}", classes=2, size=32)
    assert "1000-class classifier" in made.note
    assert gluonres.model_info(made.net).options == {"stride_on": "3x3"}
    assert gluonres.model_info(made.net).input_size == 32
    write_folder(str(tmp_path / "pets"), splits=(None,), classes=("cat", "dog"), per_class=8,
                 size=(36, 40))
    run = training.train_model("resnet18", str(tmp_path / "pets"), str(tmp_path / "run"),
                               size=32, init_weights=f"gluoncv:resnet18_v1b={path}",
                               freeze="stage3", epochs=1, batch_size=8, schedule="cosine",
                               progress=False)
    _, meta = io.read_weights(os.path.join(run.out_dir, "weights.params"))
    assert meta["model_options"] == {"stride_on": "3x3"} and meta["input_size"] == 32
    assert run.history["info"]["init_weights"].startswith("gluoncv:resnet18_v1b=")


def test_init_weights_brings_its_recorded_size_and_channels(tmp_path):
    """Grey 32-pixel weights start a run on a folder without --size or --in-channels."""
    from helpers import write_folder

    src = gluonres.get_model("resnet18", in_channels=1, classes=2)
    src.initialize(mx.init.Xavier())
    src(mx.nd.zeros((1, 1, 32, 32)))
    path = str(tmp_path / "grey.params")
    io.save_weights(src, path, {"model": "resnet18", "classes": ["a", "b"], "in_channels": 1,
                                "input_size": 32,
                                "preprocess": Preprocess(mean=(0.5,), std=(0.25,)).to_dict()})
    write_folder(str(tmp_path / "data"), splits=(None,), classes=("a", "b"), per_class=8,
                 size=(36, 40))
    run = training.train_model("resnet18", str(tmp_path / "data"), str(tmp_path / "run"),
                               init_weights=path, epochs=1, batch_size=8, schedule="cosine",
                               progress=False)
    _, meta = io.read_weights(os.path.join(run.out_dir, "weights.params"))
    assert meta["in_channels"] == 1 and meta["input_size"] == 32
    assert meta["preprocess"]["mean"] == [0.5]  # the weights' normalisation, kept


def test_a_resumed_run_keeps_its_freeze(tmp_path):
    class StopAfterOne(training.Callback):
        def on_batch_end(self, state):
            if state.epoch == 1:  # as Ctrl-C in epoch 2, after the first checkpoint
                raise KeyboardInterrupt

    out = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        training.train_model("resnet20_cifar", "digits", out, freeze="stage1", epochs=2,
                             batch_size=128, progress=False, callbacks=[StopAfterOne()])
    before, _ = io.read_weights(os.path.join(out, training.CHECKPOINT))
    training.train_model("resnet20_cifar", out_dir=out, resume=True, progress=False)
    after, _ = io.read_weights(os.path.join(out, "weights.params"))
    stem_and_stage1 = [n for n in before if n.startswith(("stem_", "stage1_"))]
    assert stem_and_stage1
    for name in stem_and_stage1:
        np.testing.assert_array_equal(before[name].asnumpy(), after[name].asnumpy())
    assert not np.array_equal(before["stage3_unit3_conv2_weight"].asnumpy(),
                              after["stage3_unit3_conv2_weight"].asnumpy())
    with pytest.raises(GluonresError, match="started with --freeze stage1"):
        training.train_model("resnet20_cifar", out_dir=out, resume=True, freeze="stage2",
                             progress=False)
