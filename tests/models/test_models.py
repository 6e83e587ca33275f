"""Every registered model: shape, hybridize parity, export round trip, exact counts."""
import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres.analysis.summary import trainable_params
from gluonres.models import model_info


# Trainable parameters (BN running statistics excluded): 2015 paper, Table 6 and Table 1
# (ImageNet counts at 1000 classes with option B, the standard figures).
EXACT_PARAMS = {
    "resnet20_cifar": 269_722, "resnet32_cifar": 464_154, "resnet44_cifar": 658_586,
    "resnet56_cifar": 853_018, "resnet110_cifar": 1_727_962, "resnet1202_cifar": 19_421_274,
    "plain20_cifar": 269_722, "plain32_cifar": 464_154, "plain44_cifar": 658_586,
    "plain56_cifar": 853_018, "plain110_cifar": 1_727_962,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    **{
        # the classic backbones at 1000 classes, against the reference implementations
        # (torchvision's counts; GluonCV's nets give the same): AlexNet ("one weird
        # trick" variant), VGG-16 (paper Table 2: 138M), Inception-v3 without the
        # auxiliary classifier, DenseNet-121; EfficientNet-B0/B1 as the TensorFlow
        # reference and timm (paper Table 2: 5.3M / 7.8M)
        "alexnet": 61_100_840, "vgg16": 138_357_544, "inception_v3": 23_834_568,
        "densenet121": 7_978_856, "efficientnet_b0": 5_288_548,
        "efficientnet_b1": 7_794_184,
        # LeNet-5 at 10 classes on 3-channel 32x32 input: C1 456, C3 2,416, C5 48,120,
        # F6 10,164, classifier 850 (the paper's 60,000 differ by design: see LeNet5)
        "lenet5": 62_006,
    },
}
# 2015 paper, Table 1: FLOPs (multiply-adds) at 224x224, in billions
PAPER_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6,
               "resnet152": 11.3}
# published multiply-adds (billions) of the classic backbones at their native sizes:
# torchvision's figures for AlexNet, VGG-16, DenseNet-121 and timm's for Inception-v3
# (299x299); the EfficientNet paper's Table 2 for B0 (224) and B1 (240)
CLASSIC_GMACS = {"alexnet": 0.71, "vgg16": 15.47, "inception_v3": 5.7, "densenet121": 2.83,
                 "efficientnet_b0": 0.39, "efficientnet_b1": 0.70}
# 2016 paper, Table 3 / Sec. 4: parameters in millions
PAPER_V2_MPARAMS = {"resnet164_cifar_v2": 1.7, "resnet1001_cifar_v2": 10.2}

ALL = gluonres.list_models()


# uniform ranges of the non-weight parameters: BatchNorm in a trained-like state
# (fresh statistics, mean 0, var 1, gamma 1, make an untrained ResNet-1202 overflow in
# inference mode and leave the BN arithmetic untested) and small non-zero biases
_RANGES = {"_gamma": (0.1, 0.3), "_running_var": (0.5, 1.5), "_beta": (-0.1, 0.1),
           "_running_mean": (-0.1, 0.1), "_bias": (-0.1, 0.1)}


def _built(name):
    """He-uniform weights (bound sqrt(6 / fan_in)), random BN statistics and biases.

    Drawn with numpy: MXNet 1.9's CPU sampler needs ~10 s for VGG-16's 138M weights,
    numpy ~1 s; values set before deferred initialisation skip MXNet's sampler.
    """
    net = gluonres.get_model(name)
    net.initialize(mx.init.Zero())
    net.infer_shape(mx.nd.zeros(model_info(net).input_shape()))  # GluonCV's deferred shapes
    rng = np.random.default_rng(0)
    for pname, p in net.collect_params().items():
        if pname.endswith("_weight"):
            bound = np.sqrt(6 / np.prod(p.shape[1:]))
            low, high = -bound, bound
        else:
            low, high = next(r for suffix, r in _RANGES.items() if pname.endswith(suffix))
        p.set_data(mx.nd.array(low + (high - low) * rng.random(p.shape, np.float32)))
    return net


def _input(net, batch=2):
    shape = model_info(net).input_shape(batch)
    return mx.nd.random.uniform(-1, 1, shape=shape, ctx=mx.cpu())


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_exact_parameter_counts(name):
    assert trainable_params(gluonres.get_model(name)) == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PAPER_GMACS))
def test_multiply_adds_match_table1(name):
    s = gluonres.summary(gluonres.get_model(name))
    assert s.input_shape == (1, 3, 224, 224)
    assert s.macs / 1e9 == pytest.approx(PAPER_GMACS[name], rel=0.05)
    # summary's per-stage parameters add up to the direct count
    assert s.params == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", sorted(CLASSIC_GMACS))
def test_classic_multiply_adds_match_published(name):
    s = gluonres.summary(gluonres.get_model(name))
    assert s.macs / 1e9 == pytest.approx(CLASSIC_GMACS[name], rel=0.03)
    assert s.params == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PAPER_V2_MPARAMS))
def test_v2_bottleneck_params_near_paper(name):
    millions = trainable_params(gluonres.get_model(name)) / 1e6
    assert millions == pytest.approx(PAPER_V2_MPARAMS[name], abs=0.15)


def test_summary_stage_shapes_resnet50():
    s = gluonres.summary(gluonres.get_model("resnet50"))
    shapes = {st.name: tuple(st.output_shape) for st in s.stages}
    assert shapes == {"stem": (1, 64, 56, 56), "stage1": (1, 256, 56, 56),
                      "stage2": (1, 512, 28, 28), "stage3": (1, 1024, 14, 14),
                      "stage4": (1, 2048, 7, 7), "head": (1, 1000)}


# the deepest and widest take seconds each: left out of the fast loop (-m "not slow")
HEAVY = {"resnet1202_cifar", "resnet1001_cifar_v2", "vgg16", "alexnet", "resnet101",
         "resnet101_v2", "resnet152", "resnet152_v2"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in ALL])
def test_forward_hybridize_export(name, tmp_path):
    net = _built(name)
    x = _input(net)
    imperative = net(x).asnumpy()
    assert imperative.shape == (2, net.classes)
    assert np.isfinite(imperative).all()
    net.hybridize()
    hybrid = net(x).asnumpy()
    scale = max(1.0, np.abs(imperative).max())
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-5, atol=1e-5 * scale)

    net.export(str(tmp_path / name), epoch=0)
    reloaded = mx.gluon.SymbolBlock.imports(str(tmp_path / f"{name}-symbol.json"), ["data"],
                                            str(tmp_path / f"{name}-0000.params"))
    np.testing.assert_array_equal(reloaded(x).asnumpy(), hybrid)


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet56_cifar_v2", "resnet50"])
def test_parameter_names_read_like_the_paper(name):
    names = list(gluonres.get_model(name).collect_params())
    assert names[0] == "stem_conv_weight"
    assert "stage2_unit1_conv1_weight" in names
    assert "stage2_unit1_conv1_bn_gamma" in names or "stage2_unit1_preact_bn_gamma" in names
    assert names[-2:] == ["head_dense_weight", "head_dense_bias"]


def test_no_conv_has_a_bias():
    for name in ("resnet50", "resnet110_cifar_v2", "plain34"):
        params = gluonres.get_model(name).collect_params()
        assert not [n for n in params if "conv" in n and n.endswith("_bias")]


def test_v2_has_final_bn_relu_and_stem_bn():
    names = list(gluonres.get_model("resnet20_cifar_v2").collect_params())
    assert "head_bn_gamma" in names and "stem_conv_bn_gamma" in names
    # the stem's BN-ReLU is the first unit's pre-activation: no second one there
    assert "stage1_unit1_preact_bn_gamma" not in names
    assert "stage1_unit2_preact_bn_gamma" in names
