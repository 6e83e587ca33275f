"""Library code behind the notebooks: one module per paper section.

Each experiment module has ``NAME``, ``TITLE`` and ``compute(runner)``; :func:`reproduce`
runs one at a scale (``smoke``, ``cpu``, ``paper``: :data:`common.SCALES`) and writes
``results/NAME-SCALE.json``. The modules also hold what the notebooks and the results
page show: tables, plots and the checks of the papers' claims.
"""
import importlib

from ..errors import GluonresError

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

    See :func:`gluonres.experiments.common.reproduce` for the options.
    """
    from . import common
    return common.reproduce(get(name), scale, data, out, **kwargs)
