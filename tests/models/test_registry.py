"""The registry: names, suggestions, the ModelSpec each model is registered with."""
import mxnet as mx
import pytest

import gluonres
from gluonres.errors import GluonresError, UnknownModelError
from gluonres.models import ModelInfo
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


def test_model_spec_is_known_without_building():
    spec = gluonres.model_spec("resnet110_cifar")
    assert (spec.family, spec.input_size, spec.classes, spec.warmup) == ("cifar", 32, 10, "error")
    assert gluonres.model_spec("resnet56_cifar_v2").warmup == "fixed"
    assert gluonres.model_spec("resnet56_cifar").warmup == "none"
    assert gluonres.model_spec("inception_v3").input_size == 299
    assert gluonres.model_spec("alexnet").sizable and not gluonres.model_spec("resnet50").sizable
    with pytest.raises(UnknownModelError, match="did you mean"):
        gluonres.model_spec("resnet20_cifr")


def test_recipe_takes_the_warmup_from_the_spec():
    from gluonres.train import recipe
    assert [recipe(n).warmup for n in ("resnet1202_cifar", "resnet110_cifar_v2", "resnet20_cifar",
                                       "not_registered")] == ["error", "fixed", "none", "none"]


def test_options_are_checked_against_the_spec():
    with pytest.raises(GluonresError, match="'input_size'.*resnet50 takes classes, preact"):
        gluonres.get_model("resnet50", input_size=64)  # a ResNet pools globally: no size
    assert gluonres.get_model("alexnet", input_size=64, classes=4).input_size == 64


def test_model_info_reads_what_a_net_was_built_as():
    info = gluonres.model_info(gluonres.get_model("resnet20_cifar", classes=7))
    assert info == ModelInfo("resnet20_cifar", 32, 7, 3)
    assert info.input_shape(4) == (4, 3, 32, 32)
    lenet = gluonres.model_info(gluonres.get_model("lenet5", in_channels=1))
    assert lenet.input_shape() == (1, 1, 32, 32)
    from gluonres.models.cifar import cifar_resnet  # built without the registry
    assert gluonres.model_info(cifar_resnet(8)) == ModelInfo("ResNet", 32, 10, 3)


def test_user_models_register_with_metadata(monkeypatch):
    from gluonres.models import registry
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # gone after the test

    @register_model(input_size=28, classes=2, options=("width",))
    def tiny_test_net(classes=2, width=4):
        from mxnet.gluon import nn
        net = nn.HybridSequential()
        net.add(nn.Dense(classes))
        return net

    assert gluonres.model_info(gluonres.get_model("tiny_test_net", width=8)).input_size == 28
    with pytest.raises(GluonresError, match="does not take the option 'depth'"):
        gluonres.get_model("tiny_test_net", depth=3)
