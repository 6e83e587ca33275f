"""A finished training run folder as a record under ``results/`` (``gluonres record``).

A record under ``results/`` is data that docs and notebooks render: JSON with the
command, data (with its caveats), machine, wall time and per-epoch log, beside the CSV
log, the training-curve PNG and the weights.
"""
import json
import os
import shutil

from gluonres._files import atomic_path, refuse_existing, write_text
from gluonres.errors import GluonresError


def record_run(run_dir, name, results_dir="results", bench=None, force=False):
    """Turn a finished :func:`~gluonres.train.fit` run folder into a ``results/`` record.

    Writes ``NAME.json`` (command, model, data with caveats, machine, start/finish, wall
    time, throughput, test accuracy, config, per-epoch log, every resume with its own
    command and machine, optional benchmark),
    ``NAME.csv``, ``NAME.png`` and ``weights/NAME.params``.

    Parameters
    ----------
    run_dir : str
        Folder given to ``fit(out_dir=...)`` / ``gluonres train --out``.
    name : str
        Record name, e.g. ``'resnet20_cifar-cifar10jpg'``.
    results_dir : str, default 'results'
    bench : str, optional
        JSON file with a throughput measurement (``gluonres data bench --json``
        output) to include.
    force : bool, default False
        Replace an existing record of that name.

    Returns
    -------
    dict
        Paths written.

    Raises
    ------
    GluonresError
        If the run is unfinished or missing, or the record exists and ``force`` is off.
    """
    log_path = os.path.join(run_dir, "log.json")
    if not os.path.isfile(log_path):
        raise GluonresError(f"{run_dir!r} has no log.json; pass the --out folder of a "
                            "gluonres train run")
    with open(log_path) as f:
        history = json.load(f)
    if "finished" not in history:
        done = len(history.get("epochs", []))
        raise GluonresError(f"the run in {run_dir!r} has not finished ({done} epochs logged); "
                            "record it once gluonres train has exited")
    paths = {"json": os.path.join(results_dir, f"{name}.json"),
             "csv": os.path.join(results_dir, f"{name}.csv"),
             "curve": os.path.join(results_dir, f"{name}.png"),
             "weights": os.path.join(results_dir, "weights", f"{name}.params")}
    refuse_existing(paths.values(), force,
                    "choose another name or pass --force to replace the record")
    record = {"name": name, "command": history.get("info", {}).get("command"),
              "model": history["model"], "data": history["data"],
              "machine": history["machine"], "started": history["started"],
              "finished": history["finished"], "wall_s": history["wall_s"],
              "wall_min": round(history["wall_s"] / 60, 1), "train_s": history["train_s"],
              "train_img_s": history["train_img_s"],
              "resumed": history.get("resumed", []),
              "test_accuracy": history["test_accuracy"],
              "selected_epoch": history["selected_epoch"], "selection": history["selection"],
              "config": history["config"], "iterations_per_epoch":
                  history["iterations_per_epoch"],
              "total_iterations": history["total_iterations"],
              "milestones": history["milestones"], "epochs": history["epochs"],
              "files": {k: os.path.relpath(v, results_dir) for k, v in paths.items()
                        if k != "json"}}
    if bench:
        with open(bench) as f:
            record["bench"] = json.loads(f.read().strip().splitlines()[-1])
    os.makedirs(os.path.dirname(paths["weights"]), exist_ok=True)
    for key, source in (("csv", "log.csv"), ("curve", "curve.png"),
                        ("weights", "weights.params")):
        with atomic_path(paths[key]) as tmp:
            shutil.copyfile(os.path.join(run_dir, source), tmp)
    write_text(paths["json"], json.dumps(record, indent=1) + "\n")
    return paths
