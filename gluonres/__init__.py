"""gluonres: the ResNet family as MXNet Gluon HybridBlocks, exact to the two papers.

Apache MXNet is retired; gluonres pins its last release, mxnet 1.9.1, with numpy 1.23.5.
"""
import importlib

from . import _env

_env.check_numpy()
_env.default_threads()
_env.worker_engine()

from .errors import GluonresError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ConvFactory", "ResidualFactory", "GluonresError", "get_model", "list_models",
           "register_model", "summary", "__version__"]

# Imported on first use, so that running an export (gluonres.runtime, `gluonres predict`)
# never loads the model code.
_LAZY = {"ConvFactory": "blocks", "ResidualFactory": "blocks", "get_model": "registry",
         "list_models": "registry", "register_model": "registry", "summary": "analysis"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    try:  # submodules as attributes: gluonres.registry, gluonres.io ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'gluonres' has no attribute {name!r}") from None
