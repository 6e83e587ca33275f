"""Engines for exported models (issue 19, item 5): ONNX Runtime and OpenVINO against mxnet
within 1e-4, the same predictions, the ONNX file through the runtime's untrusted-input
checks, the one-line errors, and the engine comparison (``gluonres bench --export``)."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import deploy
from gluonres.cli import deploy as cli_deploy
from gluonres.data.preprocess import Preprocess
from gluonres.deploy import engines, runtime
from gluonres.errors import CorruptFileError, GluonresError
from gluonres.machine import threads
from gluonres.measure import engines as compare_engines

from helpers import BLOCK_MODEL_CODE, REPO, assert_clean_error, last_json, resnet8


OTHERS = ("onnxruntime", "openvino")
PREPROCESS = Preprocess(mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3))
CLASSES = [f"class{i}" for i in range(10)]


def randomized(net, seed=0):
    """Every parameter random, BatchNorm statistics included: an engine that mishandled
    any of them (e.g. ignored the running variance) would show in the logits."""
    mx.random.seed(seed)
    net.initialize(mx.init.MSRAPrelu(slope=0))
    rng = np.random.RandomState(seed)
    for name, p in net.collect_params().items():
        if name.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif name.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.normal(0, 0.1, p.shape)))
    return net


def installed(engine):
    """Skip unless ``engine`` imports here (CI installs both with the [test] extra)."""
    pytest.importorskip(engine)
    return engine


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """ResNet-8 (option A: the ONNX graph computes its zero channels' shape) exported
    with and without the ONNX file."""
    root = tmp_path_factory.mktemp("engines")
    net = randomized(resnet8())
    for name, onnx in (("onnx", True), ("plain", False)):
        deploy.export(net, str(root / name), preprocess=PREPROCESS, classes=CLASSES,
                      onnx=onnx)
    return {"onnx": str(root / "onnx"), "plain": str(root / "plain")}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.RandomState(1)
    paths = []
    for i in range(5):  # more than nothing, fewer than a batch: one forward call per engine
        path = str(folder / f"{i}.png")
        assert cv2.imwrite(path, rng.randint(0, 256, (32, 32, 3), dtype=np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def copy(exports, tmp_path):
    """A copy of the ONNX export to tamper with."""
    folder = str(tmp_path / "copy")
    shutil.copytree(exports["onnx"], folder)
    return folder


def manifest_of(folder):
    with open(os.path.join(folder, runtime.MANIFEST)) as f:
        return json.load(f)


def forge(folder, manifest):
    """Write ``manifest`` with sha256 entries matching its files, as a forger would."""
    manifest["sha256"] = {n: runtime.sha256_of(os.path.join(folder, n))
                          for n in manifest["files"].values()
                          if os.path.isfile(os.path.join(folder, n))}
    with open(os.path.join(folder, runtime.MANIFEST), "w") as f:
        json.dump(manifest, f)


def edit_onnx(folder, change):
    """Apply ``change`` to the export's ONNX model, save it and forge the manifest."""
    import onnx
    m = manifest_of(folder)
    path = os.path.join(folder, m["files"]["onnx"])
    model = onnx.load(path)
    change(model)
    onnx.save(model, path)
    forge(folder, m)


# ------------------------------------------------------------------------- the outputs
@pytest.mark.parametrize("engine", OTHERS)
def test_engine_logits_equal_mxnet(exports, engine):
    installed(engine)
    mxnet, other = engines.load(exports["onnx"]), engines.load(exports["onnx"], engine)
    assert other.engine == engine and other.net is None
    for batch in (1, 5, 1):  # OpenVINO compiles per batch size: back to one it reuses
        x = np.random.RandomState(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
        expected = mxnet.forward(x)
        assert 1 < np.abs(expected).max() < 100  # logits of a scale where 1e-4 means something
        np.testing.assert_allclose(other.forward(x), expected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(other.forward(mx.nd.array(x)), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("engine", OTHERS)
def test_predict_is_the_same_on_every_engine(exports, images, engine, cli):
    """The same preprocessing and output: classes and top-k order identical."""
    installed(engine)
    ours = engines.load(exports["onnx"], engine).predict(images, top_k=10)
    theirs = runtime.load_exported(exports["onnx"]).predict(images, top_k=10)
    assert [[t["class"] for t in p["top_k"]] for p in ours] == \
        [[t["class"] for t in p["top_k"]] for p in theirs]
    np.testing.assert_allclose([[t["probability"] for t in p["top_k"]] for p in ours],
                               [[t["probability"] for t in p["top_k"]] for p in theirs],
                               rtol=0, atol=1e-5)
    proc = cli("predict", exports["onnx"], *images, "--top-k", 3, "--engine", engine, "--json")
    record = last_json(proc)
    assert proc.returncode == 0 and record["engine"] == engine
    assert [[t["class"] for t in p["top_k"]] for p in record["predictions"]] == \
        [[t["class"] for t in p["top_k"][:3]] for p in theirs]


def test_a_wrong_engine_would_be_caught(exports, images, monkeypatch):
    """Control for the two tests above: logits off by 2e-4 fail the tolerance, and a
    forward pass that permutes the logits changes the predicted classes."""
    exported = engines.load(exports["onnx"])
    x = np.random.RandomState(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(exported.forward(x) + 2e-4, exported.forward(x), rtol=0,
                                   atol=1e-4)
    before = exported.predict(images, top_k=10)
    forward = exported.forward
    monkeypatch.setattr(exported, "forward", lambda x: forward(x)[:, ::-1])
    after = exported.predict(images, top_k=10)
    assert [t["class"] for t in after[0]["top_k"]] != [t["class"] for t in before[0]["top_k"]]


def test_engine_settings_match_mxnet_threads(exports):
    """ONNX Runtime on mxnet's thread count, its idle threads not spinning; OpenVINO on
    the same count, float32, not pinned."""
    installed("onnxruntime")
    session = engines.load(exports["onnx"], "onnxruntime")._run.session
    options = session.get_session_options()
    assert options.intra_op_num_threads == threads()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    installed("openvino")
    request = engines.load(exports["onnx"], "openvino")._run.requests[1]
    compiled = request.get_compiled_model()
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == threads()
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert compiled.get_property("ENABLE_CPU_PINNING") is False


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("engine", OTHERS)
def test_export_without_onnx_is_one_line(exports, images, engine, cli):
    assert_clean_error(cli("predict", exports["plain"], images[0], "--engine", engine),
                       "holds no ONNX file", f"--engine {engine}", "re-export with --onnx")
    assert_clean_error(cli("bench", "--export", exports["plain"], "--engine", engine),
                       "holds no ONNX file", "re-export with --onnx")


@pytest.mark.parametrize("engine", OTHERS)
def test_engine_not_installed_is_one_line(exports, images, engine, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, engine, None)  # import now raises ImportError
    assert_clean_error(cli("predict", exports["onnx"], images[0], "--engine", engine),
                       f"needs the {engine} package", "pip install 'gluonres[engines]'")


def test_missing_onnx_package_is_one_line(exports, images, cli, monkeypatch):
    """The ONNX file is checked with the onnx package before an engine parses it."""
    installed("onnxruntime")
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert_clean_error(cli("predict", exports["onnx"], images[0], "--engine", "onnxruntime"),
                       "needs the onnx package", "pip install 'gluonres[engines]'")


def test_other_bad_engine_arguments(exports, images, cli):
    assert_clean_error(cli("predict", exports["onnx"], images[0], "--int8", "--engine",
                           "onnxruntime"), "runs on mxnet only", "--engine mxnet")
    assert_clean_error(cli("bench", "--engine", "onnxruntime"), "add --export DIR")
    assert_clean_error(cli("bench", "resnet20_cifar", "--export", exports["onnx"]),
                       "--export compares engines on one export", "MODEL")
    with pytest.raises(GluonresError, match="unknown engine 'tvm'"):
        engines.load(exports["onnx"], "tvm")
    with pytest.raises(GluonresError, match="unknown engine 'tvm'"):
        compare_engines.compare(exports["onnx"], ["tvm"])


def test_cli_choices_are_the_engines():
    assert cli_deploy.ENGINES == engines.ENGINES


# ------------------------------------------------------------------------- the ONNX file
@pytest.mark.parametrize("engine", OTHERS)
def test_onnx_file_goes_through_the_runtime_checks(copy, engine):
    """A modified ONNX file fails its SHA-256, one outside the folder its confinement:
    the same checks (and messages) as the symbol and params."""
    installed(engine)
    m = manifest_of(copy)
    path = os.path.join(copy, m["files"]["onnx"])
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)
    with pytest.raises(CorruptFileError, match="does not match the sha256"):
        engines.load(copy, engine)
    outside = os.path.join(os.path.dirname(copy), "elsewhere.onnx")
    shutil.copy(path, outside)
    m["files"]["onnx"] = "../elsewhere.onnx"
    m["sha256"]["../elsewhere.onnx"] = runtime.sha256_of(outside)
    with open(os.path.join(copy, runtime.MANIFEST), "w") as f:
        json.dump(m, f)
    with pytest.raises(CorruptFileError, match="outside the export folder"):
        engines.load(copy, engine)


def test_engines_get_the_checked_bytes_not_the_path(copy, monkeypatch):
    """The ONNX file is read once: what the engine parses is what matched the SHA-256."""
    installed("onnxruntime")
    seen = []
    session = runtime.onnx_session
    monkeypatch.setattr(runtime, "onnx_session", lambda model: seen.append(model) or
                        session(model))
    engines.load(copy, "onnxruntime")
    with open(os.path.join(copy, manifest_of(copy)["files"]["onnx"]), "rb") as f:
        assert seen == [f.read()]


def _relu_to_leaky(model):
    next(n for n in model.graph.node if n.op_type == "Relu").op_type = "LeakyRelu"


def _external(model):
    import onnx
    t = model.graph.initializer[0]
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")


def _custom_domain(model):
    model.graph.node[0].domain = "com.microsoft"


def _second_input(model):
    import onnx
    model.graph.input.append(onnx.helper.make_tensor_value_info(
        "other", onnx.TensorProto.FLOAT, [1, 3]))


@pytest.mark.parametrize("change, fragment", [
    (_relu_to_leaky, "operators that no gluonres export contains ('LeakyRelu')"),
    (_custom_domain, "('com.microsoft."),
    (_external, "stores tensors in other files"),
    (_second_input, "does not take a 32x32 RGB image"),
])
def test_onnx_graphs_gluonres_never_writes_are_refused(copy, images, change, fragment, cli):
    """Refused before an engine parses the file."""
    installed("onnxruntime")
    edit_onnx(copy, change)
    assert_clean_error(cli("predict", copy, images[0], "--engine", "onnxruntime"), fragment,
                       "re-export the model with --onnx")


@pytest.mark.parametrize("engine", OTHERS)
def test_output_must_fit_the_manifest(copy, images, engine, cli):
    """Five class names for ten logits: refused once the engine has inferred the output
    shape, before anything runs (onnx's inference cannot follow option A's shapes)."""
    installed(engine)
    m = manifest_of(copy)
    m["classes"] = m["classes"][:5]
    forge(copy, m)
    assert_clean_error(cli("predict", copy, images[0], "--engine", engine),
                       "outputs shape [None, 10]", "lists 5 classes")


def test_graph_element_limit_covers_the_onnx_file(copy, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("GLUONRES_MAX_GRAPH_ELEMENTS", "1000")
    with pytest.raises(CorruptFileError, match="GLUONRES_MAX_GRAPH_ELEMENTS"):
        engines.onnx_bytes(copy, manifest_of(copy))


@pytest.mark.slow
def test_the_onnx_operator_list_covers_the_exports(tmp_path):
    """ONNX_OPS holds what ``export --onnx`` writes for each family: option A / B / C,
    pre-activation, bottleneck, plain, the EfficientNet, LeNet, Inception, DenseNet."""
    import onnx
    cases = [("resnet20_cifar", {}), ("resnet20_cifar", {"shortcut": "B"}),
             ("resnet20_cifar", {"shortcut": "C"}), ("resnet20_cifar_v2", {}),
             ("plain20_cifar", {}), ("resnet50", {}), ("resnet50_v2", {}),
             ("efficientnet_b0", {}), ("lenet5", {}), ("inception_v3", {}),
             ("densenet121", {})]
    for i, (name, kwargs) in enumerate(cases):
        net = gluonres.get_model(name, **kwargs)
        net.initialize()
        path = deploy.export(net, str(tmp_path / str(i)), onnx=True)["onnx"]
        ops = {(n.domain, n.op_type) for n in onnx.load(path).graph.node}
        assert {d for d, _ in ops} == {""} and {op for _, op in ops} <= engines.ONNX_OPS, name
        with open(path, "rb") as f:
            engines.check_onnx(f.read(), path, [net.input_size] * 2)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("engine", OTHERS)
def test_predict_on_an_engine_needs_no_model_code(exports, images, engine):
    installed(engine)
    script = BLOCK_MODEL_CODE + textwrap.dedent(f"""
        from gluonres.cli import main
        sys.exit(main(["predict", {exports['onnx']!r}, {images[0]!r}, "--engine",
                       {engine!r}, "--json"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc)["engine"] == engine


# ------------------------------------------------------------------------- comparison
@pytest.fixture
def quick_machine(monkeypatch):
    """The record's machine description without its seconds of probing (one test keeps
    the real one)."""
    monkeypatch.setattr(compare_engines, "machine", lambda: {"omp_num_threads": threads()})


def test_comparison_names_the_fastest_engine(exports):
    record = compare_engines.compare(exports["onnx"], batch=4, repeats=1, warmup=1, iters=1)
    json.dumps(record)  # JSON-able as it is
    assert list(record["engines"]) == list(engines.ENGINES)
    for name, r in record["engines"].items():
        try:
            __import__(name)
        except ImportError:
            assert r["status"] == "skipped" and "gluonres[engines]" in r["note"]
            continue
        assert r["status"] == "ok" and r["check_passed"] and r["max_abs_diff"] <= 1e-4, name
        assert r["fwd_img_s"] > 0 and r["latency1_ms"] > 0 and len(r["samples"]) == 1
    assert record["engines"]["mxnet"]["max_abs_diff"] == 0
    fastest = record["engines"][record["fastest"]]
    assert fastest["check_passed"] and record["fastest_vs_mxnet"] == fastest["vs_mxnet"]
    assert fastest["fwd_img_s"] == max(r["fwd_img_s"] or 0 for r in record["engines"].values())
    assert record["failed_check"] == [] and record["machine"]["omp_num_threads"] == threads()


def test_comparison_skips_engines_an_export_cannot_run(exports, quick_machine):
    record = compare_engines.compare(exports["plain"], batch=2, repeats=1, warmup=0, iters=1)
    assert record["fastest"] == "mxnet" and record["fastest_vs_mxnet"] == 1
    for name in OTHERS:
        assert record["engines"][name]["status"] == "skipped"
        assert "re-export with --onnx" in record["engines"][name]["note"]
    assert "skipped" in compare_engines.table(record)


def test_an_engine_that_fails_the_check_is_loud_and_not_fastest(exports, quick_machine, cli, monkeypatch):
    """An engine off by 1e-3 is reported as failing, never as the fastest (even when it is),
    and the command warns and exits 1."""
    installed("onnxruntime")
    run = engines._OnnxRuntime.__call__
    monkeypatch.setattr(engines._OnnxRuntime, "__call__", lambda self, x: run(self, x) + 1e-3)
    record = compare_engines.compare(exports["onnx"], ["onnxruntime"], batch=2, repeats=1,
                                     warmup=0, iters=1)
    r = record["engines"]["onnxruntime"]
    assert r["status"] == "fails check" and not r["check_passed"]
    assert r["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2)
    assert record["failed_check"] == ["onnxruntime"] and record["fastest"] == "mxnet"
    r["fwd_img_s"] = 1e9  # a failing engine faster than all: still not named
    assert "FAILS CHECK" in compare_engines.table(record)
    proc = cli("bench", "--export", exports["onnx"], "--engine", "onnxruntime", "--batch", 2,
               "--repeats", 1, "--warmup", 0, "--iters", 1)
    assert proc.returncode == 1
    assert "onnxruntime fails the check and is not counted" in proc.stderr
    assert "FAILS CHECK" in proc.stdout and "fastest on this machine: mxnet" in proc.stdout


def test_bench_export_command(exports, quick_machine, cli, tmp_path):
    out = tmp_path / "engines.json"
    proc = cli("bench", "--export", exports["onnx"], "--batch", 3, "--repeats", 1,
               "--warmup", 0, "--iters", 1, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^fastest on this machine: (mxnet|onnxruntime|openvino) "
                     r"\(\d+\.\d\dx mxnet\)$", proc.stdout, re.M), proc.stdout
    assert "| mxnet | 1.9.1 | reference |" in proc.stdout
    record = json.loads(out.read_text())
    assert record["batch"] == 3 and record["command"].startswith("gluonres bench --export")
    assert (tmp_path / "engines.md").read_text().strip() == proc.stdout.strip()
    proc = cli("bench", "--export", exports["onnx"], "--engine", "mxnet", "--batch", 2,
               "--repeats", 1, "--warmup", 0, "--iters", 1, "--json")
    assert list(last_json(proc)["engines"]) == ["mxnet"]
