"""Model families and their registry; importing this package registers every builder.

``registry`` is a leaf that the families register into; this package imports it, then the
families, so that a lookup always sees the built-in models.
"""
from gluonres.models.registry import (ModelInfo, ModelSpec, get_builder,  # noqa: F401
                                      get_model, list_models, model_info, model_spec,
                                      register_model)

from gluonres.models import cifar, classic, imagenet  # noqa: F401,E402  (registration)
from gluonres.models.efficientnet import EfficientNet  # noqa: F401,E402
from gluonres.models.resnet import ResNet  # noqa: F401,E402
