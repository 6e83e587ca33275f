"""The classic backbones as models: structure, names, sizes, stochastic depth, weights."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

import gluonres
from gluonres import deploy, io
from gluonres.analysis.summary import trainable_params
from gluonres.blocks import ConvFactory
from gluonres.models.efficientnet import MBConv


# width of the classifier's input, to count the classifier at other class counts
FEATURE_UNITS = {"alexnet": 4096, "vgg16": 4096, "inception_v3": 2048, "densenet121": 1024,
                 "efficientnet_b0": 1280, "efficientnet_b1": 1280, "lenet5": 84}


PARAMS_1000 = {"alexnet": 61_100_840, "vgg16": 138_357_544, "inception_v3": 23_834_568,
               "densenet121": 7_978_856, "efficientnet_b0": 5_288_548,
               "efficientnet_b1": 7_794_184}


def _stages(name, **kwargs):
    s = gluonres.summary(gluonres.get_model(name, **kwargs))
    return {st.name: tuple(st.output_shape) for st in s.stages}


def test_efficientnet_b0_stage_shapes():
    # paper Table 1: resolutions 112, 112, 56, 28, 14, 14, 7, 7 and channels
    assert _stages("efficientnet_b0") == {
        "stem": (1, 32, 112, 112), "stage1": (1, 16, 112, 112), "stage2": (1, 24, 56, 56),
        "stage3": (1, 40, 28, 28), "stage4": (1, 80, 14, 14), "stage5": (1, 112, 14, 14),
        "stage6": (1, 192, 7, 7), "stage7": (1, 320, 7, 7), "head": (1, 1000)}


def test_efficientnet_b1_is_deeper_b0_at_240():
    b0 = gluonres.get_model("efficientnet_b0")
    b1 = gluonres.get_model("efficientnet_b1")
    assert (b0.input_size, b1.input_size) == (224, 240)
    # ceil(1.1 * (1, 2, 2, 3, 3, 4, 1)) blocks per stage
    assert [len(st) for st in b0.stages] == [1, 2, 2, 3, 3, 4, 1]
    assert [len(st) for st in b1.stages] == [2, 3, 3, 4, 4, 5, 2]


def test_lenet5_layers_are_the_papers():
    assert _stages("lenet5") == {
        "c1": (1, 6, 28, 28), "s2": (1, 6, 14, 14), "c3": (1, 16, 10, 10),
        "s4": (1, 16, 5, 5), "c5": (1, 120, 1, 1), "f6": (1, 84), "head": (1, 10)}


def test_lenet5_one_channel():
    net = gluonres.get_model("lenet5", in_channels=1)
    # 62,006 less 300 weights of C1 on the two extra channels
    assert trainable_params(net) == 61_706
    assert gluonres.summary(net).input_shape == (1, 1, 32, 32)
    net.initialize()
    assert net(mx.nd.zeros((2, 1, 32, 32))).shape == (2, 10)


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "inception_v3", "densenet121"])
def test_gluoncv_wrappers_group_features_and_head(name):
    net = gluonres.get_model(name)
    names = list(net.collect_params())
    assert all(n.startswith("features_") for n in names[:-2])
    assert names[-2:] == ["head_dense_weight", "head_dense_bias"]
    stages = _stages(name)
    assert list(stages) == ["features", "head"]
    assert stages["head"] == (1, 1000)


def test_efficientnet_parameter_names():
    names = list(gluonres.get_model("efficientnet_b0").collect_params())
    assert names[:2] == ["stem_conv_weight", "stem_conv_bn_gamma"]
    assert names[-2:] == ["head_dense_weight", "head_dense_bias"]
    for n in ("stage1_block1_dw_weight", "stage1_block1_se_reduce_weight",
              "stage2_block1_expand_weight", "stage3_block2_se_expand_bias",
              "stage3_block2_project_bn_gamma", "head_conv_weight"):
        assert n in names
    # expansion 1: the first stage has no expansion convolution
    assert "stage1_block1_expand_weight" not in names
    # only the squeeze-and-excitation 1x1 convolutions have biases
    assert {n for n in names if n.endswith("_bias") and not n.startswith("head_dense")} == \
        {n for n in names if "_se_" in n and n.endswith("_bias")}


@pytest.mark.parametrize("name", sorted(PARAMS_1000))
def test_classes_resizes_only_the_classifier(name):
    net = gluonres.get_model(name, classes=10)
    assert net.classes == 10
    assert trainable_params(net) == PARAMS_1000[name] - 990 * (FEATURE_UNITS[name] + 1)


def test_classes_forward_shape_lenet_and_efficientnet():
    for name, shape in (("lenet5", (2, 3, 32, 32)), ("efficientnet_b0", (2, 3, 64, 64))):
        net = gluonres.get_model(name, classes=7)
        net.initialize()
        assert net(mx.nd.zeros(shape)).shape == (2, 7)


def test_bad_options_are_clear_errors():
    with pytest.raises(gluonres.GluonresError, match="'shortcut'"):
        gluonres.get_model("alexnet", shortcut="A")
    with pytest.raises(gluonres.GluonresError, match="classes must be a positive integer"):
        gluonres.get_model("efficientnet_b0", classes=0)
    with pytest.raises(ValueError, match="act must be"):
        ConvFactory(8, 3, act="tanh")


@pytest.mark.parametrize("hybrid", [False, True])
def test_drop_path_drops_whole_samples_in_training_only(hybrid):
    mx.random.seed(0)
    block = MBConv(8, 8, 6, 3, 1, drop_path=0.5)
    block.initialize(mx.init.MSRAPrelu(slope=0))
    if hybrid:
        block.hybridize()
    x = mx.nd.random.uniform(-1, 1, shape=(64, 8, 6, 6))
    dropped = 0
    for _ in range(4):
        with autograd.record(train_mode=True):
            branch = block.body(x).asnumpy()  # batch statistics: the same in both calls
            y = block(x).asnumpy()
        delta = (y - x.asnumpy()).reshape(64, -1)
        kept = np.abs(delta).max(axis=1) > 0
        # a dropped sample is exactly the identity; a kept one has its branch x 1/(1 - p)
        np.testing.assert_allclose(delta[kept], 2 * branch.reshape(64, -1)[kept],
                                   rtol=1e-4, atol=1e-5)
        dropped += int((~kept).sum())
    assert 0.3 < dropped / 256 < 0.7
    # inference: every sample keeps its unscaled branch, deterministically
    y1, y2 = block(x).asnumpy(), block(x).asnumpy()
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1 - x.asnumpy(), block.body(x).asnumpy(), rtol=1e-5,
                               atol=1e-6)


def test_drop_path_schedule_and_where_it_applies():
    net = gluonres.get_model("efficientnet_b0")
    blocks = [b for stage in net.stages for b in stage]
    rates = [b.drop_path for b in blocks]
    assert len(blocks) == 16 and rates[0] == 0
    # blocks that change shape have no skip, hence no drop path; the others ramp up
    # linearly to 0.2 * 15/16 (the last block changes shape, so the highest is 14/16)
    assert rates[1] == 0 and rates[3] == 0  # stage2 block1, stage3 block1
    assert rates[2] == pytest.approx(0.2 * 2 / 16)
    assert max(rates) == pytest.approx(0.2 * 14 / 16) and rates[-1] == 0
    with pytest.raises(ValueError, match="drop_path"):
        MBConv(8, 8, 6, 3, 1, drop_path=1.0)


def test_export_initialised_gluoncv_wrapper(tmp_path):
    """GluonCV's layers are still deferred after initialize(): export must accept that."""
    mx.random.seed(0)
    net = gluonres.get_model("densenet121")
    net.initialize(mx.init.Xavier())
    paths = deploy.export(net, str(tmp_path), "densenet121")
    x = mx.nd.random.uniform(-1, 1, shape=(1, 3, 224, 224))
    reloaded = mx.gluon.SymbolBlock.imports(paths["symbol"], ["data"], paths["params"])
    np.testing.assert_allclose(reloaded(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)


def test_weights_round_trip_into_a_fresh_gluoncv_wrapper(tmp_path):
    """A fresh wrapper still has deferred shapes; load_weights fills them from the file."""
    mx.random.seed(0)
    net = gluonres.get_model("densenet121", classes=10)
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(-1, 1, shape=(1, 3, 224, 224))
    expected = net(x).asnumpy()
    io.save_weights(net, str(tmp_path / "d.params"), meta={"model": "densenet121"})
    fresh = gluonres.get_model("densenet121", classes=10)
    io.load_weights(fresh, str(tmp_path / "d.params"))
    np.testing.assert_array_equal(fresh(x).asnumpy(), expected)
    with pytest.raises(gluonres.errors.WeightsMismatchError, match="head_dense_weight"):
        io.load_weights(gluonres.get_model("densenet121"), str(tmp_path / "d.params"))


# ---------------------------------------------------------------------------- input sizes
@pytest.mark.parametrize("name,size,final", [("alexnet", 63, (1, 4096)),
                                             ("vgg16", 32, (1, 4096)),
                                             ("inception_v3", 75, (1, 2048, 1, 1)),
                                             ("densenet121", 29, (1, 1024))])
def test_gluoncv_wrappers_at_their_smallest_input(name, size, final):
    net = gluonres.get_model(name, classes=10, input_size=size)
    assert net.input_size == size
    s = gluonres.summary(net)  # shape inference fails if a map is empty anywhere
    assert s.input_shape == (1, 3, size, size)
    assert s.stages[0].output_shape == final and s.stages[-1].output_shape == (1, 10)
    with pytest.raises(gluonres.GluonresError, match=f"input_size >= {size}"):
        gluonres.get_model(name, input_size=size - 1)


@pytest.mark.parametrize("zoo,size", [("inceptionv3", 74), ("densenet121", 28),
                                      ("alexnet", 62), ("vgg16", 31)])
def test_smallest_inputs_are_gluoncvs_own(zoo, size):
    """One pixel less and GluonCV's own features already fail (the checks are not ours)."""
    from gluoncv.model_zoo import get_model
    sym = get_model(zoo, classes=10).features(mx.sym.var("data"))
    with pytest.raises(mx.base.MXNetError):
        sym.infer_shape(data=(1, 3, size, size))


def test_global_pool_is_the_fixed_pool_at_the_native_size():
    """DenseNet built for 64x64 (global pooling) computes the native net's function."""
    mx.random.seed(0)
    native = gluonres.get_model("densenet121", classes=10)
    small = gluonres.get_model("densenet121", classes=10, input_size=64)
    assert [type(b).__name__ for b in native.features][-2:] == ["AvgPool2D", "Flatten"]
    assert [type(b).__name__ for b in small.features][-2:] == ["GlobalAvgPool2D", "Flatten"]
    assert list(native.collect_params()) == list(small.collect_params())
    native.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(-1, 1, shape=(1, 3, 224, 224))
    expected = native(x).asnumpy()
    small.initialize()
    small(mx.nd.zeros((1, 3, 64, 64)))  # completes the deferred shapes
    for a, b in zip(native.collect_params().values(), small.collect_params().values()):
        b.set_data(a.data())
    np.testing.assert_allclose(small(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    # AlexNet's first Dense shrinks with the input: 256x1x1 maps at 64, 256x6x6 at 224
    assert trainable_params(gluonres.get_model("alexnet", classes=10, input_size=64)) == \
        PARAMS_1000["alexnet"] - 990 * 4097 - 4096 * 256 * 35


def test_efficientnet_input_size_option():
    net = gluonres.get_model("efficientnet_b1", input_size=64)
    assert net.input_size == 64 and gluonres.summary(net).input_shape == (1, 3, 64, 64)
    assert trainable_params(net) == PARAMS_1000["efficientnet_b1"]
