"""Weights files: checked before anything changes, round trip with metadata."""
import os

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import io
from gluonres.errors import CorruptFileError, GluonresError, WeightsMismatchError
from gluonres.models import model_info


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


def _npz_declaring(path, shape):
    """A small .npz whose one array declares ``shape`` (zeros compress to almost nothing)."""
    np.savez_compressed(path, **{"conv1.weight": np.zeros(shape, "float32")})
    return str(path)


def test_a_reference_npz_of_other_shapes_is_refused_from_its_headers(tmp_path, monkeypatch):
    """Issue 20, item 12: the shapes are checked against the model before any array is
    decompressed (the file would expand to 64 MiB here)."""
    path = _npz_declaring(tmp_path / "w.npz", (4096, 4096))
    net = gluonres.get_model("resnet20_cifar")
    net.initialize()
    loads, real_load = [], np.load
    monkeypatch.setattr(io.np, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    with pytest.raises(WeightsMismatchError, match=r"'stem_conv_weight' \(conv1.weight\) has "
                                                   r"shape \(4096, 4096\), but the model needs "
                                                   r"\(16, 3, 3, 3\)"):
        io.load_weights(net, path)
    assert loads == []  # refused from the headers alone


def test_a_reference_npz_that_expands_far_beyond_its_size_is_refused(tmp_path):
    """A 'zip bomb': 64 MiB of zeros in a file of about 64 KiB, read without a model."""
    path = _npz_declaring(tmp_path / "w.npz", (4096, 4096))
    assert os.path.getsize(path) < 1 << 17
    with pytest.raises(CorruptFileError, match="declares 67,108,9.. bytes of arrays in a"):
        io.read_weights(path)


def test_a_reference_npz_of_integers_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"conv1.weight": np.zeros((16, 3, 3, 3), "int64")})
    with pytest.raises(CorruptFileError, match="holds int64, not floating-point weights"):
        io.read_weights(str(path))


def test_input_channels_are_refused_only_against_a_record(tmp_path):
    """A grey network's weights load as grey whether or not their file records the
    channels (an exported NAME-0000.params records nothing); a count that contradicts the
    record is refused naming both, and one images cannot have names the two that work."""
    net = gluonres.get_model("resnet20_cifar", in_channels=1)
    net.initialize()
    net(mx.nd.zeros((1, 1, 32, 32)))
    bare = str(tmp_path / "bare.params")
    io.save_weights(net, bare)
    loaded, _ = io.model_for_weights("resnet20_cifar", bare, in_channels=1)
    assert model_info(loaded).in_channels == 1
    recorded = str(tmp_path / "recorded.params")
    io.save_weights(net, recorded, {"in_channels": 1})
    loaded, _ = io.model_for_weights("resnet20_cifar", recorded)
    assert model_info(loaded).in_channels == 1
    io.model_for_weights("resnet20_cifar", recorded, in_channels=1)
    with pytest.raises(GluonresError, match="weights for 1-channel images, not 3"):
        io.model_for_weights("resnet20_cifar", recorded, in_channels=3)
    with pytest.raises(GluonresError, match="pass --in-channels 1 or 3"):
        io.model_for_weights("resnet20_cifar", recorded, in_channels=2)
