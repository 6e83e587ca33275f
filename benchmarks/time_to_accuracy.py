"""Time to 86% test accuracy, ResNet-20 on the shared CIFAR-10: paper vs fast recipe.

    .venv/bin/python benchmarks/time_to_accuracy.py

Reads the two recorded runs (results/resnet20_cifar-cifar10jpg.json, the paper recipe for
45 epochs, and results/resnet20_cifar-fast-cifar10jpg.json, ``--recipe fast``), finds the
first epoch at or above the target in each (and in the fast recipe's other seeds' records,
``fast_seeds``: how many reached it, their mean and sd), and times one training step of each recipe
side by side on the real-data pipeline (:func:`gluonres.measure.timing.recipe_throughput`),
because the two runs were not timed on one machine at one time. An epoch of each recipe
is then ``images per epoch / images per second`` (median of its timed blocks) plus the
per-epoch evaluation (10,000 test images, the same for both, timed here too); the
spread of the ratio comes from the blocks of each round, which ran back to back. Writes results/time-to-86-resnet20_cifar.json. Run it on a quiet
machine.
"""
import glob
import json
import os
import shlex
import statistics
import sys
import time

from gluonres._files import json_default, write_text
from gluonres.machine import machine, utc_now
from gluonres.measure.timing import recipe_throughput


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data", "cifar10-jpg.tar.gz")
RUNS = {"paper": "results/resnet20_cifar-cifar10jpg.json",
        "fast": "results/resnet20_cifar-fast-cifar10jpg.json"}
#: the fast recipe's other seeds (``gluonres train ... --recipe fast --seed N``)
FAST_SEEDS = "results/resnet20_cifar-fast-seed*-cifar10jpg.json"
TARGET_ERROR_PCT = 14.0  # 86.0% test accuracy
ROUNDS = 20  # even: each recipe runs first in half of them


def first_epoch_at(epochs, target=TARGET_ERROR_PCT):
    """The first epoch whose test error is at or below ``target`` (or ``None``)."""
    return next((e["epoch"] for e in epochs if e["test_error_pct"] <= target), None)


def fast_seed_summary():
    """Every recorded seed of the fast recipe (one run reaching the target is an
    anecdote): per seed its record, first epoch at the target and final accuracy; how
    many reached the target; the final accuracies' mean and sd."""
    seeds = {}
    for path in [RUNS["fast"], *sorted(glob.glob(os.path.join(REPO, FAST_SEEDS)))]:
        with open(os.path.join(REPO, path)) as f:
            record = json.load(f)
        seeds[record["config"]["seed"]] = {
            "record": os.path.relpath(os.path.join(REPO, path), REPO),
            "epoch_at_target": first_epoch_at(record["epochs"]),
            "final_test_accuracy": record["test_accuracy"]}
    accuracies = [s["final_test_accuracy"] for s in seeds.values()]
    return {"seeds": seeds,
            "reached_target": sum(s["epoch_at_target"] is not None for s in seeds.values()),
            "final_test_accuracy_mean": statistics.mean(accuracies),
            "final_test_accuracy_sd": (statistics.stdev(accuracies)
                                       if len(accuracies) > 1 else None)}


def evaluation_seconds(data):
    """Seconds of one per-epoch evaluation of ResNet-20 on the test split (median of 3)."""
    import gluonres
    from gluonres.analysis.evaluation import predict_dataset
    from gluonres.data import load
    from gluonres.data.preprocess import Preprocess
    from gluonres.models.init import he_initialize

    d = load(data, size=32, progress=False)
    net = gluonres.get_model("resnet20_cifar")
    he_initialize(net, 0)
    net.hybridize(static_alloc=True, static_shape=True)
    preprocess = Preprocess.fit(d.train.images, "pixel")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        predict_dataset(net, d.test, preprocess, progress=False)
        times.append(time.perf_counter() - start)
    return sorted(times)[1], len(d.train)


if __name__ == "__main__":
    runs = {}
    for name, path in RUNS.items():
        with open(os.path.join(REPO, path)) as f:
            record = json.load(f)
        runs[name] = {"record": path, "epochs_run": len(record["epochs"]),
                      "epoch_at_target": first_epoch_at(record["epochs"]),
                      "final_test_accuracy": record["test_accuracy"],
                      "recorded_train_s": record["train_s"], "machine": record["machine"]}
    fast_seeds = fast_seed_summary()
    speed = recipe_throughput("resnet20_cifar", DATA, tuple(RUNS), rounds=ROUNDS)
    eval_s, train_images = evaluation_seconds(DATA)
    blocks = {name: speed["recipes"][name]["img_s_blocks"] for name in RUNS}
    for name, run in runs.items():
        run["img_s_median"] = statistics.median(blocks[name])
        run["epoch_s_measured"] = train_images / run["img_s_median"] + eval_s
        run["time_to_target_s"] = (run["epoch_at_target"] * run["epoch_s_measured"]
                                   if run["epoch_at_target"] else None)
        run["whole_run_s"] = run["epochs_run"] * run["epoch_s_measured"]
    paper, fast = runs["paper"], runs["fast"]
    # two consecutive rounds ran back to back with each recipe once in each place (the
    # place moves a block's speed by about 15%, see timing.interleaved): the ratio within
    # such a pair is what the machine's drift cannot move, its range the spread
    per_pair = [sum(blocks["fast"][r:r + 2]) / sum(blocks["paper"][r:r + 2])
                 for r in range(0, ROUNDS, 2)]

    def to_target_vs_whole_run(speed_ratio):
        fast_epoch = train_images / (paper["img_s_median"] * speed_ratio) + eval_s
        return fast["epoch_at_target"] * fast_epoch / paper["whole_run_s"]

    reached = fast["epoch_at_target"] is not None
    result = {
        "target_test_accuracy_pct": 100 - TARGET_ERROR_PCT, "runs": runs,
        "fast_seeds": fast_seeds,
        "throughput": speed, "eval_s_per_epoch": eval_s,
        "fast_vs_paper_img_s_per_pair_of_rounds": per_pair,
        "fast_vs_paper_img_s": {"median": statistics.median(per_pair),
                                "min": min(per_pair), "max": max(per_pair)},
        # the target: fast's time to 86% against the whole 45-epoch paper run
        "fast_to_target_vs_paper_whole_run": (
            {k: to_target_vs_whole_run(v) for k, v in
             (("median", statistics.median(per_pair)), ("slowest_pair", min(per_pair)),
              ("fastest_pair", max(per_pair)))} if reached else None),
        "fast_to_target_vs_paper_to_target": (fast["time_to_target_s"] / paper["time_to_target_s"]
                                              if reached else None),
        "command": shlex.join([os.path.relpath(sys.executable, REPO),
                               "benchmarks/time_to_accuracy.py"]),
        "machine": machine(),  # where the throughput was timed; each run names its own
        "measured": utc_now()}
    write_text(os.path.join(REPO, "results", "time-to-86-resnet20_cifar.json"),
               json.dumps(result, indent=1, default=json_default) + "\n")
    summary = {k: v for k, v in result.items() if not isinstance(v, (dict, list))
               or k.startswith("fast_to") or k == "fast_vs_paper_img_s"}
    print(json.dumps(summary
                     | {n: {k: r[k] for k in ("epoch_at_target", "epoch_s_measured",
                                               "time_to_target_s", "whole_run_s")}
                        for n, r in runs.items()}, indent=1))
