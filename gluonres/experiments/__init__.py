"""Library code behind the notebooks: one module per paper section.

Each experiment module has ``NAME``, ``TITLE`` and ``compute(runner)``; :func:`reproduce`
runs one at a scale (``smoke``, ``cpu``, ``paper``: :data:`scales.SCALES`) and writes
``results/NAME-SCALE.json``. The modules also hold what the notebooks and the results
page show: tables, plots and the checks of the papers' claims.
"""
import importlib

from gluonres.errors import GluonresError


#: The reproducible experiments, in notebook order.
EXPERIMENTS = ("degradation", "shortcuts", "bottleneck", "depth", "responses", "identity",
               "deployment")


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
