"""The committed training record: its weights still give the accuracy it claims."""
import json

import pytest

import gluonres
from gluonres import data, io
from gluonres.analysis import evaluation

from helpers import REPO


RESULTS = REPO / "results"
RECORD = "resnet20_cifar-cifar10jpg"


@pytest.mark.slow
def test_recorded_cifar_run_meets_its_target_and_reproduces(cifar_root):
    record = json.loads((RESULTS / f"{RECORD}.json").read_text())
    assert record["model"] == "resnet20_cifar"
    assert record["data"]["splits"] == {"train": 50000, "test": 10000}
    assert record["test_accuracy"] >= 0.860  # the training issue's target
    assert record["epochs"][-1]["test_error_pct"] == pytest.approx(
        100 * (1 - record["test_accuracy"]), abs=1e-6)
    net = gluonres.get_model("resnet20_cifar")
    meta = io.load_weights(net, str(RESULTS / "weights" / f"{RECORD}.params"))
    net.hybridize(static_alloc=True, static_shape=True)
    result = evaluation.evaluate(net, data.image_folder(cifar_root, "test"),
                                 io.preprocess_of(meta), progress=False)
    assert result["accuracy"] == pytest.approx(record["test_accuracy"], abs=5e-5)
