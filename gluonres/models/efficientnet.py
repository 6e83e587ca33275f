"""EfficientNet (Tan & Le, ICML 2019): MBConv blocks with squeeze-and-excitation.

Built from :class:`~gluonres.blocks.ConvFactory` (conv-BN-swish, depthwise where
``groups`` equals the channels). Structure and parameter counts are those of the
reference implementation (TensorFlow ``efficientnet_model.py``; timm's
``efficientnet_b0``/``_b1`` have the same parameters): B0 has 5,288,548 and B1
7,794,184 trainable parameters at 1000 classes. Two deliberate differences that change
no count: convolutions pad symmetrically (``k // 2``, as timm's non-``tf_`` models,
not TensorFlow's asymmetric "same"), and BatchNorm keeps MXNet's defaults (momentum
0.9, eps 1e-5; the reference uses 0.99 and 1e-3), which settle faster in short runs.
"""
import math

from mxnet.gluon import HybridBlock, nn

from gluonres.blocks import ConvFactory, swish
from gluonres.models.common import FeaturesHead, check_classes, check_in_channels


# Table 1 of the paper, the B0 baseline: one row per stage,
# (expansion, kernel, stride, output channels, blocks)
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
SE_RATIO = 0.25  # of the block's *input* channels, as in the reference code
# compound scaling (paper Sec. 3.3; coefficients from the reference code):
# name -> (depth coefficient, resolution, dropout). B0 and B1 both have width 1.0,
# so B1 is B0 with more blocks per stage, run at a higher resolution.
SPEC = {"b0": (1.0, 224, 0.2), "b1": (1.1, 240, 0.2)}
DROP_PATH_RATE = 0.2  # the reference's drop_connect_rate, reached by the last block


class SqueezeExcite(HybridBlock):
    """Squeeze-and-excitation: channel weights from the globally pooled input.

    ``x * sigmoid(expand(swish(reduce(avgpool(x)))))``, with 1x1 convolutions (with
    bias) for ``reduce`` (``channels -> reduced``) and ``expand`` (back).
    """

    def __init__(self, channels, reduced, prefix=None):
        super().__init__(prefix=prefix)
        with self.name_scope():
            self.pool = nn.GlobalAvgPool2D(prefix="pool_")
            self.reduce = nn.Conv2D(reduced, 1, in_channels=channels, prefix="reduce_")
            self.expand = nn.Conv2D(channels, 1, in_channels=reduced, prefix="expand_")

    def hybrid_forward(self, F, x):
        weights = F.sigmoid(self.expand(swish(F, self.reduce(self.pool(x)))))
        return F.broadcast_mul(x, weights)


class MBConv(HybridBlock):
    """Mobile inverted bottleneck: expand 1x1, depthwise kxk, SE, project 1x1.

    Parameters
    ----------
    in_channels, channels : int
        Input and output channels.
    expansion : int
        Inner width is ``expansion * in_channels``; 1 leaves out the expansion conv.
    kernel_size : int
        Depthwise kernel (3 or 5).
    stride : int
        Depthwise stride.
    drop_path : float, default 0
        Stochastic depth: in training, the residual branch of each sample is dropped
        with this probability (and the kept ones scaled by ``1 / (1 - drop_path)``);
        identity at inference. Only blocks with a skip connection (stride 1, same
        channels) have one: ``self.drop_path`` is the rate in effect (0 without).
    se_ratio : float, default 0.25
        Squeeze width as a fraction of ``in_channels``.
    prefix : str, optional
        e.g. ``'stage3_block2_'``; the layers are ``expand_``, ``dw_``, ``se_``,
        ``project_``.
    """

    def __init__(self, in_channels, channels, expansion, kernel_size, stride, drop_path=0.0,
                 se_ratio=SE_RATIO, prefix=None):
        super().__init__(prefix=prefix)
        if not 0 <= drop_path < 1:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path!r}")
        self._skip = stride == 1 and in_channels == channels
        self.drop_path = drop_path if self._skip else 0.0
        mid = in_channels * expansion
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            if expansion != 1:
                self.body.add(ConvFactory(mid, 1, 1, in_channels, act="swish",
                                          prefix="expand_"))
            self.body.add(
                ConvFactory(mid, kernel_size, stride, mid, act="swish", groups=mid,
                            prefix="dw_"),
                SqueezeExcite(mid, max(1, int(in_channels * se_ratio)), prefix="se_"),
                ConvFactory(channels, 1, 1, mid, act=False, prefix="project_"))

    def hybrid_forward(self, F, x):
        out = self.body(x)
        if not self._skip:
            return out
        if self.drop_path:
            # one Bernoulli draw per sample, shared over (C, H, W); the Dropout operator
            # is active only in training mode, also inside a hybridized graph
            out = F.Dropout(out, p=self.drop_path, axes=(1, 2, 3))
        return out + x


def stage_blocks(depth_coefficient):
    """Blocks per stage after depth scaling: ``ceil(depth_coefficient * blocks)``."""
    return [int(math.ceil(depth_coefficient * row[-1])) for row in B0_STAGES]


class EfficientNet(FeaturesHead, HybridBlock):
    """EfficientNet: swish stem, seven MBConv stages, 1x1 conv head, pooled classifier.

    Parameters
    ----------
    depth_coefficient : float, default 1.0
        Blocks per stage are ``ceil(depth_coefficient * B0's)``.
    input_size : int, default 224
        Native resolution (``net.input_size``); the network itself accepts any size.
    dropout : float, default 0.2
        Dropout before the classifier.
    drop_path : float, default 0.2
        Stochastic depth rate of the last block; block ``i`` of ``n`` uses
        ``drop_path * i / n`` (the first block none), as in the reference code.
    classes : int, default 1000
    in_channels : int, default 3
        Input channels of the stem convolution (1 for grey images).

    Notes
    -----
    :meth:`forward_features` ends after the head's 1x1 convolution (1280 channels);
    :meth:`forward_head` pools, drops out and classifies (see
    :class:`~gluonres.models.common.FeaturesHead`).

    Parameter names: ``stem_conv_weight``, ``stage3_block2_expand_weight``,
    ``stage3_block2_dw_bn_gamma``, ``stage3_block2_se_reduce_weight``,
    ``stage3_block2_project_weight``, ``head_conv_weight``, ``head_dense_weight``.
    """

    def __init__(self, depth_coefficient=1.0, input_size=224, dropout=0.2,
                 drop_path=DROP_PATH_RATE, classes=1000, in_channels=3, **kwargs):
        super().__init__(prefix="", **kwargs)
        check_classes(classes)
        check_in_channels(in_channels)
        self.classes = classes
        self.input_size = input_size
        self.in_channels = in_channels
        repeats = stage_blocks(depth_coefficient)
        total, index = sum(repeats), 0
        with self.name_scope():
            self.stem = ConvFactory(STEM_CHANNELS, 3, 2, in_channels, act="swish",
                                    prefix="stem_conv_")
            self.stages = nn.HybridSequential(prefix="")
            cin = STEM_CHANNELS
            for s, ((expansion, k, stride, cout, _), n) in enumerate(
                    zip(B0_STAGES, repeats), 1):
                stage = nn.HybridSequential(prefix=f"stage{s}_")
                with stage.name_scope():
                    for b in range(1, n + 1):
                        stage.add(MBConv(cin, cout, expansion, k, stride if b == 1 else 1,
                                         drop_path=drop_path * index / total,
                                         prefix=f"block{b}_"))
                        cin = cout
                        index += 1
                self.stages.add(stage)
            self.head = nn.HybridSequential(prefix="head_")
            with self.head.name_scope():
                self.head.add(ConvFactory(HEAD_CHANNELS, 1, 1, cin, act="swish",
                                          prefix="conv_"),
                              nn.GlobalAvgPool2D(prefix="pool_"),
                              nn.Dropout(dropout, prefix="dropout_"),
                              nn.Dense(classes, in_units=HEAD_CHANNELS, prefix="dense_"))

    def _layers(self):
        conv, *head = self.head  # the 1x1 convolution ends the features
        return [self.stem, self.stages, conv], head


def efficientnet(variant, classes=1000, **kwargs):
    """EfficientNet-B0 or -B1 from the spec table.

    Parameters
    ----------
    variant : {'b0', 'b1'}
    classes : int, default 1000
    **kwargs
        Passed to :class:`EfficientNet`, e.g. ``drop_path=0``, ``dropout=0.3``,
        ``in_channels=1`` or ``input_size=64`` (the resolution ``summary`` and counts
        assume).
    """
    if variant not in SPEC:
        raise ValueError(f"EfficientNet variant must be one of {sorted(SPEC)}, got {variant!r}")
    depth, size, dropout = SPEC[variant]
    kwargs.setdefault("dropout", dropout)
    kwargs.setdefault("input_size", size)
    return EfficientNet(depth, classes=classes, **kwargs)
