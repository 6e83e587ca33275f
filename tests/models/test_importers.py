"""GluonCV's ImageNet ResNets imported into gluonres models: same weights, same function.

Every source has random weights *and* random BatchNorm statistics, affine parameters
and convolution biases, so the folds (v1's biases, v2's input BatchNorm) are exercised:
with GluonCV's zero-initialised biases and unit statistics they would test nothing.
"""
import sys

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model as gluoncv_model
from mxnet.gluon import nn

import gluonres
from gluonres import io
from gluonres.data.preprocess import Preprocess
from gluonres.errors import GluonresError
from gluonres.importers import (IMAGENET, SUPPORTED, import_gluoncv,
                                parse_spec, save_imported, target)


def randomise(net, seed):
    """Random weights, BatchNorm statistics and affine parameters, and biases."""
    mx.random.seed(seed)
    net.initialize(mx.init.MSRAPrelu(slope=0))
    net(mx.nd.zeros((1, 3, 64, 64)))  # fixes the deferred input channels
    rng = np.random.RandomState(seed)
    draws = {"running_mean": lambda s: rng.normal(0, 0.2, s),
             "running_var": lambda s: rng.uniform(0.5, 2.0, s),
             "gamma": lambda s: rng.uniform(0.5, 1.5, s),
             "beta": lambda s: rng.normal(0, 0.2, s),
             "bias": lambda s: rng.normal(0, 0.5, s)}
    for name, p in net.collect_params().items():
        kind = next((k for k in draws if name.endswith(k)), None)
        if kind:
            p.set_data(mx.nd.array(draws[kind](p.shape)))
    return net


def pixels(seed=0):
    """A uint8 (2, 224, 224, 3) RGB batch."""
    return np.random.RandomState(seed).randint(0, 256, (2, 224, 224, 3)).astype(np.uint8)


def imagenet_input(px):
    """What GluonCV's models take: ImageNet-normalised NCHW float32."""
    x = (px / 255.0 - np.array(IMAGENET.mean)) / np.array(IMAGENET.std)
    return mx.nd.array(x.transpose(0, 3, 1, 2), dtype="float32")


def ours(net, meta, px):
    """gluonres's output on raw pixels, through the preprocessing the weights record."""
    return net(Preprocess.from_dict(meta["preprocess"])(mx.nd.array(px, dtype="uint8"))).asnumpy()


def assert_same(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.fixture(scope="module")
def zoo():
    """``zoo(name)``: a randomised GluonCV model and its output on :func:`pixels`, built once."""
    cache = {}

    def get(name):
        if name not in cache:
            src = randomise(gluoncv_model(name, pretrained=False), seed=len(cache) + 1)
            cache[name] = src, src(imagenet_input(pixels())).asnumpy()
        return cache[name]
    return get


@pytest.fixture(scope="module")
def imported(zoo):
    """``imported(name)``: :func:`import_gluoncv` of ``zoo(name)``, once."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = import_gluoncv(name, source=zoo(name)[0])
        return cache[name]
    return get


@pytest.fixture(scope="module")
def saved(zoo, tmp_path_factory):
    """``saved(name)``: the path of ``zoo(name)`` saved by :func:`save_imported`, once."""
    cache = {}

    def get(name):
        if name not in cache:
            path = str(tmp_path_factory.mktemp("imported") / f"{name}.params")
            cache[name] = path, save_imported(name, path, source=zoo(name)[0])
        return cache[name]
    return get


CASES = ["resnet18_v1b", "resnet50_v1b", "resnet18_v1", "resnet50_v1", "resnet18_v2",
         "resnet50_v2"]


@pytest.mark.parametrize("name", CASES)
def test_import_computes_the_same_function(zoo, imported, name):
    _, expected = zoo(name)
    net, meta = imported(name)
    assert_same(ours(net, meta, pixels()), expected)
    model, options = target(name)
    assert (meta["model"], meta["model_options"]) == (model, options)
    assert meta["source"] == f"gluoncv:{name}"
    assert len(meta["classes"]) == 1000 and meta["classes"][0] == "n01440764"
    assert meta["class_names"][0] == "tench"
    assert (meta["input_size"], meta["resize"]["shorter_side"]) == (224, 256)
    if name.endswith("_v2"):
        assert meta["preprocess"]["mean"] != list(IMAGENET.mean)  # the input BN folded in
    else:
        assert meta["preprocess"] == IMAGENET.to_dict()


def test_targets():
    assert target("resnet50_v1b") == ("resnet50", {"stride_on": "3x3"})
    assert target("resnet101_v1") == ("resnet101", {"stride_on": "1x1"})
    assert target("resnet152_v2") == ("resnet152_v2",
                                      {"stride_on": "3x3", "first_unit_preact": True})
    assert len(SUPPORTED) == 15


def test_v1_conv_biases_fold_into_the_next_batchnorm(zoo, imported):
    src, _ = zoo("resnet50_v1")
    blk = src.features[4][0]  # stage 1, unit 1: body = conv(bias), BN, ReLU, ...
    bias = blk.body[0].bias.data().asnumpy()
    assert np.abs(bias).max() > 0.1  # a real fold, not a zero bias
    net, _ = imported("resnet50_v1")
    np.testing.assert_allclose(
        net.collect_params()["stage1_unit1_conv1_bn_running_mean"].data().asnumpy(),
        blk.body[1].running_mean.data().asnumpy() - bias, rtol=1e-6, atol=1e-6)


def test_v2_input_batchnorm_becomes_the_preprocessing(zoo, imported):
    src, _ = zoo("resnet18_v2")
    bn = src.features[0]
    rm, rv, beta = (getattr(bn, k).data().asnumpy().astype(np.float64)
                    for k in ("running_mean", "running_var", "beta"))
    _, meta = imported("resnet18_v2")
    m, s, sd = np.array(IMAGENET.mean), np.array(IMAGENET.std), np.sqrt(rv + 1e-5)
    # gamma is ignored (scale=False), beta is not (the operator adds it)
    np.testing.assert_allclose(meta["preprocess"]["std"], s * sd, rtol=1e-12)
    np.testing.assert_allclose(meta["preprocess"]["mean"], m + s * (rm - beta * sd), rtol=1e-12)


def test_the_mxnet_model_zoo_counterpart_imports_too():
    src = randomise(mx.gluon.model_zoo.vision.resnet18_v2(), seed=7)
    expected = src(imagenet_input(pixels())).asnumpy()
    net, meta = import_gluoncv("resnet18_v2", source=src)
    assert_same(ours(net, meta, pixels()), expected)


@pytest.mark.parametrize("name", ["resnet50_v1b", "resnet18_v2"])
def test_saved_file_round_trips(zoo, saved, name):
    _, expected = zoo(name)
    path, meta = saved(name)
    arrays, read = io.read_weights(path)
    assert read == meta
    net = gluonres.get_model(read["model"], classes=len(read["classes"]), **read["model_options"])
    io.load_weights(net, path)
    assert_same(ours(net, read, pixels()), expected)


@pytest.mark.parametrize("name", ["resnet50_v1b", "resnet18_v2"])
def test_model_for_weights_rebuilds_the_recorded_options(zoo, saved, name):
    _, expected = zoo(name)
    path, meta = saved(name)
    # without the recorded options resnet50 would get the 1x1 stride and compute
    # something else, and resnet18_v2 would refuse stage1_unit1_preact_bn_*
    net, read = io.model_for_weights(meta["model"], path)
    assert_same(ours(net, read, pixels()), expected)


def test_local_params_file(zoo, tmp_path):
    src, expected = zoo("resnet50_v1")
    path = str(tmp_path / "resnet50_v1-local.params")
    src.save_parameters(path)
    net, meta = import_gluoncv("resnet50_v1", source=path)
    assert_same(ours(net, meta, pixels()), expected)
    assert meta["source_file"] == "resnet50_v1-local.params"


def test_legacy_params_file(zoo, tmp_path):
    """Files from save_params: full parameter names without the network's prefix."""
    src, expected = zoo("resnet18_v2")
    path = str(tmp_path / "legacy.params")
    mx.nd.save(path, {p.name[len(src.prefix):]: p.data()
                      for p in src.collect_params().values()})
    net, meta = import_gluoncv("resnet18_v2", source=path)
    assert_same(ours(net, meta, pixels()), expected)


def test_params_file_of_another_model(zoo, tmp_path):
    src, _ = zoo("resnet18_v1")
    path = str(tmp_path / "resnet18_v1.params")
    src.save_parameters(path)
    with pytest.raises(GluonresError, match="has no parameter .* of GluonCV's resnet34_v1"):
        import_gluoncv("resnet34_v1", source=path)


def test_missing_params_file(tmp_path):
    with pytest.raises(GluonresError, match="does not exist"):
        import_gluoncv("resnet50_v1b", source=str(tmp_path / "nope.params"))


def test_unknown_name_names_the_supported_ones():
    with pytest.raises(GluonresError, match="resnet50_v1d.*supported: .*resnet50_v1b"):
        import_gluoncv("resnet50_v1d")


def test_gluoncv_missing(monkeypatch):
    for mod in ("gluoncv", "gluoncv.model_zoo"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(GluonresError, match=r"pip install gluoncv==0\.10\.5\.post0"):
        import_gluoncv("resnet18_v1b")


def test_block_of_another_family(zoo):
    src, _ = zoo("resnet18_v1")
    with pytest.raises(GluonresError, match="ResNetV1, not GluonCV's ResNetV1b"):
        import_gluoncv("resnet18_v1b", source=src)


def test_variants_with_other_layers_are_refused():
    src = gluoncv_model("resnet18_v1b", pretrained=False, dilated=True)
    src.initialize()
    # the dilated network keeps stage 3's resolution: no stride where ours halves it
    with pytest.raises(GluonresError, match=r"stride=\(1, 1\) in the convolution at layer3"):
        import_gluoncv("resnet18_v1b", source=src)


def test_a_bias_no_batchnorm_can_absorb_is_refused():
    src = gluoncv_model("resnet18_v2", pretrained=False)
    blk = src.features[5][0]
    with blk.name_scope():  # the unit's last convolution feeds the addition, not a BN
        blk.conv2 = nn.Conv2D(64, 3, 1, 1, use_bias=True, in_channels=64)
    src.initialize()
    with pytest.raises(GluonresError, match="bias .* no BatchNorm follows"):
        import_gluoncv("resnet18_v2", source=src)


def test_class_names(zoo):
    src, _ = zoo("resnet18_v1")
    with pytest.raises(GluonresError, match="3 class names given for resnet18_v1's 1000"):
        import_gluoncv("resnet18_v1", source=src, classes=["a", "b", "c"])


def test_parse_spec():
    assert parse_spec("gluoncv:resnet50_v1b") == ("gluoncv", "resnet50_v1b", None)
    assert parse_spec("gluoncv:resnet18_v2=/w/r.params").path == "/w/r.params"
    with pytest.raises(GluonresError, match="not an import spec"):
        parse_spec("timm:resnet50")
    with pytest.raises(GluonresError, match="supported: "):
        parse_spec("gluoncv:resnet50_v1d")
    with pytest.raises(GluonresError, match="ends in '='"):
        parse_spec("gluoncv:resnet50_v1b=")
