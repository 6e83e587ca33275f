"""Replicated runs: seeds in run keys, the record of a replicated experiment (per-seed
values, mean, spread), the distinguishability rule, and the section-4 run definitions."""
import dataclasses
import json

import pytest

from gluonres.errors import GluonresError
from gluonres.experiments import (bottleneck, degradation, depth, identity, preactivation,
                                  present, records, runs, scales, shortcuts)

from helpers import REPO


CPU = scales.SCALES["cpu"]


# ------------------------------------------------------------------ keys
def test_seed_zero_keeps_the_keys_of_the_kept_runs():
    """Seed 0 adds nothing to a key, so every kept cpu run is still found under its name;
    another seed is a run of its own."""
    spec = runs.RunSpec("resnet20_cifar", train={"epochs": 3})
    assert spec.key == "resnet20_cifar__epochs-3"
    assert dataclasses.replace(spec, seed=1).key == "resnet20_cifar__epochs-3__seed-1"


def test_the_kept_runs_are_those_the_committed_records_use():
    """results/runs/cpu holds exactly the runs behind the cpu records of the experiments
    that train through the Runner: none missing (a record could not be re-made without
    training), none left over from superseded records."""
    used = set()
    for name in ("degradation", "shortcuts", "identity", "preactivation", "depth",
                 "responses", "bottleneck"):
        path = REPO / "results" / f"{name}-cpu.json"  # one not made yet uses no kept run
        if path.exists():
            used |= set(json.loads(path.read_text()).get("runs", []))
    kept = {p.stem for p in (REPO / "results" / "runs" / "cpu").glob("*.json")}
    assert kept == used


def test_seed_is_the_runs_not_a_training_override():
    with pytest.raises(GluonresError, match="RunSpec\\(seed=...\\)"):
        runs.RunSpec("resnet20_cifar", train={"seed": 1})


def test_full_budget_drops_the_quick_overrides():
    """cpu: quick runs are 3 epochs (117 updates); the full budget is the scale's 10
    (390 updates)."""
    spec = runs.RunSpec("resnet20_cifar", {"shortcut": "B"})
    assert runs.Runner(CPU).quick(spec).train == {"epochs": 3}
    full = runs.Runner(CPU, budget="full").quick(spec)
    assert full.key == "resnet20_cifar__shortcut-B"
    config = CPU.config(full.model, **full.train)
    assert config.epochs * (CPU.train_images // CPU.batch_size) == 390


@pytest.mark.parametrize("kwargs, match", [
    ({"seeds": (0, 0)}, "distinct"), ({"seeds": ()}, "distinct"),
    ({"seeds": (-1,)}, "distinct"), ({"budget": "long"}, "quick, full")])
def test_runner_refuses_bad_seeds_and_budgets(kwargs, match):
    with pytest.raises(GluonresError, match=match):
        runs.Runner(CPU, **kwargs)


def test_seeds_are_refused_where_nothing_is_compared(tmp_path, cli):
    """Before anything runs: depth has no comparison runs to replicate."""
    with pytest.raises(GluonresError, match="drop --seeds .* degradation, shortcuts, identity"):
        records.reproduce(depth, "smoke", out=str(tmp_path), seeds=(0, 1))
    proc = cli("reproduce", "depth", "shortcuts", "--scale", "smoke", "--budget", "full",
               "--out", tmp_path)
    assert proc.returncode == 2 and "drop --seeds and --budget" in proc.stderr
    proc = cli("reproduce", "shortcuts", "--scale", "smoke", "--budget", "long", "--out",
               tmp_path)
    assert proc.returncode == 2 and "pass one of quick, full" in proc.stderr
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ statistics
def test_distinguishable_on_hand_made_numbers():
    a, b = [10.0, 10.5, 11.0], [14.0, 14.5, 15.0]  # means 10.5 and 14.5, sd 0.5 each
    assert present.distinguishable(a, b) and present.distinguishable(b, a)
    assert "distinguishable: A is lower" in present.verdict("A", a, "B", b)
    # mean ± 2 sd: [9.5, 11.5] against [10.5, 12.5]
    close = [11.0, 11.5, 12.0]
    assert not present.distinguishable(a, close)
    text = present.verdict("A", a, "C", close)
    assert "not distinguishable at this budget" in text
    assert "10.50 ± 0.50 vs 11.50 ± 0.50, mean ± sd of 3 seeds" in text
    # disjoint ranges are not enough with three seeds: [9.8, 10.6] against [10.3, 11.1]
    assert not present.distinguishable([10.0, 10.2, 10.4], [10.5, 10.7, 10.9])
    s = present.spread([3.0, 1.0, 2.0])
    assert (s["mean"], s["sd"], s["min"], s["max"]) == (2.0, 1.0, 1.0, 3.0)
    with pytest.raises(GluonresError, match="two seeds or more"):
        present.spread([1.0])


def _fake_run(seed, test_errors, train_errors):
    return {"label": "x", "model": "resnet20_cifar", "options": {}, "key": f"k{seed}",
            "config": {"seed": seed}, "iterations": 8, "data": {"train_images": 64},
            "params": 10, "train_img_s": 100.0 + seed, "wall_s": 1.0 + seed,
            "final_train_error": train_errors[-1], "final_train_error_eval": None,
            "final_test_error": test_errors[-1],
            "epochs": [{"epoch": e + 1, "train_error_pct": tr, "test_error_pct": te,
                        "lr": 0.1} for e, (tr, te) in enumerate(zip(train_errors,
                                                                      test_errors))]}


def test_summary_of_seeds():
    one = _fake_run(0, [50.0, 40.0], [60.0, 45.0])
    assert present.summarize_runs([one]) == present.summarize(one)
    runs_ = [one, _fake_run(1, [54.0, 44.0], [62.0, 47.0])]
    s = present.summarize_runs(runs_)
    assert s["seeds"] == [0, 1] and [p["key"] for p in s["per_seed"]] == ["k0", "k1"]
    assert s["final_test_error"] == 42.0 and s["spread"]["final_test_error"]["values"] == [
        40.0, 44.0]
    assert "final_train_error_eval" not in s["spread"]  # not measured: no spread of None
    assert s["curve"]["test_error_pct"] == [52.0, 42.0]
    assert s["curve"]["test_error_sd"] == pytest.approx([2 ** 1.5] * 2)
    assert s["curve"]["train_error_pct"][-1] == s["final_train_error"]
    # a record's training time counts each seed's run once
    assert records._training_seconds({"models": {"x": s}}) == 3.0


# ------------------------------------------------------------------ a replicated record
@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    out = tmp_path_factory.mktemp("replicates")
    record = records.reproduce(shortcuts, "smoke", out=str(out), work=str(out / "work"),
                               progress=False, seeds=(0, 1), budget="full")
    return out, record


def test_replicated_record_has_per_seed_values_mean_and_spread(replicated):
    out, record = replicated
    files = sorted(p.stem for p in (out / "runs" / "smoke").glob("*.json"))
    assert files == sorted(["resnet20_cifar", "resnet20_cifar__seed-1",
                            "resnet20_cifar__shortcut-B", "resnet20_cifar__shortcut-B__seed-1",
                            "resnet20_cifar__shortcut-C", "resnet20_cifar__shortcut-C__seed-1"])
    on_disk = json.loads((out / "shortcuts-smoke.json").read_text())
    assert on_disk["seeds"] == [0, 1] and on_disk["budget"] == "full"
    assert on_disk["command"].endswith("--seeds 0 1 --budget full")
    for option, m in on_disk["models"].items():
        assert [p["seed"] for p in m["per_seed"]] == m["seeds"] == [0, 1]
        s = m["spread"]["final_test_error"]
        assert s["values"] == [p["final_test_error"] for p in m["per_seed"]]
        assert s["mean"] == pytest.approx(sum(s["values"]) / 2) == m["final_test_error"]
        assert s["min"] <= s["mean"] <= s["max"] and s["sd"] >= 0
    # seeds draw different weights, batches and augmentation from the same data
    a = on_disk["models"]["A"]["per_seed"]
    assert a[0]["curve"]["train_error_pct"] != a[1]["curve"]["train_error_pct"]
    assert a[0]["train_images"] == a[1]["train_images"]
    assert [(c["a"], c["b"]) for c in on_disk["comparisons"]] == shortcuts.PAIRS
    assert on_disk["training_s"] == pytest.approx(sum(
        p["wall_s"] for m in on_disk["models"].values() for p in m["per_seed"]))


def test_replicated_record_renders_mean_and_spread(replicated):
    _, record = replicated
    text = shortcuts.table(record)
    assert "±" in text and "(mean ± sd over seeds 0, 1; two variants are told apart" in text
    assert "A vs B, test error:" in text
    assert "- A vs C, test error:" in shortcuts.markdown(record)
    assert "comparison runs: full budget, seeds 0, 1" in records.provenance(record)
    import matplotlib
    matplotlib.use("Agg")
    fig = present.error_curves({"options": record["models"]}, record)
    assert len(fig.axes[0].collections) == len(record["models"])  # one ± sd band each
    assert "mean of 2 seeds" in " ".join(t.get_text() for t in fig.legends[0].get_texts())
    fig = present.spread_figure(record["models"])
    dots = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert sorted(len(line.get_xdata()) for line in dots) == [2] * len(record["models"])


def test_finished_seeds_are_reused(replicated):
    out, record = replicated
    again = records.reproduce(shortcuts, "smoke", out=str(out), work=str(out / "work"),
                              progress=False, force=True, seeds=(0, 1), budget="full")
    assert again["models"] == record["models"]


def test_runs_kept_from_before_new_settings_are_reused(replicated):
    """The committed cpu runs predate the optimizer and label-smoothing settings and the
    present JPEG caveat's wording: they trained with what those default to, so they are
    reused; a setting that differs is still refused."""
    out, _ = replicated
    path = out / "runs" / "smoke" / "resnet20_cifar.json"
    kept = json.loads(path.read_text())
    for name in ("optimizer", "label_smoothing"):
        del kept["config"][name]
    kept["data"]["note"] = "older wording of the caveat"
    path.write_text(json.dumps(kept))
    runner = runs.Runner(scales.SCALES["smoke"], out=str(out), progress=False)
    spec = runs.RunSpec("resnet20_cifar", label="option A")
    assert runner.train(spec)["wall_s"] == kept["wall_s"]  # reused, not trained
    kept["config"]["momentum"] = 0.5
    path.write_text(json.dumps(kept))
    with pytest.raises(GluonresError, match="other config"):
        runner.train(spec)


# ------------------------------------------------------------------ section 4
def test_section4_runs_are_defined_at_cpu_scale():
    """Depth: ResNet-20/32/44/56 alike (all 50,000 images, 16 epochs, warm-up); the
    bottleneck pair and the 2016 pre-activation pair: 8 epochs, the latter's original
    ResNet-110 being the bottleneck experiment's."""
    series = depth.runs("cpu")
    assert [s.model for s in series] == [f"resnet{d}_cifar" for d in (20, 32, 44, 56)]
    assert {(s.train_images, s.train["epochs"], s.train["warmup"]) for s in series} == {
        (50_000, 16, "error")}
    assert series[0] in degradation.cifar_runs("cpu") and series[3] in degradation.cifar_runs(
        "cpu")
    pair = bottleneck.runs("cpu")
    assert [s.key for s in pair] == ["resnet110_cifar__images-50000__epochs-8__warmup-error",
                                     "resnet164_cifar__images-50000__epochs-8__warmup-error"]
    deep = preactivation.runs("cpu")
    assert deep["original"].key == pair[0].key
    assert deep["full_preact"].model == "resnet110_cifar"
    assert deep["full_preact"].options == {"arrangement": "full_preact", "shortcut": "A"}
    assert deep["full_preact"].train == pair[0].train
    # the paper scale keeps its keys
    assert [s.key for s in bottleneck.runs("paper")] == [
        "resnet110_cifar__warmup-error", "resnet164_cifar__warmup-error"]


def test_a_bottleneck_record_without_runs_says_how_to_make_them():
    """A record made before ``cpu`` scale trained the pair does not claim that only
    ``paper`` scale trains it: it names the command that trains it now."""
    record = {"scale": "cpu", "models": {}}  # as records made before cpu scale trained it
    assert "reproduce bottleneck --scale cpu" in bottleneck.trained_table(record)
    assert bottleneck.trained_table({"scale": "smoke", "models": {}}) == (
        "(the pair is trained only at paper scale)")


def test_depth_shows_the_longer_resnet20_run():
    p = depth.longer_point("cpu", str(REPO / "results"))
    assert (p["depth"], p["epochs"], p["iterations"]) == (20, 45, 17_550)
    assert p["final_test_error"] == pytest.approx(13.74)
    assert depth.longer_point("smoke", str(REPO / "results")) is None


def test_depth_figure_names_a_shared_budget_once():
    """The depth record's four runs share one budget: the legend says it once instead of
    four labels that overlap at neighbouring depths; the longer run keeps its own."""
    import matplotlib
    matplotlib.use("Agg")
    record = json.loads((REPO / "results" / "depth-cpu.json").read_text())
    fig = present.depth_figure(record, depth.PAPER["test_error"])
    ax = fig.axes[0]
    assert "6,240 updates each" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert [t.get_text() for t in ax.texts] == ["17,550 updates"]


def test_variant_errors_draw_every_seed():
    """The replicated identity record: ours as mean ± sd bars with one dot per seed,
    each labelled with its sd."""
    import matplotlib
    matplotlib.use("Agg")
    record = json.loads((REPO / "results" / "identity-cpu.json").read_text())
    fig = present.variant_errors(record, identity.PAPER)
    assert "mean ± sd of seeds 0, 1, 2" in fig.axes[0].get_title()
    for ours, family in ((fig.axes[0], "activations"), (fig.axes[2], "shortcuts")):
        dots = [line for line in ours.lines if line.get_marker() == "o"]
        assert [sorted(line.get_xdata()) for line in dots] == [
            sorted(r["final_test_error"] for r in s["per_seed"])
            for s in record[family].values()]
        assert [t.get_text().split()[1:] for t in ours.texts] == [
            ["±", f"{s['spread']['final_test_error']['sd']:.1f}"]
            for s in record[family].values()]
        assert len(ours.collections) == 1  # the sd error bars


def test_a_spread_needs_seeds():
    record = json.loads((REPO / "results" / "identity-cpu.json").read_text())
    one_seed = {k: s["per_seed"][0] for k, s in record["activations"].items()}
    with pytest.raises(GluonresError, match="several seeds.*--seeds 0 1 2"):
        present.spread_figure(one_seed)


def test_figure_titles_name_the_data_not_the_machines_path():
    record = json.loads((REPO / "results" / "identity-cpu.json").read_text())
    assert record["data"]["name"].startswith("/")  # the record keeps where it ran
    line = present.data_line(record)
    assert "5,000 training images of cifar10-jpg.tar.gz" in line and "/" not in line


def test_int8_speedups_name_their_baseline_and_isa(tmp_path):
    """Every INT8 speed-up row says which FP32 graph it is against and which instruction
    set oneDNN ran: a run capped with DNNL_MAX_CPU_ISA is not read as the CPU's own."""
    import shutil
    for name in ("int8-resnet20_cifar.json", "bench-cifar-amd-avx512.json"):
        shutil.copy(REPO / "results" / name, tmp_path / name)
    capped = json.loads((tmp_path / "bench-cifar-amd-avx512.json").read_text())
    capped["machine"]["dnnl_max_cpu_isa"] = "AVX2"
    (tmp_path / "bench-capped.json").write_text(json.dumps(capped))
    rows = present.int8_speedups(str(tmp_path))
    by = {(r["record"], r["model"], r["baseline"]): r for r in rows}
    assert by["int8-resnet20_cifar.json", "resnet20_cifar", "unfused"]["isa"] == "avx512"
    assert by["bench-capped.json", "resnet56_cifar", "fused"]["isa"] == "avx2 (capped)"
    r = by["bench-cifar-amd-avx512.json", "resnet20_cifar", "fused"]
    assert r["speedup"] == pytest.approx(r["int8"] / r["fp32"]) and r["speedup"] > 1
    assert "avx2 (capped)" in present.int8_text(rows)
