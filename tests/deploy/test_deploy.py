"""Deployment: export/reload round trip, manifest, predict without model code, ONNX, INT8,
and the bad inputs that must fail cleanly without overwriting anything."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import data, deploy, io
from gluonres.data.preprocess import REFERENCE, Preprocess
from gluonres.deploy import runtime
from gluonres.errors import GluonresError
from gluonres.models.init import he_initialize

from helpers import (BLOCK_MODEL_CODE, REPO, assert_clean_error, last_json, run, shared_path,
                     snapshot)


ROOT = str(REPO)


def randomized(name, seed=0, **options):
    """A model with every parameter random, BatchNorm statistics included."""
    net = gluonres.get_model(name, **options)
    mx.random.seed(seed)
    net.initialize(mx.init.MSRAPrelu(slope=0))
    rng = np.random.RandomState(seed)
    for pname, p in net.collect_params().items():
        if pname.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif pname.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.normal(0, 0.1, p.shape)))
    return net


def damped(name, factor=0.2):
    """:func:`randomized`, with the last BatchNorm of every residual branch scaled down (as
    zero-gamma initialisation does), so that logits stay O(1) through deep networks and an
    absolute tolerance means something."""
    net = randomized(name)
    params = net.collect_params()
    last = {}
    for pname in params:
        m = re.fullmatch(r"(stage\d+_unit\d+_)conv\d_bn_gamma", pname)
        if m:
            last[m.group(1)] = max(last.get(m.group(1), ""), pname)
    for pname in last.values():
        params[pname].set_data(params[pname].data() * factor)
    return net


def write_image(path, array, mode):
    from PIL import Image
    Image.fromarray(array, mode).save(path)
    return str(path)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """resnet20_cifar with random weights and an explicit normalisation."""
    folder = tmp_path_factory.mktemp("export") / "r20"
    net = randomized("resnet20_cifar")
    deploy.export(net, str(folder), preprocess=Preprocess(mean=(0.5, 0.4, 0.3),
                                                          std=(0.25, 0.2, 0.3)))
    return str(folder)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rgb = np.random.RandomState(0).randint(0, 256, (32, 32, 4), dtype=np.uint8)
    return {"rgb": write_image(folder / "rgb.png", rgb[..., :3], "RGB"),
            "gray": write_image(folder / "gray.png", rgb[..., 0], "L"),
            "rgba": write_image(folder / "rgba.png", rgb, "RGBA"),
            "big": write_image(folder / "big.png", np.zeros((48, 64, 3), np.uint8), "RGB"),
            "rgb_array": rgb[..., :3]}


# --------------------------------------------------------------------------- round trip
@pytest.mark.slow
@pytest.mark.subprocess
def test_export_reloads_bit_for_bit_in_a_fresh_process(tmp_path):
    """Export three models here; reload them in a new process that cannot import the
    model code; the outputs equal the in-memory hybridized outputs exactly."""
    cases = {"resnet20_cifar": 2, "resnet56_cifar_v2": 2, "resnet50": 1}
    expected = {}
    for name, batch in cases.items():
        net = randomized(name)
        assert not net._active  # export hybridizes and traces by itself
        size = net.input_size
        deploy.export(net, str(tmp_path / name), input_shape=(batch, 3, size, size))
        x = mx.nd.array(np.random.RandomState(1).normal(size=(batch, 3, size, size)))
        expected[name] = (x.asnumpy(), net(x).asnumpy())
        np.save(tmp_path / f"{name}-x.npy", expected[name][0])
    script = BLOCK_MODEL_CODE + textwrap.dedent(f"""
        import mxnet as mx, numpy as np
        from gluonres.deploy import runtime
        for name in {list(cases)!r}:
            folder = {str(tmp_path)!r} + "/" + name
            exported = runtime.load_exported(folder)
            x = mx.nd.array(np.load(folder + "-x.npy"))
            np.save(folder + "-y.npy", exported.net(x).asnumpy())
        assert not any(m.startswith("gluonres.models") for m in sys.modules)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    for name, (_, y) in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}-y.npy"), y, err_msg=name)


def test_manifest_describes_the_export(small_export):
    m = json.load(open(os.path.join(small_export, runtime.MANIFEST)))
    assert m["format"] == runtime.FORMAT and m["model"] == "resnet20_cifar"
    assert m["input"] == {"name": "data", "shape": [1, 3, 32, 32], "layout": "NCHW",
                          "dtype": "float32"}
    assert m["output"]["shape"] == [1, 10] and m["output"]["kind"] == "logits"
    assert m["image"]["size"] == [32, 32] and m["image"]["resize"] is None
    assert m["preprocess"]["mean"] == [0.5, 0.4, 0.3]
    assert m["preprocess"]["std"] == [0.25, 0.2, 0.3]
    assert m["classes"] == list(data.CIFAR10_CLASSES)
    assert m["versions"]["mxnet"] == mx.__version__
    assert m["versions"]["gluonres"] == gluonres.__version__
    listed = set(m["files"].values())
    assert listed == {"resnet20_cifar-symbol.json", "resnet20_cifar-0000.params"}
    assert set(m["sha256"]) == listed
    for fname, digest in m["sha256"].items():
        assert runtime.sha256_of(os.path.join(small_export, fname)) == digest
    assert not [f for f in os.listdir(small_export) if f.startswith(".")]  # no staging left


def test_per_pixel_mean_travels_as_a_file(tmp_path):
    mean_image = np.random.RandomState(0).uniform(0, 1, (3, 32, 32)).astype(np.float32)
    net = randomized("resnet20_cifar")
    preprocess = Preprocess(mean_image=mean_image)
    paths = deploy.export(net, str(tmp_path / "e"), preprocess=preprocess)
    m = runtime.read_manifest(str(tmp_path / "e"))
    assert m["preprocess"]["mean_image"] == "mean.npy" and m["preprocess"]["mean"] is None
    assert "mean.npy" in m["sha256"] and paths["mean_image"].endswith("mean.npy")
    loaded = runtime.load_exported(str(tmp_path / "e"))
    np.testing.assert_array_equal(loaded.preprocess.mean_image, mean_image)
    batch = mx.nd.array(np.random.RandomState(1).randint(0, 256, (2, 32, 32, 3)), dtype="uint8")
    np.testing.assert_array_equal(loaded.net(loaded.preprocess(batch)).asnumpy(),
                                  net(preprocess(batch)).asnumpy())


def test_export_uses_weights_metadata(tmp_path, cli):
    net = randomized("resnet20_cifar", seed=3)
    weights = tmp_path / "w.params"
    names = [f"c{i}" for i in range(10)]
    io.save_weights(net, str(weights), meta={"model": "resnet20_cifar", "classes": names,
                                             "preprocess": REFERENCE.to_dict()})
    record = last_json(cli("export", "resnet20_cifar", "--weights", weights, "--out",
                           tmp_path / "e", "--batch", 4, "--json"))
    assert set(record) == {"model", "symbol", "params", "manifest"}
    m = runtime.read_manifest(str(tmp_path / "e"))
    assert m["classes"] == names and m["input"]["shape"] == [4, 3, 32, 32]
    assert m["preprocess"]["mean"] == list(REFERENCE.mean)
    assert m["source"]["weights_sha256"] == runtime.sha256_of(str(weights))


def test_export_builds_the_head_the_weights_were_trained_with(tmp_path, cli):
    """A run on a 4-class folder saves a 4-class head: export reads it, as evaluate does."""
    net = gluonres.get_model("resnet20_cifar", classes=4)
    he_initialize(net, 0)
    weights = tmp_path / "w.params"
    io.save_weights(net, str(weights), meta={"model": "resnet20_cifar",
                                             "classes": ["a", "b", "c", "d"],
                                             "preprocess": REFERENCE.to_dict()})
    proc = cli("export", "resnet20_cifar", "--weights", weights, "--out", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr  # was: the 10-class model refused the weights
    assert runtime.read_manifest(str(tmp_path / "e"))["classes"] == ["a", "b", "c", "d"]
    assert runtime.load_exported(str(tmp_path / "e")).net(
        mx.nd.zeros((1, 3, 32, 32))).shape == (1, 4)


# --------------------------------------------------------------------------- predict
@pytest.mark.slow
@pytest.mark.subprocess
def test_predict_needs_no_model_code(small_export, images):
    """The CLI predict in a process where gluonres.models/registry/blocks cannot load."""
    script = BLOCK_MODEL_CODE + textwrap.dedent(f"""
        from gluonres.cli import main
        code = main(["predict", {small_export!r}, {images['rgb']!r}, "--top-k", "3", "--json"])
        assert not any(m.startswith("gluonres.models") for m in sys.modules)
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    record = last_json(proc)
    top = record["predictions"][0]["top_k"]
    assert [set(t) for t in top] == [{"class", "index", "probability"}] * 3
    # the same numbers as the network applied to the manifest's preprocessing by hand
    exported = runtime.load_exported(small_export)
    x = (images["rgb_array"].astype(np.float32) / 255 - [0.5, 0.4, 0.3]) / [0.25, 0.2, 0.3]
    logits = exported.net(mx.nd.array(x.transpose(2, 0, 1)[None])).asnumpy()[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert [t["index"] for t in top] == list(np.argsort(-probs)[:3])
    # what the user reads: the top-k order (above) and each probability to 1e-6; a
    # relative tolerance on a probability of 1e-11 compares the CPU kernels' rounding
    np.testing.assert_allclose([t["probability"] for t in top], np.sort(probs)[::-1][:3],
                               rtol=0, atol=1e-6)
    assert top[0]["class"] == data.CIFAR10_CLASSES[top[0]["index"]]


def test_grayscale_and_rgba_images_are_converted_to_rgb(small_export, images):
    exported = runtime.load_exported(small_export)
    rgb, gray, rgba = exported.load_images([images["rgb"], images["gray"], images["rgba"]])
    np.testing.assert_array_equal(rgba, rgb)  # alpha dropped
    np.testing.assert_array_equal(gray, np.repeat(images["rgb_array"][..., :1], 3, axis=2))
    out = exported.predict([images["gray"], images["rgba"]], top_k=1)
    assert len(out) == 2 and out[0]["top_k"][0]["probability"] > 0


def test_imagenet_size_images_are_resized_and_cropped():
    # weights that record no resize: the shorter side to the input size, as gluonres
    # training and evaluate resize (issue 17; it was 256 for 224); a recorded one is kept
    assert deploy.image_spec(224)["resize"]["shorter_side"] == 224
    assert deploy.image_spec(32)["resize"] is None
    spec = deploy.image_spec(224, 256)
    assert spec["resize"]["shorter_side"] == 256
    image = mx.nd.array(np.random.RandomState(0).randint(0, 256, (200, 300, 3)), dtype="uint8")
    assert runtime.fit_image(image, spec).shape == (224, 224, 3)


def test_class_names_fall_back_to_indices():
    net = gluonres.get_model("resnet20_cifar", classes=100)
    assert deploy.default_classes(net) == [str(i) for i in range(100)]
    assert deploy.default_classes(net, {"classes": ["a"] * 3}) == [str(i) for i in range(100)]
    assert deploy.default_classes(gluonres.get_model("resnet18"))[999] == "999"


@pytest.mark.slow
@pytest.mark.subprocess
def test_docs_plain_mxnet_snippet(small_export, images):
    """The few lines of plain MXNet in docs/deployment.md give gluonres predict's answer."""
    text = open(os.path.join(ROOT, "docs", "deployment.md")).read()
    code = re.search(r"tested by tests/deploy/test_deploy.py::test_docs_plain_mxnet_snippet -->\n"
                     r"```python\n(.*?)```", text, re.S).group(1)
    assert 'folder, image = "runs/r20", "cat.jpg"' in code
    code = code.replace('"runs/r20", "cat.jpg"', f"{small_export!r}, {images['rgb']!r}")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    label, prob = proc.stdout.split()
    best = runtime.load_exported(small_export).predict([images["rgb"]], 1)[0]["top_k"][0]
    assert label == best["class"]
    assert float(prob) == pytest.approx(best["probability"], abs=1e-5)


# --------------------------------------------------------------------------- ONNX
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet56_cifar", "resnet50"])
def test_onnx_matches_mxnet_with_dynamic_batch(name, tmp_path, capfd):
    pytest.importorskip("onnxruntime")
    net = damped(name)
    paths = deploy.export(net, str(tmp_path), onnx=True)
    capfd.readouterr()
    session = runtime.onnx_session(paths["onnx"])  # logs warnings and worse, ORT's default
    assert [i.name for i in session.get_inputs()] == ["data"]
    for batch in (1, 7):
        x = np.random.RandomState(batch).normal(
            size=(batch, 3, net.input_size, net.input_size)).astype(np.float32)
        ours, theirs = session.run(None, {"data": x})[0], net(mx.nd.array(x)).asnumpy()
        assert 1 < np.abs(theirs).max() < 100  # logits of a sensible scale
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    logged = capfd.readouterr().err
    assert "appears in graph inputs" not in logged and "[W:onnxruntime" not in logged, logged


def test_onnx_warning_check_can_fail(tmp_path, capfd):
    """Control for the test above: mx.onnx's raw output does make onnxruntime warn."""
    pytest.importorskip("onnxruntime")
    paths = deploy.export(randomized("resnet20_cifar"), str(tmp_path))
    raw = str(tmp_path / "raw.onnx")
    mx.onnx.export_model(paths["symbol"], paths["params"], [(1, 3, 32, 32)], [np.float32], raw)
    capfd.readouterr()
    runtime.onnx_session(raw)
    assert "appears in graph inputs" in capfd.readouterr().err


# --------------------------------------------------------------------------- INT8
@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.subprocess
def test_int8_export_reloads_in_new_processes(cifar_root, tmp_path):
    """Export with --int8 in one process, predict with the INT8 graph in another."""
    weights = shared_path("reference", "resnet20_optionA_weights.npz")
    folder = str(tmp_path / "q")
    record = last_json(run("export", "resnet20_cifar", "--weights", str(weights), "--out",
                           folder, "--int8", "--calib-data", cifar_root, "--calib-images",
                           "128", "--json"))
    assert {"int8_symbol", "int8_params"} <= set(record)
    m = runtime.read_manifest(folder)
    calib = m["int8"]["calibration"]
    assert calib["images"] == 128 and calib["split"] == "train" and calib["seed"] == 0
    test = os.path.join(cifar_root, "test")
    files = [os.path.join(test, c, sorted(os.listdir(os.path.join(test, c)))[i])
             for c in sorted(os.listdir(test)) for i in range(4)]
    int8 = last_json(run("predict", folder, *files, "--int8", "--top-k", "1", "--json"))
    fp32 = last_json(run("predict", folder, *files, "--top-k", "1", "--json"))
    assert int8["variant"] == "int8"
    top = lambda r: [p["top_k"][0]["index"] for p in r["predictions"]]  # noqa: E731
    agree = np.mean(np.equal(top(int8), top(fp32)))
    assert agree >= 0.9, (top(int8), top(fp32))
    # the quantized pair is an ordinary symbol/params pair: plain SymbolBlock.imports loads it
    plain = mx.gluon.SymbolBlock.imports(os.path.join(folder, m["files"]["int8_symbol"]),
                                         ["data"], os.path.join(folder, m["files"]["int8_params"]))
    exported = runtime.load_exported(folder, "int8")
    batch = exported.preprocess(mx.nd.array(exported.load_images(files[:8]), dtype="uint8"))
    np.testing.assert_array_equal(plain(batch).asnumpy(), exported.net(batch).asnumpy())
    dtypes = {p.dtype for p in plain.collect_params().values()}
    assert np.int8 in dtypes  # weights really are int8


def test_onednn_rewrite_keeps_outputs_and_enables_fusion():
    from gluonres.deploy import quantize
    net = randomized("resnet20_cifar")
    sym = net(mx.sym.var("data"))
    rewritten = quantize.onednn_symbol(sym)
    ops = lambda s: [n["op"] for n in json.loads(s.tojson())["nodes"]]  # noqa: E731
    assert "relu" not in ops(rewritten)
    assert ops(quantize.onednn_symbol(mx.sym.relu(mx.sym.var("x")))) == ["null", "Activation"]
    assert ops(rewritten).count("Activation") == 19  # stem + 2 per unit, whichever op was used
    x = mx.nd.random.normal(shape=(2, 3, 32, 32))
    outs = [mx.gluon.SymbolBlock(s, [mx.sym.var("data")], params=net.collect_params())(x)
            for s in (sym, rewritten)]
    np.testing.assert_array_equal(outs[0].asnumpy(), outs[1].asnumpy())
    fused = json.loads(quantize.fuse_fp32(sym).tojson())["nodes"]
    assert any(n.get("attrs", {}).get("with_act") == "true" for n in fused)


@pytest.mark.parametrize("name, options, shortcuts", [
    ("resnet20_cifar", {}, 2), ("resnet18", {"shortcut": "A"}, 3),
    ("resnet164_cifar", {}, 3),  # a bottleneck's first unit: stride 1, channels padded
    ("plain20_cifar", {}, 0), ("resnet18", {}, 0)])
def test_option_a_shortcuts_become_exact_identity_convolutions(name, options, shortcuts):
    """The INT8 path writes each zero-padding shortcut as a strided 1x1 convolution that
    embeds the identity: the float outputs are bit-identical, and the quantized graph
    then runs in int8 from the stem to the classifier (no dequantize, slice or concat)."""
    from gluonres.deploy import quantize
    net = randomized(name, **options)
    sym = net(mx.sym.var("data"))
    x = mx.nd.random.normal(shape=(2, 3, 32, 32))
    params = {k: p.data() for k, p in net.collect_params().items()}
    rewritten, params2, count = quantize.zero_pads_as_convs(sym, params, x.shape)
    assert count == shortcuts
    ops = lambda s: [n["op"] for n in json.loads(s.tojson())["nodes"]]  # noqa: E731
    assert ops(rewritten).count("Convolution") == ops(sym).count("Convolution") + shortcuts
    block = mx.gluon.SymbolBlock(rewritten, [mx.sym.var("data")])
    block.collect_params().load_dict(params2, mx.cpu())
    np.testing.assert_array_equal(block(x).asnumpy(), net(x).asnumpy())
    if shortcuts:
        assert not {"slice", "Concat", "broadcast_axis"} & set(ops(rewritten))
        images = np.random.RandomState(0).randint(0, 256, (8, 32, 32, 3), np.uint8)
        args = {k: v for k, v in params.items() if k in sym.list_arguments()}
        auxs = {k: v for k, v in params.items() if k in sym.list_auxiliary_states()}
        qsym, _, _ = quantize.quantize(sym, args, auxs, x.tile((4, 1, 1, 1)),
                                       quantize.Calibration(images, {"data": "random"}))
        assert not {"_contrib_dequantize", "slice", "Concat"} & set(ops(qsym))


def test_int8_report_fills_its_docs_slot_only(tmp_path):
    from gluonres.measure import int8
    record = {"model": "m", "test_images": 10, "fp32_accuracy": 0.9, "fp32_fused_accuracy": 0.9,
              "int8_accuracy": 0.8, "accuracy_drop_points": 10.0, "fp32_img_s": 100.0,
              "fp32_fused_img_s": 150.0, "int8_img_s": 200.0, "int8_vs_fp32": 2.0,
              "int8_vs_fp32_fused": 4 / 3, "batch": 64, "repeats": 3, "weights": "w",
              "command": "gluonres int8-bench m",
              "calibration": {"images": 8, "data": "d", "split": "train", "seed": 0,
                              "selection": "uniform", "mode": "naive",
                              "quantized_dtype": "auto", "excluded": []},
              "machine": {"cpu": "c", "cores": 2, "omp_num_threads": "2",
                          "load_average": [0.5, 0.5, 0.5], "mxnet": "1.9.1"}}
    docs = tmp_path / "d.md"
    docs.write_text("intro\n<!-- int8-table: m -->\nold\n<!-- /int8-table: m -->\nend\n")
    paths = int8.write_report(record, str(tmp_path / "results"), docs=str(docs))
    text = docs.read_text()
    assert text.startswith("intro\n<!-- int8-table: m -->\n| m |") and "old" not in text
    assert text.endswith("<!-- /int8-table: m -->\nend\n")
    assert text.count("NOT met") == 2 and "2.00x" in text  # 10-point drop, 2x < 2.5x
    assert json.load(open(paths["json"]))["int8_img_s"] == 200.0
    with pytest.raises(GluonresError, match="no <!-- int8-table: other -->"):
        int8.docs_table_slot(str(docs), "other")


# --------------------------------------------------------------------------- bad input
def test_weights_of_another_model_keep_an_earlier_export(small_export, tmp_path, cli):
    folder = str(tmp_path / "e")
    shutil.copytree(small_export, folder)
    before = snapshot(folder)
    other = randomized("resnet32_cifar")
    weights = tmp_path / "r32.params"
    io.save_weights(other, str(weights), meta={"model": "resnet32_cifar",
                                               "preprocess": REFERENCE.to_dict()})
    proc = cli("export", "resnet20_cifar", "--weights", weights, "--out", folder)
    assert_clean_error(proc, "resnet32_cifar", "stage1_unit4_conv1_weight")
    assert snapshot(folder) == before


def test_failure_midway_keeps_an_earlier_export(small_export, tmp_path, monkeypatch):
    folder = str(tmp_path / "e")
    shutil.copytree(small_export, folder)
    before = snapshot(folder)

    def broken(*args, **kwargs):
        raise GluonresError("simulated failure after the graph was written")
    from gluonres.deploy import exporter
    monkeypatch.setattr(exporter, "export_onnx", broken)
    with pytest.raises(GluonresError, match="simulated"):
        deploy.export(randomized("resnet20_cifar", seed=5), folder, onnx=True,
                      preprocess=REFERENCE)
    assert snapshot(folder) == before  # no new symbol/params, no staging folder


def test_truncated_exported_params(small_export, tmp_path, images, cli):
    folder = str(tmp_path / "e")
    shutil.copytree(small_export, folder)
    params = os.path.join(folder, "resnet20_cifar-0000.params")
    with open(params, "r+b") as f:
        f.truncate(5000)
    assert_clean_error(cli("predict", folder, images["rgb"]),
                        "resnet20_cifar-0000.params", "does not match the sha256",
                        "re-export")
    assert os.path.getsize(params) == 5000


def test_truncated_params_with_a_matching_manifest(small_export, tmp_path, images, cli):
    """Even a manifest rewritten to match a truncated file gives a clean error."""
    folder = str(tmp_path / "e")
    shutil.copytree(small_export, folder)
    params = os.path.join(folder, "resnet20_cifar-0000.params")
    with open(params, "r+b") as f:
        f.truncate(5000)
    path = os.path.join(folder, runtime.MANIFEST)
    m = json.load(open(path))
    m["sha256"]["resnet20_cifar-0000.params"] = runtime.sha256_of(params)
    json.dump(m, open(path, "w"))
    assert_clean_error(cli("predict", folder, images["rgb"]),
                        "cannot load", "resnet20_cifar-0000.params", "re-export")


def test_manifest_sha256_mismatch(small_export, tmp_path, images, cli):
    folder = str(tmp_path / "e")
    shutil.copytree(small_export, folder)
    path = os.path.join(folder, runtime.MANIFEST)
    m = json.load(open(path))
    m["sha256"]["resnet20_cifar-symbol.json"] = "0" * 64
    json.dump(m, open(path, "w"))
    before = snapshot(folder)
    assert_clean_error(cli("predict", folder, images["rgb"]),
                        "resnet20_cifar-symbol.json", "does not match the sha256")
    assert snapshot(folder) == before


@pytest.mark.parametrize("case,fragments", [
    ("big", ["64x48 pixels", "takes 32x32 images", "resize the image to 32x32"]),
    ("not_an_image", ["not a readable image"]),
    ("missing", ["does not exist"]),
])
def test_bad_images(small_export, images, tmp_path, case, fragments, cli):
    paths = {"big": images["big"], "missing": str(tmp_path / "nothing.png")}
    if case == "not_an_image":
        paths[case] = str(tmp_path / "notes.png")
        open(paths[case], "w").write("not an image")
    assert_clean_error(cli("predict", small_export, paths[case]), *fragments)


def test_bad_export_folders(small_export, tmp_path, images, cli):
    assert_clean_error(cli("predict", str(tmp_path), images["rgb"]),
                        "holds no manifest.json")
    broken = str(tmp_path / "broken")
    shutil.copytree(small_export, broken)
    manifest = os.path.join(broken, runtime.MANIFEST)
    m = json.load(open(manifest))
    del m["sha256"]
    json.dump(m, open(manifest, "w"))
    assert_clean_error(cli("predict", broken, images["rgb"]), "lacks sha256", "re-export")
    open(manifest, "w").write("{not json")
    assert_clean_error(cli("predict", broken, images["rgb"]), "not readable JSON")
    assert_clean_error(cli("predict", small_export, images["rgb"], "--int8"),
                        "holds no int8 graph", "--int8")
    untrained = str(tmp_path / "untrained")
    assert cli("export", "resnet20_cifar", "--out", untrained).returncode == 0
    assert_clean_error(cli("predict", untrained, images["rgb"]),
                        "records no input normalisation", "--weights")


def test_int8_needs_calibration_data(tmp_path, cli):
    assert_clean_error(cli("export", "resnet20_cifar", "--out", tmp_path / "e", "--int8"),
                        "--int8 needs --calib-data")
    assert_clean_error(cli("export", "resnet20_cifar", "--out", str(tmp_path / "e"), "--int8",
                            "--calib-data", str(tmp_path / "nowhere"), "--mean", "0", "0",
                            "0"), "does not exist")
    assert not (tmp_path / "e").exists()


def test_a_shortcut_whose_parts_are_read_elsewhere_is_left_alone():
    """Rewriting would drop the concat another op reads: the graph is kept as it is."""
    from gluonres.blocks import ZeroPadShortcut
    from gluonres.deploy import quantize
    block = ZeroPadShortcut(4, 8, 2, prefix="pad_")
    out = block(mx.sym.var("data"))
    concat = out.get_internals()["pad_concat0_output"]
    both = mx.sym.Group([out, mx.sym.sum(concat)])
    _, _, count = quantize.zero_pads_as_convs(both, {}, (1, 4, 8, 8))
    assert count == 0
    _, _, count = quantize.zero_pads_as_convs(out, {}, (1, 4, 8, 8))
    assert count == 1
