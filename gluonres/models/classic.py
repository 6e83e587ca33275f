"""The classic image-classification backbones around ResNet, in the same registry.

LeNet-5 and the EfficientNets are written here as HybridBlocks; AlexNet, VGG-16,
Inception-v3 and DenseNet-121 wrap GluonCV's model zoo (their layers are GluonCV's,
their classifier is renamed ``head_dense`` so that every model reads alike).
"""
from mxnet.gluon import HybridBlock, nn

from gluonres.errors import GluonresError
from gluonres.models.common import FeaturesHead, check_classes, check_in_channels
from gluonres.models.efficientnet import efficientnet
from gluonres.models.registry import register_model


class ScaledTanh(HybridBlock):
    """LeNet-5's squashing function ``1.7159 tanh(2a / 3)`` (LeCun et al. 1998, App. A)."""

    def hybrid_forward(self, F, x):
        return 1.7159 * F.tanh(x * (2.0 / 3.0))


class LeNet5(FeaturesHead, HybridBlock):
    """LeNet-5 (LeCun et al., "Gradient-based learning applied to document recognition",
    Proc. IEEE 1998, Sec. II.B) on 32x32 inputs, in its common modern form.

    C1 conv 5x5 (6) -> S2 average pool 2 -> C3 conv 5x5 (16) -> S4 average pool 2 ->
    C5 conv 5x5 (120) -> F6 dense (84) -> classifier, with the paper's scaled tanh
    after C1, C3, C5 and F6. Layer (and summary group) names are the paper's: ``c1``,
    ``s2``, ``c3``, ``s4``, ``c5``, ``f6``, then ``head``. LeNet-5 has no global
    pooling: :meth:`forward_features` ends with C5's 1x1 maps and :meth:`forward_head`
    is F6 and the classifier (see :class:`~gluonres.models.common.FeaturesHead`).

    Parameters
    ----------
    classes : int, default 10
    in_channels : int, default 3
        3 lets LeNet-5 run on the same RGB 32x32 inputs as the CIFAR ResNets; 1 is the
        paper's grey-scale input.

    Notes
    -----
    The paper's layers add up to 60,000 trainable parameters (Sec. II.B: C1 156, S2 12,
    C3 1,516, S4 32, C5 48,120, F6 10,164), with a fixed RBF output layer. This version
    connects C3 to all six C1 maps (2,416 parameters, not the paper's sparse table's
    1,516), pools without the paper's trainable coefficient and bias (S2, S4: 0, not 44)
    and ends in a trainable dense classifier (850 at 10 classes): 61,706 parameters with
    ``in_channels=1``; the default 3 input channels add 300 to C1, giving 62,006.
    """

    def __init__(self, classes=10, in_channels=3, **kwargs):
        super().__init__(prefix="", **kwargs)
        check_classes(classes)
        check_in_channels(in_channels)
        self.classes = classes
        self.input_size = 32
        self.in_channels = in_channels
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(
                nn.Conv2D(6, 5, in_channels=in_channels, prefix="c1_"),
                ScaledTanh(prefix="c1_act_"),
                nn.AvgPool2D(2, prefix="s2_"),
                nn.Conv2D(16, 5, in_channels=6, prefix="c3_"),
                ScaledTanh(prefix="c3_act_"),
                nn.AvgPool2D(2, prefix="s4_"),
                nn.Conv2D(120, 5, in_channels=16, prefix="c5_"),  # 5x5 maps -> 1x1
                ScaledTanh(prefix="c5_act_"),
                nn.Dense(84, in_units=120, prefix="f6_"),
                ScaledTanh(prefix="f6_act_"))
            self.head = nn.Dense(classes, in_units=84, prefix="head_dense_")

    def _layers(self):
        layers = list(self.features)
        f6 = next(i for i, layer in enumerate(layers) if isinstance(layer, nn.Dense))
        return layers[:f6], layers[f6:] + [self.head]


class GluonCVNet(FeaturesHead, HybridBlock):
    """A GluonCV model-zoo network behind gluonres's interface.

    The network's ``features`` are GluonCV's own block (its layers, initialisers and
    forward pass, parameters named ``features_...``); its final classifier is replaced
    by an identical ``Dense`` named ``head_dense_`` (GluonCV's forward is
    ``output(features(x))``, so the function is unchanged). ``summary`` then reports a
    ``features`` and a ``head`` group. :meth:`forward_features` ends with the last
    feature map: before the closing average pool (Inception-v3, DenseNet-121), or
    before the fully connected layers (AlexNet, VGG-16), which :meth:`forward_head`
    applies with the classifier (see :class:`~gluonres.models.common.FeaturesHead`).

    Parameters
    ----------
    zoo_name : str
        GluonCV model-zoo name, e.g. ``'inceptionv3'``.
    feature_units : int
        Width of the features' output (the classifier's input).
    native_size : int
        The resolution the network was designed for (224, Inception-v3 299).
    min_size : int
        The smallest input whose last feature map is still at least 1x1.
    classes : int, default 1000
    input_size : int, optional
        Build for this resolution (``net.input_size``; default ``native_size``), e.g.
        64 to train on small images. GluonCV's Inception-v3 and DenseNet end in an
        average pool of fixed size (8, 7) that only fits the native size; at any other
        size it is replaced by global average pooling, the same function at the native
        size. AlexNet and VGG flatten the last maps into a ``Dense`` whose input width
        is inferred, so their first fully connected layer (and the parameter count)
        shrinks with the input.
    in_channels : int, default 3
        Input channels of the first convolution (1 for grey images).

    Raises
    ------
    GluonresError
        If ``input_size`` is below ``min_size``.
    """

    def __init__(self, zoo_name, feature_units, native_size, min_size, classes=1000,
                 input_size=None, in_channels=3, **kwargs):
        super().__init__(prefix="", **kwargs)
        check_classes(classes)
        check_in_channels(in_channels)
        input_size = native_size if input_size is None else input_size
        if not isinstance(input_size, int) or input_size < min_size:
            raise GluonresError(f"{zoo_name} needs input_size >= {min_size} (its last "
                                f"feature map is empty below), got {input_size!r}; pass e.g. "
                                f"input_size={max(min_size, 64)}")
        from gluoncv.model_zoo import get_model  # slow import, only when one is built
        self.classes = classes
        self.input_size = input_size
        self.in_channels = in_channels
        with self.name_scope():
            zoo = get_model(zoo_name, pretrained=False, classes=classes, prefix="features_")
            self.features = zoo.features
            last = len(self.features) - 2  # the fixed pool, before Dropout or Flatten
            fixed = [i for i, layer in enumerate(self.features)
                     if i >= last and isinstance(layer, nn.AvgPool2D)]
            if fixed and input_size != native_size:
                self.features = nn.HybridSequential(prefix="")
                for i, layer in enumerate(zoo.features):
                    self.features.add(nn.GlobalAvgPool2D(prefix="features_pool_")
                                      if i in fixed else layer)
            # GluonCV infers the first convolution's input channels; fixed, an input of
            # another depth is an error rather than a network with another first layer
            stem = next(iter(self.features.collect_params().values()))
            stem.shape = (stem.shape[0], in_channels) + stem.shape[2:]
            # the features end with the last feature map: before the closing pool, the
            # flattening (AlexNet) or the first fully connected layer (VGG)
            self._head_start = next(
                i for i, layer in enumerate(self.features)
                if i in fixed or isinstance(layer, (nn.GlobalAvgPool2D, nn.Flatten, nn.Dense)))
            # GluonCV's own classifier (left unregistered) lends its initialisers
            self.head = nn.Dense(classes, in_units=feature_units,
                                 weight_initializer=zoo.output.weight.init,
                                 bias_initializer=zoo.output.bias.init, prefix="head_dense_")

    def _layers(self):
        layers = list(self.features)
        return layers[:self._head_start], layers[self._head_start:] + [self.head]


@register_model(family="classic", input_size=32, classes=10, options=("in_channels",))
def lenet5(**kw): return LeNet5(**kw)
@register_model(family="classic", min_input_size=63, options=("in_channels",))
def alexnet(**kw): return GluonCVNet("alexnet", 4096, 224, 63, **kw)
@register_model(family="classic", min_input_size=32, options=("in_channels",))
def vgg16(**kw): return GluonCVNet("vgg16", 4096, 224, 32, **kw)
@register_model(family="classic", input_size=299, min_input_size=75,
                options=("in_channels",))
def inception_v3(**kw): return GluonCVNet("inceptionv3", 2048, 299, 75, **kw)
@register_model(family="classic", min_input_size=29, options=("in_channels",))
def densenet121(**kw): return GluonCVNet("densenet121", 1024, 224, 29, **kw)
@register_model(family="classic", min_input_size=1,
                options=("dropout", "drop_path", "in_channels"))
def efficientnet_b0(**kw): return efficientnet("b0", **kw)
@register_model(family="classic", input_size=240, min_input_size=1,
                options=("dropout", "drop_path", "in_channels"))
def efficientnet_b1(**kw): return efficientnet("b1", **kw)
