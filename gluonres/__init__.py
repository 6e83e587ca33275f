"""gluonres: the ResNet family as MXNet Gluon HybridBlocks, exact to the two papers.

Apache MXNet is retired; gluonres pins its last release, mxnet 1.9.1, with numpy 1.23.5.
"""
from gluonres import _env

_env.check_numpy()
_env.default_threads()
_env.worker_engine()
_env.quiet_mxnet()

from gluonres._lazy import lazy_exports  # noqa: E402
from gluonres.errors import GluonresError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ConvFactory", "ResidualFactory", "GluonresError", "get_model", "list_models",
           "register_model", "model_spec", "model_info", "summary", "__version__"]

# Imported on first use, so that running an export (gluonres.deploy.runtime, `gluonres predict`)
# never loads the model code.
_LAZY = {"ConvFactory": "blocks", "ResidualFactory": "blocks", "get_model": "hub",
         "list_models": "hub", "register_model": "models", "model_spec": "models",
         "model_info": "models", "summary": "analysis"}


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__():
    """The public API (``__all__``), lazy names included, for ``dir()`` and completion."""
    return sorted(__all__)
