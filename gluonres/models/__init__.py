"""Model families; importing this package registers every builder."""
from . import cifar, imagenet  # noqa: F401  (registration side effect)
from .resnet import ResNet  # noqa: F401
