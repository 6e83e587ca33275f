"""The paper experiments: 2016 unit variants, every experiment at smoke scale, the records'
schema, the claims' logic, the run cache and the results page."""
import json
import os
import signal
import subprocess
import sys
import types

import mxnet as mx
import numpy as np
import pytest

import gluonres
from gluonres import experiments
from gluonres.blocks import ARRANGEMENTS, ResidualFactory
from gluonres.errors import GluonresError
from gluonres.experiments import (bottleneck, degradation, depth, identity, present, records,
                                  responses, runs, scales, shortcuts)
from gluonres.experiments.report import results_page

from gluonres.cli import main
from helpers import REPO


R20 = 269_722  # ResNet-20, option A, 10 classes (tests/test_models.py)


# ------------------------------------------------------------------ the 2016 variants
def _gate_params():
    """A 1x1 convolution with bias per unit, (in x out + out), over ResNet-20's units."""
    units = [(16, 16)] * 3 + [(16, 32)] + [(32, 32)] * 2 + [(32, 64)] + [(64, 64)] * 2
    return sum(cin * cout + cout for cin, cout in units)


def test_variant_parameter_counts():
    """Counted by hand: moving BN/ReLU keeps the count (full pre-activation trades the
    first units' BN for the head's), gates add a biased 1x1 conv per unit, option C a
    1x1 conv + BN per unit, scaling and dropout nothing."""
    gates = _gate_params()
    assert gates == 13_904
    projections = sum(cin * cout + 2 * cout for cin, cout in
                      [(16, 16)] * 3 + [(16, 32)] + [(32, 32)] * 2 + [(32, 64)] + [(64, 64)] * 2)
    expected = {"original": R20, "bn_after_add": R20, "relu_before_add": R20,
                "relu_preact": R20, "full_preact": R20, "constant scaling 0.5": R20,
                "exclusive gating, b_g=-6": R20 + gates,
                "shortcut-only gating, b_g=-6": R20 + gates,
                "1x1 conv shortcut": R20 + projections, "dropout shortcut 0.5": R20}
    assert identity.param_counts() == expected


@pytest.mark.parametrize("arrangement, layout", [
    ("original", ["conv", "BN", "ReLU", "conv", "BN", "add", "ReLU"]),
    ("bn_after_add", ["conv", "BN", "ReLU", "conv", "add", "BN", "ReLU"]),
    ("relu_before_add", ["conv", "BN", "ReLU", "conv", "BN", "ReLU", "add"]),
    ("relu_preact", ["ReLU", "conv", "BN", "ReLU", "conv", "BN", "add"]),
    ("full_preact", ["BN", "ReLU", "conv", "BN", "ReLU", "conv", "add"]),
])
def test_arrangement_layout(arrangement, layout):
    """The 2016 paper's Fig. 4 (a)-(e), read off the unit's graph."""
    assert identity.unit_layout(arrangement=arrangement) == layout


@pytest.mark.parametrize("options", [
    *[{"arrangement": a} for a in ARRANGEMENTS],
    *[{"shortcut_op": op} for op in ("scale", "exclusive_gate", "shortcut_gate")],
    {"shortcut_op": "scale", "shortcut_op_args": {"scale": 0.5, "branch_scale": 0.5}},
    {"arrangement": "full_preact", "shortcut": "C"},
])
@pytest.mark.parametrize("cin, stride", [(8, 2), (16, 1)])
def test_variants_hybridize_to_the_same_outputs(options, cin, stride):
    """Each variant, on a shape-keeping and a downsampling unit: the hybridized graph
    gives the imperative outputs."""
    mx.random.seed(0)
    unit = ResidualFactory(16, cin, stride=stride, **{"shortcut": "B", **options})
    unit.initialize(mx.init.Normal(0.1))
    x = mx.nd.random.normal(shape=(2, cin, 8, 8))
    with mx.autograd.predict_mode():
        ref = unit(x).asnumpy()
        unit.hybridize()
        out = unit(x).asnumpy()
    assert out.shape == (2, 16, 8 // stride, 8 // stride)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_shortcut_ops_compute_the_papers_formulas():
    """Fig. 2 (b)-(d): with a zero residual branch the unit outputs the weighted shortcut
    alone; the gates start nearly closed on F (b_g = -6)."""
    x = mx.nd.random.uniform(0.5, 1, shape=(1, 4, 4, 4))
    g = 1 / (1 + np.exp(6))  # sigmoid(W_g x + b_g) with W_g = 0, b_g = -6
    expected = {"scale": 0.5 * x, "shortcut_gate": (1 - g) * x,
                "exclusive_gate": (1 - g) * x, "dropout": x}  # dropout: inference
    for op, want in expected.items():
        # all weights 0: F = ReLU(BN(conv(...))) = ReLU(beta) = 0 ("relu_before_add")
        unit = ResidualFactory(4, 4, arrangement="relu_before_add", shortcut_op=op)
        unit.initialize(mx.init.Zero())
        if unit.combine.gate is not None:
            np.testing.assert_array_equal(unit.combine.gate.bias.data().asnumpy(), -6)
        np.testing.assert_allclose(unit(x).asnumpy(), want.asnumpy(), rtol=1e-5)


def test_variant_options_are_checked():
    with pytest.raises(GluonresError, match="arrangement must be one of"):
        gluonres.get_model("resnet20_cifar", arrangement="sideways")
    with pytest.raises(GluonresError, match="contradicts"):
        gluonres.get_model("resnet20_cifar_v2", arrangement="original")
    with pytest.raises(GluonresError, match="needs a shortcut"):
        gluonres.get_model("plain20_cifar", shortcut_op="scale")
    with pytest.raises(GluonresError, match="shortcut='C'"):
        gluonres.get_model("resnet20_cifar", shortcut_op="conv")


def test_shortcut_passes_the_gradient_only_without_a_relu_after_the_addition():
    """2016 Eqs. 4-5: the pre-activation unit's input gradient is g plus the plain
    layers'; the 2015 unit's ReLU after the addition stops it at about half the outputs."""
    pre = degradation.shortcut_gradient("full_preact")
    orig = degradation.shortcut_gradient("original")
    assert pre["off"] < 1e-4
    assert orig["off"] > 0.1
    assert 0.3 < orig["stopped"] < 0.7
    assert 0.05 < pre["plain_ratio"] < 2


def test_zero_pad_example():
    x, y = shortcuts.zero_pad_example()
    assert y.shape == (1, 4, 2, 2)
    np.testing.assert_array_equal(y[0, 1:3], x[0, :, ::2, ::2])
    assert not y[0, 0].any() and not y[0, 3].any()


def test_shortcut_option_counts():
    rows = {(r["model"], r["option"]): r for r in shortcuts.counts(("resnet20_cifar",))}
    assert rows["resnet20_cifar", "A"]["params"] == R20
    assert rows["resnet20_cifar", "A"]["shortcut_params"] == 0
    # B: a 1x1 conv + BN where the shape changes (16->32, 32->64)
    assert rows["resnet20_cifar", "B"]["shortcut_params"] == 16 * 32 + 64 + 32 * 64 + 128
    assert rows["resnet20_cifar", "B"]["params"] == R20 + 2752
    assert rows["resnet20_cifar", "C"]["macs"] > rows["resnet20_cifar", "B"]["macs"] \
        > rows["resnet20_cifar", "A"]["macs"]


# ------------------------------------------------------------------ data and claims
def test_balanced_subset_is_even_seeded_and_nested():
    labels = np.repeat(np.arange(10), 100)[np.random.default_rng(1).permutation(1000)]
    small = gluonres.data.balanced_subset(labels, 200)
    big = gluonres.data.balanced_subset(labels, 500)
    assert np.bincount(labels[small]).tolist() == [20] * 10
    assert np.bincount(labels[big]).tolist() == [50] * 10
    assert set(small) <= set(big)
    assert np.array_equal(small, gluonres.data.balanced_subset(labels, 200))
    assert not np.array_equal(small, gluonres.data.balanced_subset(labels, 200, seed=1))


def test_data_comes_from_the_caller_or_the_environment(monkeypatch):
    """No place for real data is assumed: the data given, else the scale's own (digits at
    smoke), else $GLUONRES_DATA, else an error naming both fixes."""
    smoke, cpu = scales.SCALES["smoke"], scales.SCALES["cpu"]
    monkeypatch.delenv(scales.DATA_ENV, raising=False)
    with pytest.raises(GluonresError, match=f"pass --data .* or set {scales.DATA_ENV}"):
        scales.data_spec(cpu, None)
    monkeypatch.setenv(scales.DATA_ENV, "/data/cifar10-jpg.tar.gz")
    assert scales.data_spec(cpu, None) == "/data/cifar10-jpg.tar.gz"
    assert scales.data_spec(cpu, "cifar10") == "cifar10"
    assert scales.data_spec(smoke, None) == "digits"  # a smoke run stays seconds long


def test_scale_cuts_the_final_test_images_too():
    """A scale's test_images (the backbone comparison's) draw a seeded, class-balanced
    final test set; the paper scales keep the whole test split."""
    scale = scales.Scale("subsets", train_images=40, test_images=30, curve_test_images=20,
                         epochs=1, batch_size=16, default_data="digits", description="test")
    d = scales.load_data(scale, progress=False)
    assert (len(d.data.train), len(d.data.test), len(d.final_test)) == (40, 20, 30)
    assert np.bincount(d.final_test.labels).tolist() == [3] * 10
    assert d.describe()["final_test_images"] == 30
    assert scales.load_data(scale, progress=False, seed=1).describe()["subset"] == \
        "seeded (seed 1), class-balanced"
    assert len(scales.load_data(scales.SCALES["smoke"], progress=False).final_test) == 360


def _fake_record(train_errors):
    models = {m: {"final_train_error": e} for m, e in zip(degradation.CIFAR_MODELS,
                                                            train_errors)}
    return {"models": models}


def test_degradation_claims_follow_the_numbers():
    # order: plain20, plain56, resnet20, resnet56
    good = _fake_record([20.0, 30.0, 15.0, 12.0])
    assert [c["holds"] for c in degradation.claims(good)] == [True, True]
    assert len(degradation.check(good)) == 2
    bad = _fake_record([30.0, 20.0, 15.0, 16.0])
    assert [c["holds"] for c in degradation.claims(bad)] == [False, False]
    with pytest.raises(AssertionError, match="plain-56"):
        degradation.check(bad)


def test_committed_degradation_record_shows_degradation_and_cure():
    """The committed cpu record (the one notebook 1 plots) has the schema the notebooks
    read, 16 epochs on all 50,000 images, and both claims on its own numbers."""
    record = records.load_record("degradation", "cpu", str(REPO / "results"))
    assert record, "results/degradation-cpu.json is missing: run the command in docs/results.md"
    assert set(record["models"]) == set(degradation.CIFAR_MODELS)
    for name, m in record["models"].items():
        assert len(m["curve"]["train_error_pct"]) == len(m["curve"]["test_error_pct"]) == 16
        assert m["final_train_error"] == pytest.approx(m["curve"]["train_error_pct"][-1])
        assert 0 < m["final_test_error"] < 100, name
    assert record["data"]["train_images"] == 50000
    assert len(degradation.check(record)) == 2


# ------------------------------------------------------------------ smoke runs
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Every experiment at smoke scale into one folder (runs shared between them)."""
    out = tmp_path_factory.mktemp("results")
    records = {}
    for name in experiments.EXPERIMENTS:
        records[name] = experiments.reproduce(name, "smoke", out=str(out),
                                              work=str(out / "work"), progress=False)
    return out, records


@pytest.mark.slow
def test_every_experiment_writes_its_smoke_record(smoke):
    out, records = smoke
    for name in experiments.EXPERIMENTS:
        on_disk = json.loads((out / f"{name}-smoke.json").read_text())
        assert on_disk["experiment"] == name and on_disk["scale"] == "smoke"
        assert on_disk["command"].startswith(f"gluonres reproduce {name} --scale smoke")
        assert on_disk["machine"]["cores"] >= 1 and on_disk["wall_s"] > 0
        # every experiment's own text table renders from its record
        assert experiments.get(name).table(records[name])


@pytest.mark.slow
def test_degradation_record_schema(smoke):
    out, _ = smoke
    record = json.loads((out / "degradation-smoke.json").read_text())
    assert set(record["models"]) == set(degradation.CIFAR_MODELS)
    epochs = scales.SCALES["smoke"].epochs
    for name, m in record["models"].items():
        for key in ("final_train_error", "final_test_error"):
            assert 0 <= m[key] <= 100, (name, key)
        assert m["curve"]["epoch"] == list(range(1, epochs + 1))
        assert len(m["curve"]["train_error_pct"]) == len(m["curve"]["test_error_pct"]) == epochs
    assert record["data"]["final_test_images"] == 360  # digits' test split, all of it
    assert set(record["seed_resnet18"]) == {"resnet18", "plain18"}
    g = record["gradient_norms"]["resnet56_cifar"]
    # 55 convolutions on ResNet-56's main path (stem + 2 per unit), and the classifier
    # is not among them
    assert len(g["layers"]) == len(g["init"]) == len(g["trained"]) == 55
    assert all(v > 0 for v in g["init"])
    assert [c["claim"] for c in record["claims"]] == \
        [c["claim"] for c in degradation.claims(record)]


@pytest.mark.slow
def test_experiments_share_runs(smoke):
    """Identity's original unit and 1x1-conv shortcut are the shortcut experiment's option
    A and C runs; responses are the degradation runs' (no training of their own)."""
    _, records = smoke
    for option in ("A", "C"):
        assert records["shortcuts"]["models"][option]["key"] in records["identity"]["runs"]
    assert records["shortcuts"]["models"]["B"]["key"] not in records["identity"]["runs"]
    assert set(records["responses"]["runs"]) <= set(records["degradation"]["runs"])
    r = records["responses"]["models"]["resnet56_cifar"]
    # the stem and 27 units x 2: every 3x3 convolution followed by its BN
    assert len(r["std"]) == 55 and all(s > 0 for s in r["std"])


def test_degradation_warms_up_alike_below_paper_scale():
    """The four CIFAR networks share one recipe per scale; only the compressed scales
    add the error-driven warm-up, and depth and responses train exactly those runs."""
    for scale in ("smoke", "cpu", "paper"):
        specs = degradation.cifar_runs(scale)
        assert [s.model for s in specs] == list(degradation.CIFAR_MODELS)
        configs = {scales.get_scale(scale).config(s.model, **s.train).warmup for s in specs}
        assert configs == ({"none"} if scale == "paper" else {"error"})
        assert all(s in specs for s in responses.runs(scale)[:4])
        # depth: the degradation runs, ResNet-32 and -44 with their settings, and 110
        series = [degradation.cifar_run(f"resnet{d}_cifar", scale) for d in (32, 44)]
        assert all(s in specs + series + bottleneck.runs(scale) for s in depth.runs(scale))
    # at cpu scale the four train longer, on all of the training set
    assert {(s.train_images, s.train["epochs"]) for s in degradation.cifar_runs("cpu")} == {
        (50_000, 16)}


@pytest.mark.slow
def test_run_with_its_own_training_subset(smoke):
    out, _ = smoke
    runner = runs.Runner(scales.SCALES["smoke"], out=str(out), progress=False)
    spec = runs.RunSpec("resnet20_cifar", train={"epochs": 1}, train_images=40)
    assert spec.key == "resnet20_cifar__images-40__epochs-1"
    run = runner.train(spec)
    assert run["data"]["train_images"] == 40
    assert run["iterations"] == 40 // scales.SCALES["smoke"].batch_size
    assert present.summarize(run)["train_images"] == 40


def test_record_describes_the_data_its_runs_trained_on(tmp_path):
    """A record whose runs train on their own subsets (as the cpu degradation runs do)
    names that data, not none, and the sizes of its other runs."""
    own = runs.RunSpec("resnet20_cifar", train={"epochs": 1}, train_images=40)
    experiment = types.SimpleNamespace(
        NAME="subsets", TITLE="runs on their own subsets",
        compute=lambda runner: {"finals": [runner.train(own)["final_test_error"],
                                           runner.train(runs.RunSpec("resnet20_cifar"))
                                           ["final_test_error"]]})
    record = records.reproduce(experiment, "smoke", out=str(tmp_path / "results"),
                              work=str(tmp_path / "work"), progress=False)
    assert record["data"]["train_images"] == 40
    assert record["data"]["other_train_images"] == [scales.SCALES["smoke"].train_images]
    assert "40 training images (64 for its other runs)" in records.provenance(record)


@pytest.mark.slow
def test_kept_run_with_other_settings_is_refused(smoke):
    out, records = smoke
    key = records["shortcuts"]["runs"][0]
    path = out / "runs" / "smoke" / f"{key}.json"
    kept = json.loads(path.read_text())
    kept["config"]["lr"] = 0.5
    path.write_text(json.dumps(kept))
    runner = runs.Runner(scales.SCALES["smoke"], out=str(out), progress=False)
    with pytest.raises(GluonresError, match="other config"):
        runner.train(shortcuts.runs(runner)[0])


@pytest.mark.slow
@pytest.mark.subprocess
def test_results_page(smoke, tmp_path):
    out, _ = smoke
    page = results_page(str(out), scales=("smoke",))
    assert "stored as JPEG" in page  # the JPEG caveat heads the page
    for name in experiments.EXPERIMENTS:
        assert experiments.get(name).TITLE in page
    assert "| plain56_cifar |" in page
    assert "## Not recorded yet" in page  # no cpu records in this folder
    # the CLI writes the same page (default: cpu and paper records only)
    target = tmp_path / "results.md"
    proc = subprocess.run([sys.executable, "-m", "gluonres", "report", "--results", str(out),
                           "--out", str(target), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["out"] == str(target)
    assert target.read_text() == results_page(str(out))


@pytest.mark.slow
@pytest.mark.subprocess
def test_reproduce_cli_errors(smoke, tmp_path):
    out, _ = smoke

    env = {k: v for k, v in os.environ.items() if k != scales.DATA_ENV}

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "gluonres", "reproduce", *args],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr

    assert "--force" in run("depth", "--scale", "smoke", "--out", str(out))
    assert "pass --data" in run("degradation", "--scale", "cpu", "--out", str(tmp_path))
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_a_stopped_reproduce_says_so_in_one_line_and_its_rerun_reuses_the_finished_runs(
        tmp_path, capfd, monkeypatch):
    out, work = tmp_path / "results", tmp_path / "work"
    argv = ["reproduce", "depth", "--scale", "smoke", "--out", str(out), "--work", str(work),
            "--no-progress"]
    fit, calls = runs.Runner._fit, []

    def stop_at_the_second_run(self, *args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here
        return fit(self, *args)

    monkeypatch.setattr(runs.Runner, "_fit", stop_at_the_second_run)
    capfd.readouterr()
    assert main(argv) == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("gluonres:")]
    assert "Traceback" not in err and len(lines) == 1, err
    finished = out / "runs" / "smoke"
    assert lines[0] == (
        f"gluonres: stopped by SIGTERM; finished runs are kept in {finished} and reused, "
        "smoke scale keeps no checkpoints, so an unfinished run starts over; continue with "
        f"`gluonres {' '.join(argv)}`")
    kept = sorted(p.name for p in finished.iterdir())
    assert len(kept) == 1 and not (out / "depth-smoke.json").exists()

    monkeypatch.setattr(runs.Runner, "_fit", fit)
    assert main(argv[:-1]) == 0  # with progress: says what it reuses
    err = capfd.readouterr().err
    assert f"reusing {finished / kept[0]}" in err, err
    assert (out / "depth-smoke.json").exists()


def test_a_scaled_shortcut_passes_scale_to_the_units_of_the_gradient():
    """2016 Eq. 8's first term: through the shortcuts alone (F = 0) a stack of 9 units
    with shortcuts scaled by 0.5 passes 0.5 ** 9 of the gradient, identity shortcuts all
    of it."""
    r = identity.shortcut_gradient(9, scale=0.5)
    assert r["scaled"]["shortcut_only"] == pytest.approx(0.5 ** 9, rel=1e-5)
    assert r["identity"]["shortcut_only"] == pytest.approx(1.0, rel=1e-5)
    assert r["scaled"]["with_residual"] != pytest.approx(r["scaled"]["shortcut_only"])
