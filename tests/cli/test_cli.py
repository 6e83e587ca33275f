"""The command-line contract: --json last line, one-line errors with exit code 2."""
import argparse
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import io
from gluonres.cli._common import count_or_fraction

from helpers import assert_clean_error, last_json, run


@pytest.mark.slow
@pytest.mark.subprocess
def test_list_json():
    models = last_json(run("list", "--json"))["models"]
    assert models == gluonres.list_models()
    assert last_json(run("list", "plain*_cifar", "--json"))["models"] == [
        "plain110_cifar", "plain20_cifar", "plain32_cifar", "plain44_cifar", "plain56_cifar"]


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("name,params,size", [("resnet56_cifar", 853_018, 32),
                                              ("resnet50", 25_557_032, 224)])
def test_summary_json_at_default_size(name, params, size):
    record = last_json(run("summary", name, "--json"))
    assert record["params"] == params
    assert record["input_shape"] == [1, 3, size, size]
    assert record["macs"] == gluonres.summary(gluonres.get_model(name)).macs


@pytest.mark.slow
@pytest.mark.subprocess
def test_unknown_model_suggests_names():
    assert_clean_error(run("summary", "resnet56cifar", check=False), "unknown model",
                        "resnet56_cifar")


@pytest.mark.slow
@pytest.mark.subprocess
def test_weights_of_another_model_name_the_parameter(tmp_path):
    net = gluonres.get_model("resnet32_cifar")
    net.initialize()
    path = tmp_path / "r32.params"
    io.save_weights(net, str(path), meta={"model": "resnet32_cifar"})
    proc = run("export", "resnet20_cifar", "--weights", str(path), "--out", str(tmp_path / "x"),
               check=False)
    assert_clean_error(proc, "resnet32_cifar", "stage1_unit4_conv1_weight")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.subprocess
def test_truncated_params_file(tmp_path):
    net = gluonres.get_model("resnet20_cifar")
    net.initialize()
    path = tmp_path / "w.params"
    io.save_weights(net, str(path))
    path.write_bytes(path.read_bytes()[:5000])
    assert_clean_error(run("export", "resnet20_cifar", "--weights", str(path), "--out",
                            str(tmp_path / "x"), check=False), "truncated or corrupt")


@pytest.mark.slow
@pytest.mark.subprocess
def test_missing_data_folder(tmp_path):
    net = gluonres.get_model("resnet20_cifar")
    net.initialize()
    path = tmp_path / "w.params"
    io.save_weights(net, str(path), meta={"preprocess": {"mean": [0.5] * 3}})
    assert_clean_error(run("evaluate", "resnet20_cifar", "--weights", str(path), "--data",
                            str(tmp_path / "nowhere"), check=False), "does not exist")


@pytest.mark.slow
@pytest.mark.subprocess
def test_export_untrained_graph(tmp_path):
    record = last_json(run("export", "resnet20_cifar", "--out", str(tmp_path), "--json"))
    net = mx.gluon.SymbolBlock.imports(record["symbol"], ["data"], record["params"])
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 10)


@pytest.mark.slow
@pytest.mark.subprocess
def test_bench_smoke_json(tmp_path):
    """Shape of `gluonres bench --json`, not its timings: every variant ran, rates > 0."""
    out = tmp_path / "bench.json"
    record = last_json(run("bench", "resnet20_cifar", "--batch", "2", "--repeats", "1",
                           "--iters", "1", "--warmup", "0", "--peers-python",
                           str(tmp_path / "none"), "--out", str(out), "--json"))
    (model,) = record["models"]
    assert model["model"] == "resnet20_cifar"
    for key in ("hybrid_fwd_img_s", "imperative_fwd_img_s", "gluoncv_fwd_img_s",
                "onnxruntime_fwd_img_s", "int8_fwd_img_s", "hybrid_train_img_s",
                "imperative_train_img_s", "latency1_ms", "peak_fraction"):
        assert isinstance(model[key], float) and model[key] > 0, key
    for key in ("openvino_fwd_img_s", "torch_train_img_s"):  # no peer interpreter
        assert model[key] is None
    assert "make peers" in record["notes"]["peers"]
    assert record["gemm_gflops"] > 0
    assert json.loads(out.read_text())["models"][0]["model"] == "resnet20_cifar"
    assert "| resnet20_cifar |" in (tmp_path / "bench.md").read_text()


@pytest.mark.slow
@pytest.mark.subprocess
def test_bench_rejects_bad_batch():
    assert_clean_error(run("bench", "resnet20_cifar", "--batch", "0", check=False),
                        "batch")


def test_version_names_the_pinned_stack():
    proc = run("--version")
    assert proc.stdout.strip() == (f"gluonres {gluonres.__version__} (mxnet {mx.__version__}, "
                                   f"numpy {np.__version__})")


def test_a_prefix_of_a_registered_name_suggests_it_first():
    proc = run("summary", "resnet56", check=False)
    assert_clean_error(proc, "unknown model 'resnet56'", "did you mean resnet56_cifar,")


def test_dir_lists_the_public_api():
    names = dir(gluonres)
    assert set(gluonres.__all__) <= set(names)
    assert {"get_model", "list_models", "ResidualFactory"} <= set(names)


@pytest.mark.parametrize("text,value", [("20%", 0.2), ("0.2", 0.2), ("5000", 5000),
                                        ("12.5%", 0.125)])
def test_a_validation_split_is_a_count_a_fraction_or_a_percentage(text, value):
    assert count_or_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "-3", "150%", "100%", "2.5", "inf", "nan", "x%", ""])
def test_a_validation_split_that_is_none_of_them_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="percentage"):
        count_or_fraction(text)


@pytest.mark.subprocess
@pytest.mark.parametrize("verbose", [None, "1"])
def test_mxnets_own_progress_lines_stay_off_the_terminal(verbose):
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # a graph bound with oneDNN's subgraph backend, as INT8 calibration and the bench do
    code = ("import gluonres, mxnet as mx; x = mx.sym.var('data'); "
            "mx.sym.Convolution(x, num_filter=4, kernel=(3, 3)).simple_bind("
            "mx.cpu(), data=(1, 3, 8, 8))")
    env = {k: v for k, v in os.environ.items() if k != "MXNET_SUBGRAPH_VERBOSE"}
    env["MXNET_SUBGRAPH_BACKEND"] = "MKLDNN"
    if verbose:  # the user's own setting wins, and shows the check can fail
        env["MXNET_SUBGRAPH_VERBOSE"] = verbose
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": tests}, cwd=tests)
    assert proc.returncode == 0, proc.stderr
    assert ("Subgraph backend MKLDNN is activated" in proc.stderr) == bool(verbose)
