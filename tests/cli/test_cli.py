"""The command-line contract: --json last line, one-line errors with exit code 2."""
import json

import mxnet as mx
import pytest

import gluonres
from gluonres import io

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
