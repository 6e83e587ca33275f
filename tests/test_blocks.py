"""The two building blocks: option-A shortcuts, shortcut parameters, plain units, ConvFactory."""
import mxnet as mx
import numpy as np
import pytest

from gluonres.blocks import ConvFactory, ResidualFactory, ZeroPadShortcut


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


def test_conv_factory_swish_and_depthwise():
    mx.random.seed(0)
    block = ConvFactory(4, 3, in_channels=4, act="swish", groups=4, prefix="dw_")
    block.initialize(mx.init.Normal(1.0))
    assert block.conv.weight.shape == (4, 1, 3, 3)
    x = mx.nd.random.uniform(-1, 1, shape=(2, 4, 5, 5))
    z = block.bn(block.conv(x)).asnumpy()
    np.testing.assert_allclose(block(x).asnumpy(), z / (1 + np.exp(-z)), rtol=1e-5, atol=1e-6)
    # the ResNets' ConvFactory keeps its names: act=True is ReLU
    relu = ConvFactory(4, 3, in_channels=2, prefix="c_")
    relu.initialize()
    assert list(relu.collect_params()) == ["c_weight", "c_bn_gamma", "c_bn_beta",
                                           "c_bn_running_mean", "c_bn_running_var"]
    assert relu(mx.nd.random.uniform(-1, 1, shape=(1, 2, 5, 5))).min() >= 0
