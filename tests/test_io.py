"""Weights files: checked before anything changes, round trip with metadata."""
import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import io
from gluonres.errors import WeightsMismatchError


def test_load_weights_checks_before_changing_anything(tmp_path):
    a = gluonres.get_model("resnet20_cifar", classes=100)
    a.initialize()
    path = str(tmp_path / "a.params")
    io.save_weights(a, path, meta={"model": "resnet20_cifar"})
    b = gluonres.get_model("resnet20_cifar")
    b.initialize()
    before = b.collect_params()["stem_conv_weight"].data().asnumpy()
    with pytest.raises(WeightsMismatchError, match="head_dense_weight.*same classes"):
        io.load_weights(b, path)
    np.testing.assert_array_equal(b.collect_params()["stem_conv_weight"].data().asnumpy(),
                                  before)


def test_weights_round_trip_with_metadata(tmp_path):
    a = gluonres.get_model("resnet20_cifar_v2")
    a.initialize(mx.init.Xavier())
    path = str(tmp_path / "a.params")
    io.save_weights(a, path, meta={"model": "resnet20_cifar_v2", "classes": ["x"] * 10})
    b = gluonres.get_model("resnet20_cifar_v2")
    meta = io.load_weights(b, path)
    assert meta["classes"] == ["x"] * 10
    x = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    np.testing.assert_array_equal(a(x).asnumpy(), b(x).asnumpy())
