"""Library code behind the notebooks: one module per paper section.

Each experiment module has ``NAME``, ``TITLE`` and ``compute(runner)``; :func:`reproduce`
runs one at a scale (``smoke``, ``cpu``, ``paper``: :data:`scales.SCALES`) and writes
``results/NAME-SCALE.json``, :func:`reproduce_many` several in turn (``gluonres
reproduce``). The modules also hold what the notebooks and the results page show:
tables, plots and the checks of the papers' claims.
"""
import importlib
import sys

from gluonres.errors import GluonresError


#: The reproducible experiments, in notebook order.
EXPERIMENTS = ("degradation", "shortcuts", "bottleneck", "depth", "responses", "identity",
               "preactivation", "deployment", "transfer")


def get(name):
    """The experiment module called ``name``.

    Raises
    ------
    GluonresError
        For an unknown name, listing the known ones.
    """
    if name not in EXPERIMENTS:
        raise GluonresError(f"unknown experiment {name!r}; choose one of "
                            f"{', '.join(EXPERIMENTS)}")
    return importlib.import_module(f".{name}", __name__)


def reproduce(name, scale, data=None, out="results", **kwargs):
    """Run experiment ``name`` at ``scale`` and write ``out/NAME-SCALE.json``.

    See :func:`gluonres.experiments.records.reproduce` for the options.
    """
    from gluonres.experiments import records
    return records.reproduce(get(name), scale, data, out, **kwargs)


def reproduce_many(names, scale, data=None, out="results", work=None, progress=True,
                   force=False, command=None, seeds=(0,), budget="quick"):
    """Run experiments one after another in this process and write their records: what
    ``gluonres reproduce`` does.

    Every name and record path is checked before anything runs; the data is decoded once.

    Parameters
    ----------
    names : list of str
        Experiments of :data:`EXPERIMENTS`, or ``['all']`` for every one.
    scale : str
        ``'smoke'``, ``'cpu'`` or ``'paper'``.
    data, out, work, progress, force, command, seeds, budget
        As for :func:`gluonres.experiments.records.reproduce`.

    Returns
    -------
    done : list of dict
        Per experiment: ``record`` (its path), ``experiment``, ``scale``, ``runs``,
        ``wall_s``, ``training_s``, ``claims``.
    texts : list of str
        Per experiment: its title, table, record path and minutes.

    Raises
    ------
    GluonresError
        For an unknown name, an existing record with ``force`` off, or seeds or a budget
        for an experiment without comparison runs.
    """
    from gluonres.experiments import records

    names = list(EXPERIMENTS) if list(names) == ["all"] else list(names)
    for name in names:
        records.check_replicates(get(name), seeds, budget)
    records.check_new_records(names, scale, out, force)
    done, texts = [], []
    for name in names:
        record = reproduce(name, scale, data=data, out=out, work=work, progress=progress,
                           force=force, command=command, seeds=seeds, budget=budget)
        path = records.record_path(name, scale, out)
        done.append({"record": path, "experiment": name, "scale": scale,
                     "runs": record["runs"], "wall_s": record["wall_s"],
                     "training_s": record["training_s"], "claims": record.get("claims")})
        module = get(name)
        texts.append(f"{module.TITLE} ({scale} scale)\n{module.table(record)}\n"
                     f"record: {path}  ({record['wall_s'] / 60:.1f} min)")
        print(f"wrote {path}", file=sys.stderr, flush=True)
    return done, texts


def smoke(name):
    """Re-run experiment ``name`` at ``smoke`` scale in a temporary folder and print its
    table: what each notebook does last, to prove the pipeline still runs.

    Returns
    -------
    dict
        The smoke record (also written, then removed with the folder).
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"gluonres-smoke-{name}-") as out:
        record = reproduce(name, "smoke", out=out, progress=False)
    print(f"{get(name).TITLE}: smoke run in {record['wall_s']:.0f} s "
          f"({record['scale_settings']['description']})")
    print(get(name).table(record))
    return record
