"""Experiment records: :func:`reproduce` writes ``results/NAME-SCALE.json`` (through
:func:`write_record`, as the backbone comparison does), :func:`load_record` and
:func:`provenance` read them back.
"""
import json
import os
import time

from gluonres._files import json_default, refuse_existing, write_text
from gluonres.errors import GluonresError
from gluonres.experiments.runs import Runner
from gluonres.experiments.scales import DATA_ENV, DATA_HELP, get_scale
from gluonres.machine import machine, utc_now


#: The experiments whose comparison runs (:meth:`Runner.quick`, :meth:`Runner.train_seeds`)
#: take seeds and a budget: degradation's ResNet-18 pair, the shortcut options, the 2016
#: variants.
REPLICATED = ("degradation", "shortcuts", "identity")


def record_path(name, scale, out="results"):
    """``out/NAME-SCALE.json``."""
    return os.path.join(out, f"{name}-{scale}.json")


def check_new_records(names, scale, out="results", force=False):
    """Refuse, before anything runs, to replace the records of experiments ``names``.

    Raises
    ------
    GluonresError
        If a record exists and ``force`` is off.
    """
    refuse_existing([record_path(n, scale, out) for n in names], force,
                    "pass --force to replace it (finished training runs are reused, so "
                    "this is quick)")


def load_record(name, scale="cpu", out="results", make=None):
    """The record ``out/NAME-SCALE.json``, or ``None`` (with a message) if it is missing.

    Notebooks call this: a missing record prints the command that makes it instead of
    failing.

    Parameters
    ----------
    name, scale, out : str
    make : str, optional
        The command that makes the record, short of its ``--data``; default
        ``gluonres reproduce NAME --scale SCALE``.
    """
    path = record_path(name, scale, out)
    if not os.path.exists(path):
        make = make or f"gluonres reproduce {name} --scale {scale}"
        print(f"{path} is missing: make it with `{make} --data DATA`, DATA being {DATA_HELP} "
              f"(or set {DATA_ENV} instead); the plots and checks that need it are left out "
              "below")
        return None
    with open(path) as f:
        return json.load(f)


def write_record(name, title, scale, command, compute, out="results"):
    """Run ``compute`` and write what it returns as the record ``out/NAME-SCALE.json``.

    Parameters
    ----------
    name, title : str
        The experiment's ``NAME`` and ``TITLE``.
    scale : Scale
    command : str
        The command line to record.
    compute : callable
        Returns the record's body (a JSON-able dict).
    out : str, default 'results'

    Returns
    -------
    dict
        The record: experiment, title, scale and its settings, command, machine, start,
        finish and wall time around ``compute``, then the body.
    """
    started, start = utc_now(), time.time()
    body = compute()
    record = {"experiment": name, "title": title, "scale": scale.name,
              "scale_settings": scale.describe(), "command": command, "machine": machine(),
              "started": started, "finished": utc_now(), "wall_s": time.time() - start,
              **body}
    os.makedirs(out, exist_ok=True)
    write_text(record_path(name, scale.name, out),
               json.dumps(record, indent=1, default=json_default) + "\n")
    return record


def reproduce(module, scale, data=None, out="results", work=None, progress=True,
              force=False, command=None, seeds=(0,), budget="quick"):
    """Run an experiment module at a scale and write its record.

    Parameters
    ----------
    module : module
        An experiment module (``NAME``, ``TITLE``, ``compute``).
    scale : str or Scale
        ``'smoke'``, ``'cpu'`` or ``'paper'``.
    data : str, optional
        See :func:`~gluonres.experiments.scales.data_spec`.
    out : str, default 'results'
    work : str, optional
        See :class:`Runner`.
    progress : bool, default True
    force : bool, default False
        Replace an existing record (finished runs are reused either way).
    command : str, optional
        The command line to record; default: the equivalent ``gluonres reproduce``.
    seeds : sequence of int, default (0,)
        Seeds of the comparison runs of an experiment in :data:`REPLICATED`; with several,
        its record gives their per-seed values, mean and spread.
    budget : {'quick', 'full'}, default 'quick'
        Length of its comparison runs (:data:`~gluonres.experiments.runs.BUDGETS`).

    Returns
    -------
    dict
        The record written to ``out/NAME-SCALE.json``; with other than the default seeds
        or budget, it says which (``seeds``, ``budget``).

    Raises
    ------
    GluonresError
        If the record exists and ``force`` is off, for an unknown scale, missing data, or
        seeds or a budget for an experiment without comparison runs.
    """
    scale = get_scale(scale)
    check_replicates(module, seeds, budget)
    check_new_records([module.NAME], scale.name, out, force)
    runner = Runner(scale, data, out, work, progress, seeds=seeds, budget=budget)
    replicated = {"seeds": list(runner.seeds), "budget": budget} \
        if (list(runner.seeds), budget) != ([0], "quick") else {}
    if command is None:
        command = f"gluonres reproduce {module.NAME} --scale {scale.name}"
        command += f" --data {data}" if data else ""
        if replicated:
            command += (f" --seeds {' '.join(map(str, runner.seeds))} --budget {budget}")

    def compute():
        body = module.compute(runner)
        body = {"data": _data_of(runner), "runs": runner.used, **replicated, **body}
        return {**body, "training_s": _training_seconds(body)}

    return write_record(module.NAME, module.TITLE, scale, command, compute, out)


def check_replicates(module, seeds=(0,), budget="quick"):
    """Refuse seeds or a budget for an experiment whose runs do not take them (it has no
    comparison runs: its runs are single and as long as the scale says).

    Raises
    ------
    GluonresError
        Naming the experiments that take them.
    """
    if (list(seeds), budget) != ([0], "quick") and module.NAME not in REPLICATED:
        raise GluonresError(f"{module.NAME} has no comparison runs to replicate or lengthen; "
                            f"drop --seeds and --budget for it (they apply to "
                            f"{', '.join(REPLICATED)})")


def _data_of(runner):
    """The record's data: that of its first training run (the experiment's main runs come
    first), naming the training-set sizes of any other runs; else the data the experiment
    used without training; else None."""
    if runner.data_used:
        first, others = runner.data_used[0], runner.data_used[1:]
        return {**first, **({"other_train_images": [d["train_images"] for d in others]}
                            if others else {})}
    return runner.data.describe() if runner._data is not None else None


def _training_seconds(body):
    """Wall seconds of the training runs behind a record's body (kept runs included)."""
    seen, total = set(), 0.0
    for value in _walk(body):
        if isinstance(value, dict) and "wall_s" in value and "key" in value \
                and value["key"] not in seen:
            seen.add(value["key"])
            total += value["wall_s"]
    return total


def _walk(obj):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def provenance(record):
    """What a record is: experiment, scale, command, data (with its caveat), machine,
    time; printed by the notebooks under every loaded record."""
    d, m = record.get("data"), record.get("machine") or {}
    lines = [f"{record['title']} -- {record['scale']} scale",
             f"command: {record['command']}",
             f"machine: {m.get('cpu')}, {m.get('cores')} cores, OMP_NUM_THREADS="
             f"{m.get('omp_num_threads')}, mxnet {m.get('mxnet')}; finished "
             f"{record['finished']}, training {record.get('training_s', 0) / 60:.0f} min"]
    if record.get("seeds"):
        seeds = record["seeds"]
        lines.append(f"comparison runs: {record['budget']} budget, seed"
                     + (f"s {', '.join(map(str, seeds))}; their numbers are mean ± sd over "
                        "the seeds" if len(seeds) > 1 else f" {seeds[0]}"))
    if d:
        lines.append(f"data: {d['spec']}, {d['train_images']:,} training images"
                     f"{other_runs(d)}, curves on {d['curve_test_images']:,} test images, "
                     f"final test error on {d['final_test_images']:,}")
        if d.get("note"):
            lines.append(f"caveat: {d['note']}")
    return "\n".join(lines)


def other_runs(data):
    """``' (5,000 for its other runs)'`` when a record's runs trained on several subsets."""
    other = data.get("other_train_images")
    return (f" ({', '.join(f'{n:,}' for n in other)} for its other runs)" if other else "")
