"""Registry, blocks, weights I/O and the environment guard."""
import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import _env, io
from gluonres.blocks import ResidualFactory, ZeroPadShortcut
from gluonres.errors import UnknownModelError, WeightsMismatchError
from gluonres.models import register_model


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_model(gluonres.models.get_builder("resnet20_cifar"))


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownModelError, match="did you mean resnet56_cifar"):
        gluonres.get_model("resnet56_cifr")


def test_list_models_pattern():
    assert gluonres.list_models("resnet*_cifar_v2") == [
        "resnet1001_cifar_v2", "resnet110_cifar_v2", "resnet164_cifar_v2",
        "resnet20_cifar_v2", "resnet32_cifar_v2", "resnet44_cifar_v2", "resnet56_cifar_v2"]
    assert "resnet50" in gluonres.list_models() and "plain34" in gluonres.list_models()


def test_get_model_kwargs():
    net = gluonres.get_model("resnet20_cifar", classes=100, shortcut="B")
    net.initialize()
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 100)
    assert "stage2_unit1_shortcut_weight" in net.collect_params()
    assert net.model_name == "resnet20_cifar"


@pytest.mark.parametrize("depth", [19, 21, 0])
def test_cifar_depth_must_be_6n_plus_2(depth):
    from gluonres.models.cifar import cifar_resnet
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(depth)


def test_option_a_zero_pads_before_and_after():
    x = mx.nd.arange(2 * 4 * 4 * 4).reshape((2, 4, 4, 4))
    out = ZeroPadShortcut(4, 8, 2)(x)
    assert out.shape == (2, 8, 2, 2)
    expected = np.zeros((2, 8, 2, 2), np.float32)
    expected[:, 2:6] = x.asnumpy()[:, :, ::2, ::2]  # identity in the middle channels
    np.testing.assert_array_equal(out.asnumpy(), expected)


@pytest.mark.parametrize("shortcut,params", [("A", 0), ("B", 32 * 16 + 2 * 32),
                                             ("C", 32 * 16 + 2 * 32)])
def test_shortcut_parameters(shortcut, params):
    def count(**kw):
        unit = ResidualFactory(32, 16, stride=2, shortcut=shortcut, **kw)
        return sum(p.shape and int(np.prod(p.shape)) for n, p in unit.collect_params().items()
                   if "shortcut" in n and p.grad_req != "null")
    assert count() == params
    # a unit that keeps its shape only projects with option C
    same = ResidualFactory(16, 16, shortcut=shortcut)
    has_projection = any("shortcut" in n for n in same.collect_params())
    assert has_projection == (shortcut == "C")


def test_plain_unit_has_no_shortcut_and_same_layers():
    plain = ResidualFactory(32, 16, stride=2, residual=False, shortcut="B", prefix="u_")
    res = ResidualFactory(32, 16, stride=2, residual=True, shortcut="B", prefix="u_")
    plain_names = {n for n in plain.collect_params()}
    assert plain_names == {n for n in res.collect_params() if "shortcut" not in n}


def test_residual_unit_is_identity_when_branch_is_zero():
    """With the last BN's gamma/beta at zero, a 2015 unit is ReLU(x)."""
    unit = ResidualFactory(16, 16)
    unit.initialize()
    for n, p in unit.collect_params().items():
        if n.startswith(unit.prefix + "conv2_bn_") and n.endswith(("gamma", "beta")):
            p.set_data(mx.nd.zeros(p.shape))
    x = mx.nd.random.normal(shape=(2, 16, 8, 8))
    np.testing.assert_allclose(unit(x).asnumpy(), np.maximum(x.asnumpy(), 0), atol=1e-6)


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


def test_numpy_guard_names_the_fix(monkeypatch):
    monkeypatch.setattr(_env.numpy, "__version__", "1.26.4")
    with pytest.raises(ImportError) as err:
        _env.check_numpy()
    message = str(err.value)
    assert "\n" not in message
    assert "numpy 1.26.4" in message and "pip install 'numpy==1.23.5'" in message
