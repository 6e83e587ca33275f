"""The weights shipped in gluonres/pretrained: their cards, their integrity, and the test
accuracy each card states, reproduced on the shared CIFAR-10."""
import json
import shutil

import pytest

import gluonres
from gluonres import data, pretrained
from gluonres._files import sha256_of
from gluonres.analysis import evaluation
from gluonres.data import JPEG_CAVEAT
from gluonres.errors import CorruptFileError, GluonresError

from helpers import assert_clean_error

SHIPPED = pretrained.names()


def test_the_promised_weights_are_shipped_and_listed():
    assert {"resnet20_cifar", "resnet56_cifar"} <= set(SHIPPED)
    assert gluonres.list_models(pretrained=True) == SHIPPED
    assert gluonres.list_models("resnet56*", pretrained=True) == ["resnet56_cifar"]


@pytest.mark.parametrize("name", SHIPPED)
def test_card_describes_its_file(name):
    card = pretrained.card(name)
    assert set(pretrained.CARD_FIELDS) <= set(card)
    assert card["model"] == name and card["file"] == f"{name}.params"
    assert sha256_of(pretrained.weights_path(name, verify=False)) == card["sha256"]
    assert card["data"]["caveat"] == JPEG_CAVEAT
    assert card["command"].startswith(f"gluonres train {name} ")
    assert 0.5 < card["test_accuracy"] < 1 and card["test_images"] == 10000
    net = gluonres.get_model(name, pretrained=True)
    assert net.pretrained_card == card
    assert net.classes == len(card["classes"])


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_reproduce_their_card(name, cifar_root):
    """The card's accuracy, on the same 10,000 test images, with the preprocessing the
    network carries (no flags); up to 10 images may flip between CPU kernels."""
    net = gluonres.get_model(name, pretrained=True)
    net.hybridize(static_alloc=True, static_shape=True)
    test = data.image_folder(cifar_root, "test")
    result = evaluation.evaluate(net, test, net.preprocess, progress=False)
    assert len(result["predictions"]) == net.pretrained_card["test_images"]
    assert result["accuracy"] == pytest.approx(net.pretrained_card["test_accuracy"],
                                               abs=0.001)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped folder copied, with gluonres reading the copy."""
    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained.FOLDER, folder,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(pretrained, "FOLDER", str(folder))
    return folder


def test_altered_weights_are_refused(shipped_copy):
    params = shipped_copy / "resnet20_cifar.params"
    raw = bytearray(params.read_bytes())
    raw[-1] ^= 1
    params.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="does not match the SHA-256.*reinstall"):
        gluonres.get_model("resnet20_cifar", pretrained=True)


def test_a_card_cannot_point_outside_its_folder(shipped_copy, tmp_path):
    card = json.loads((shipped_copy / "resnet20_cifar.json").read_text())
    shutil.copy(shipped_copy / "resnet20_cifar.params", tmp_path / "elsewhere.params")
    card["file"] = "../elsewhere.params"
    (shipped_copy / "resnet20_cifar.json").write_text(json.dumps(card))
    with pytest.raises(CorruptFileError, match="missing; reinstall"):
        pretrained.weights_path("resnet20_cifar")


def test_unshipped_and_mismatched_requests_name_the_fix():
    with pytest.raises(GluonresError, match="no pretrained weights are shipped for "
                                            "'resnet110_cifar' .*gluonres train"):
        gluonres.get_model("resnet110_cifar", pretrained=True)
    with pytest.raises(GluonresError, match=r"10 classes, not 2.*reset_classifier\(2\)"):
        gluonres.get_model("resnet20_cifar", pretrained=True, classes=2)
    with pytest.raises(GluonresError, match="weights are for 3-channel images, not 1; "
                                            "load them without in_channels="):
        gluonres.get_model("resnet20_cifar", pretrained=True, in_channels=1)


def test_cli_lists_the_shipped_weights(cli):
    proc = cli("list", "--pretrained")
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == SHIPPED
    for line, name in zip(lines, SHIPPED):
        assert f"{100 * pretrained.card(name)['test_accuracy']:.2f}%" in line
    proc = cli("evaluate", "resnet110_cifar", "--weights", "pretrained", "--data", "digits")
    assert_clean_error(proc, "no pretrained weights are shipped for 'resnet110_cifar'")
