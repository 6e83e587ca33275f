"""Model families; importing this package registers every builder."""
from . import cifar, classic, imagenet  # noqa: F401  (registration side effect)
from .efficientnet import EfficientNet  # noqa: F401
from .resnet import ResNet  # noqa: F401
