"""The fine-tuning interface of every model: ``in_channels``, ``reset_classifier``,
``forward_features`` and ``forward_head`` (issue 17)."""
import warnings

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres.errors import GluonresError
from gluonres.io import load_weights, save_weights
from gluonres.models import model_info, model_spec
from gluonres.models.cifar import cifar_resnet
from gluonres.models.init import he_initialize

ALL = gluonres.list_models()

# name -> (builder options, input size). Every registered model is one of these classes
# and splits into features and head by the same code as its representative here; the
# others differ in depth or width only (resnet32..1202_cifar, plain*, resnet34..152 and
# their v2 with the same stem and head, efficientnet_b1 with more blocks), while each
# distinct layout is here: both ResNet stems, the three ResNet heads (2015 'original'
# units end in a ReLU inside the last unit, 'full_preact' adds the head's BN-ReLU,
# 'relu_preact' its ReLU), EfficientNet's 1x1 conv head, LeNet-5 without global pooling,
# and GluonCV's four feature stacks (a closing pool, replaced by global pooling at small
# sizes in Inception-v3 and DenseNet; flatten + dense layers in AlexNet and VGG). The
# small sizes keep the deep ones fast.
CASES = {
    "resnet20_cifar": ({}, 32),
    "resnet20_cifar_v2": ({}, 32),
    "resnet20_cifar-relu_preact": ({"arrangement": "relu_preact"}, 32),
    "resnet18": ({}, 64),
    "resnet18_v2": ({}, 64),
    "lenet5": ({}, 32),
    "efficientnet_b0": ({"input_size": 32}, 32),
    "alexnet": ({"input_size": 63}, 63),
    "vgg16": ({"input_size": 32}, 32),
    "inception_v3": ({"input_size": 75}, 75),
    "densenet121": ({"input_size": 32}, 32),
}
# the first convolution's weight, which takes the input channels
STEM = {"stem_conv_weight", "c1_weight", "features_conv0_weight"}
CLASSIFIER = ["head_dense_weight", "head_dense_bias"]


def _build(case, **kw):
    options, size = CASES[case]
    return gluonres.get_model(case.split("-")[0], **options, **kw), size


def _randomise(net, shape):
    """Random weights, BatchNorm statistics and biases, drawn with numpy.

    Random (not MXNet's ones and zeros) so that "kept its values" compares something;
    He-uniform weights and BN scales below 1 keep the deep untrained nets finite in
    inference mode (tests/models/test_models.py's ``_built`` does the same for the
    native sizes; tests import no helpers from each other).
    """
    net.initialize(mx.init.Zero())
    net.infer_shape(mx.nd.zeros(shape))  # shapes a Dense infers from its input
    rng = np.random.default_rng(0)
    for name, p in net.collect_params().items():
        if name.endswith("_weight"):
            bound = np.sqrt(6 / np.prod(p.shape[1:]))
            low, high = -bound, bound
        elif name.endswith(("_gamma", "_running_var")):
            low, high = 0.5, 1.0
        else:  # beta, running mean, bias
            low, high = -0.1, 0.1
        p.set_data(mx.nd.array(low + (high - low) * rng.random(p.shape, np.float32)))
    net(mx.nd.zeros(shape))  # a deferred parameter takes its data at the first forward pass
    return net


def _values(net, skip=()):
    return {n: p.data().asnumpy() for n, p in net.collect_params().items() if n not in skip}


def _input(channels, size, batch=2):
    return mx.nd.array(np.random.default_rng(1).uniform(-1, 1, (batch, channels, size, size)))


def _close(a, b):
    """Equal up to float32 rounding, which a hybridized (oneDNN) graph reorders."""
    a, b = a.asnumpy(), b.asnumpy()
    scale = max(1.0, np.abs(b).max())  # as tests/models/test_models.py's hybrid parity
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)


def _same(a, b):
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


# ---------------------------------------------------------------- in_channels


@pytest.mark.parametrize("name", ALL)
def test_every_model_takes_in_channels(name):
    spec = model_spec(name)
    assert "in_channels" in spec.accepts()
    default = gluonres.get_model(name)
    stem, weight = next(iter(default.collect_params().items()))
    assert stem in STEM
    assert weight.shape[1] == spec.in_channels == model_info(default).in_channels == 3
    grey = gluonres.get_model(name, in_channels=1)
    stem, weight = next(iter(grey.collect_params().items()))
    assert weight.shape[1] == 1  # fixed when built, also where GluonCV infers it
    assert model_info(grey).in_channels == 1
    assert model_info(grey).input_shape(2)[1] == 1


@pytest.mark.parametrize("case", CASES)
def test_grey_input_runs(case):
    net, size = _build(case, in_channels=1)
    he_initialize(net)
    out = net(_input(1, size))
    assert out.shape == (2, net.classes)
    assert np.isfinite(out.asnumpy()).all()
    assert next(iter(net.collect_params().values())).shape[1] == 1
    # the stem is built for one channel, not left to infer it: RGB is refused
    with pytest.raises(mx.base.MXNetError):
        net(_input(3, size)).wait_to_read()


@pytest.mark.parametrize("name, shape", [("resnet18", (2, 1, 224, 224)),
                                         ("resnet20_cifar", (2, 1, 32, 32))])
def test_issue_examples(name, shape):
    net = gluonres.get_model(name, in_channels=1)
    he_initialize(net)
    assert net(mx.nd.ones(shape)).shape == (2, model_spec(name).classes)
    assert model_info(net).input_shape(2) == shape


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet18_v2", "lenet5", "efficientnet_b0",
                                  "densenet121"])
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "1", None])
def test_bad_in_channels_name_the_fix(name, bad):
    with pytest.raises(GluonresError, match=r"in_channels must be a positive integer, got .*"
                                            r"pass e\.g\. in_channels=1"):
        gluonres.get_model(name, in_channels=bad)


# ---------------------------------------------------------------- reset_classifier


@pytest.mark.parametrize("case", CASES)
def test_reset_classifier_keeps_everything_else(case, tmp_path):
    net, size = _build(case)
    x = _input(3, size)
    _randomise(net, x.shape)
    names = list(net.collect_params())
    assert names[-2:] == CLASSIFIER
    before = _values(net, skip=CLASSIFIER)
    features = net.forward_features(x).asnumpy()
    name = model_info(net).name
    width = net.classifier.weight.shape[1]

    new = net.reset_classifier(5)
    assert net.classifier is new and new.weight.shape == (5, width)
    assert list(net.collect_params()) == names  # same names, same order
    assert new.weight._data is None  # fresh: not initialised
    assert net.classes == 5 and model_info(net).classes == 5 and model_info(net).name == name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # initialising only the new layer is silent
        new.initialize()
    out = net(x)
    assert out.shape == (2, 5)
    after = _values(net, skip=CLASSIFIER)
    assert after.keys() == before.keys()
    for n in before:
        np.testing.assert_array_equal(after[n], before[n], err_msg=n)
    np.testing.assert_array_equal(net.forward_features(x).asnumpy(), features)

    # the fine-tuned weights load into the model built for 5 classes, by name and by layout
    save_weights(net, str(tmp_path / "tuned.params"))
    net.save_parameters(str(tmp_path / "tuned-gluon.params"))
    for load in (lambda m: load_weights(m, str(tmp_path / "tuned.params")),
                 lambda m: m.load_parameters(str(tmp_path / "tuned-gluon.params"))):
        fresh, _ = _build(case, classes=5)
        load(fresh)
        np.testing.assert_array_equal(fresh(x).asnumpy(), out.asnumpy())


def test_reset_classifier_then_he_initialize_is_silent():
    net = gluonres.get_model("resnet20_cifar")
    he_initialize(net)
    before = _values(net, skip=CLASSIFIER)
    net.reset_classifier(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        he_initialize(net, seed=1)  # initialises the new layer only
    assert net(_input(3, 32)).shape == (2, 3)
    for n, v in _values(net, skip=CLASSIFIER).items():
        np.testing.assert_array_equal(v, before[n])


@pytest.mark.parametrize("case", ["resnet20_cifar_v2", "lenet5", "efficientnet_b0",
                                  "densenet121"])
def test_reset_classifier_on_a_hybridized_net(case):
    net, size = _build(case)
    x = _input(3, size)
    _randomise(net, x.shape)
    net.hybridize()
    assert net(x).shape == (2, net.classes)  # the graph is built with the old classifier
    net.reset_classifier(4).initialize()
    hybrid = net(x)
    assert hybrid.shape == (2, 4)
    _close(hybrid, net.forward_head(net.forward_features(x)))
    net.reset_classifier(6).initialize()
    net.hybridize()  # and hybridized again after the reset
    assert net(x).shape == (2, 6)


def test_reset_classifier_of_a_net_built_directly():
    net = cifar_resnet(20)  # no get_model: model_info reads net.classes
    net.reset_classifier(4)
    assert model_info(net).classes == 4 and not hasattr(net, "model_info")
    net.initialize()
    assert net(_input(3, 32)).shape == (2, 4)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_reset_classifier_refuses_bad_classes(bad):
    net = gluonres.get_model("resnet20_cifar")
    old = net.classifier
    with pytest.raises(GluonresError, match="classes must be a positive integer"):
        net.reset_classifier(bad)
    assert net.classifier is old and net.classes == 10


# ---------------------------------------------------------------- forward_features / head


# channels and spatial size of the features of each case
FEATURES = {
    "resnet20_cifar": (64, 8), "resnet20_cifar_v2": (64, 8),
    "resnet20_cifar-relu_preact": (64, 8), "resnet18": (512, 2), "resnet18_v2": (512, 2),
    "lenet5": (120, 1), "efficientnet_b0": (1280, 1), "alexnet": (256, 1),
    "vgg16": (512, 1), "inception_v3": (2048, 1), "densenet121": (1024, 1),
}
# width of the classifier's input: the pooled features, or for the nets without global
# pooling the last hidden layer (LeNet-5's F6, AlexNet's and VGG's second fc)
PRE_LOGITS = {"lenet5": 84, "alexnet": 4096, "vgg16": 4096}


@pytest.mark.parametrize("case", CASES)
def test_forward_is_head_of_features(case):
    net, size = _build(case)
    x = _input(3, size)
    _randomise(net, x.shape)
    features = net.forward_features(x)
    channels, hw = FEATURES[case]
    assert features.shape == (2, channels, hw, hw)
    out = net(x)
    # imperatively the same operators run in the same order: exactly equal
    _same(net.forward_head(features), out)
    pre = net.forward_head(features, pre_logits=True)
    assert pre.shape == (2, PRE_LOGITS.get(case, channels))
    _same(net.classifier(pre), out)
    net.hybridize()
    _close(net(x), out)
    _close(net.forward_features(x), features)  # the hybridized children


@pytest.mark.parametrize("case", ["resnet20_cifar_v2", "resnet18_v2"])
def test_v2_features_end_with_the_final_bn_relu(case):
    net, size = _build(case)
    x = _input(3, size)
    _randomise(net, x.shape)
    stages = net.stages(net.stem(x))
    assert (stages.asnumpy() < 0).any()  # the last unit ends in an addition
    bn, relu = net.head[0], net.head[1]
    assert bn.name == "head_bn" and list(bn.collect_params())[0] == "head_bn_gamma"
    features = net.forward_features(x)
    np.testing.assert_array_equal(features.asnumpy(), relu(bn(stages)).asnumpy())
    assert features.min().asscalar() == 0  # the ReLU acted


def test_relu_preact_features_end_with_the_final_relu():
    net, size = _build("resnet20_cifar-relu_preact")
    x = _input(3, size)
    _randomise(net, x.shape)
    stages = net.stages(net.stem(x))
    assert (stages.asnumpy() < 0).any()
    np.testing.assert_array_equal(net.forward_features(x).asnumpy(),
                                  mx.nd.relu(stages).asnumpy())


def test_v1_features_are_the_last_units_output():
    net, size = _build("resnet20_cifar")
    x = _input(3, size)
    _randomise(net, x.shape)
    np.testing.assert_array_equal(net.forward_features(x).asnumpy(),
                                  net.stages(net.stem(x)).asnumpy())


def test_forward_features_traces_symbolically():
    net = gluonres.get_model("resnet20_cifar_v2")
    features = net.forward_features(mx.sym.var("data"))
    _, (shape,), _ = features.infer_shape(data=(1, 3, 32, 32))
    assert shape == (1, 64, 8, 8)
    assert "head_bn_gamma" in features.list_arguments()
    assert "head_dense_weight" not in features.list_arguments()
