"""Fine-tuning: weights to start from (file, shipped, re-initialised head), frozen parts,
and the normalisation that travels with the weights."""
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
