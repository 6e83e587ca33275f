"""Option A against the public reference implementation's trained weights."""
import json
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import data, io
from gluonres.analysis import evaluation
from gluonres.data.preprocess import REFERENCE

from helpers import shared_path


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("depth,accuracy", [(20, 0.8103), (56, 0.8320)])
def test_reference_weights_reproduce_logits_and_accuracy(depth, accuracy, cifar_root):
    weights = shared_path("reference", f"resnet{depth}_optionA_weights.npz")
    expected = np.load(shared_path("reference", f"resnet{depth}_optionA_expected.npz"))
    net = gluonres.get_model(f"resnet{depth}_cifar")
    meta = io.load_weights(net, str(weights))
    preprocess = io.preprocess_of(meta)
    assert preprocess.mean == REFERENCE.mean and preprocess.std == REFERENCE.std
    test = data.image_folder(cifar_root, "test")
    first = mx.nd.stack(*[test[i][0] for i in range(256)])
    np.testing.assert_allclose(net(preprocess(first)).asnumpy(), expected["logits_first256"],
                               atol=1e-4, rtol=0)
    net.hybridize(static_alloc=True, static_shape=True)
    result = evaluation.evaluate(net, test, preprocess, progress=False)
    assert result["accuracy"] == pytest.approx(float(expected["accuracy"]), abs=5e-5)
    assert result["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert (result["predictions"] == expected["predictions"]).mean() > 0.999


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.subprocess
def test_evaluate_cli_accepts_reference_npz(cifar_root, tmp_path):
    weights = shared_path("reference", "resnet20_optionA_weights.npz")
    out = subprocess.run(
        [sys.executable, "-m", "gluonres", "evaluate", "resnet20_cifar", "--weights",
         str(weights), "--data", cifar_root, "--json", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["accuracy"] == pytest.approx(0.8103, abs=5e-5)
    assert set(record["per_class"]) == {"airplane", "automobile", "bird", "cat", "deer",
                                        "dog", "frog", "horse", "ship", "truck"}
    assert (tmp_path / "confusion.png").stat().st_size > 0


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.subprocess
def test_evaluate_cli_accepts_our_params(cifar_root, tmp_path):
    """Our own .params carry their normalisation; evaluate applies it."""
    net = gluonres.get_model("resnet20_cifar")
    io.load_weights(net, str(shared_path("reference", "resnet20_optionA_weights.npz")))
    ours = tmp_path / "resnet20.params"
    io.save_weights(net, str(ours), meta={"model": "resnet20_cifar",
                                          "preprocess": REFERENCE.to_dict()})
    out = subprocess.run(
        [sys.executable, "-m", "gluonres", "evaluate", "resnet20_cifar", "--weights", str(ours),
         "--data", cifar_root, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1])["accuracy"] == pytest.approx(0.8103, abs=5e-5)
