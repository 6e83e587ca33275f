"""gluonres: the ResNet family as MXNet Gluon HybridBlocks, exact to the two papers.

Apache MXNet is retired; gluonres pins its last release, mxnet 1.9.1, with numpy 1.23.5.
"""
from . import _env

_env.check_numpy()
_env.default_threads()

from .analysis import summary  # noqa: E402
from .blocks import ConvFactory, ResidualFactory  # noqa: E402
from .errors import GluonresError  # noqa: E402
from .registry import get_model, list_models, register_model  # noqa: E402
from . import models  # noqa: E402,F401  (registers the built-in models)

__version__ = "0.1.0"
__all__ = ["ConvFactory", "ResidualFactory", "GluonresError", "get_model", "list_models",
           "register_model", "summary", "__version__"]
