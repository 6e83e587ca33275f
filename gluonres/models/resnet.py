"""The network that every ResNet family instantiates from its spec table."""
from mxnet.gluon import HybridBlock, nn

from gluonres.blocks import ConvFactory, ResidualFactory, resolve_arrangement
from gluonres.models.common import FeaturesHead, check_classes, check_in_channels


class ResNet(FeaturesHead, HybridBlock):
    """Stem, residual stages and a pooled classifier, built from one spec.

    Parameters
    ----------
    units : sequence of int
        Residual units per stage.
    widths : sequence of int
        Width of each stage (a bottleneck stage outputs ``4 * width`` channels).
    stem : {'cifar', 'imagenet'}
        'cifar': 3x3 convolution with ``widths[0]`` filters. 'imagenet': 7x7/2
        convolution with 64 filters and a 3x3/2 max pool.
    bottleneck : bool, default False
        Bottleneck (1x1-3x3-1x1) units instead of basic (3x3-3x3) ones.
    preact : bool, optional
        2016 full pre-activation units (``arrangement='full_preact'``); the stem's
        BN-ReLU then acts as the first unit's pre-activation and a final BN-ReLU precedes
        the pooling.
    arrangement : str, optional
        Any of the 2016 paper's activation arrangements (Fig. 4), see
        :class:`~gluonres.blocks.ResidualFactory`; ``'relu_preact'`` ends with a ReLU
        before the pooling. Default from ``preact`` (``'original'``).
    shortcut : {'A', 'B', 'C'}, default 'B'
        See :class:`~gluonres.blocks.ResidualFactory`.
    shortcut_op, shortcut_op_args
        The 2016 paper's shortcut operators (Fig. 2), on every unit; see
        :class:`~gluonres.blocks.ResidualFactory`.
    residual : bool, default True
        ``False`` builds the plain network (no shortcuts).
    stride_on : {'1x1', '3x3'}, default '1x1'
        Where a bottleneck puts its stride.
    classes : int, default 1000
        Output classes.
    in_channels : int, default 3
        Input channels of the stem convolution (1 for grey images).
    first_unit_preact : bool, default False
        Give a pre-activation network's first unit its own BN-ReLU, although the stem
        ends in one: GluonCV's ResNet v2 layout (:mod:`gluonres.importers`). Default:
        the first unit takes the stem's output as its pre-activation.

    Notes
    -----
    Parameter names read like the paper: ``stem_conv_weight``,
    ``stage2_unit1_conv1_weight``, ``stage2_unit1_conv1_bn_gamma``,
    ``stage2_unit1_shortcut_weight``, ``head_dense_weight``.

    :meth:`forward_features` ends after the head's BN-ReLU (or ReLU) of a
    pre-activation network, before the global pooling; :meth:`forward_head` pools and
    classifies (see :class:`~gluonres.models.common.FeaturesHead`).
    """

    def __init__(self, units, widths, stem="cifar", bottleneck=False, preact=None,
                 shortcut="B", residual=True, stride_on="1x1", classes=1000, arrangement=None,
                 shortcut_op="identity", shortcut_op_args=None, in_channels=3,
                 first_unit_preact=False, **kwargs):
        super().__init__(prefix="", **kwargs)
        arrangement = resolve_arrangement(preact, arrangement)
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        check_classes(classes)
        check_in_channels(in_channels)
        self.classes = classes
        self.in_channels = in_channels
        self.arrangement = arrangement
        self.input_size = 32 if stem == "cifar" else 224
        expansion = 4 if bottleneck else 1
        with self.name_scope():
            stem_channels = widths[0] if stem == "cifar" else 64
            self.stem = nn.HybridSequential(prefix="")
            if stem == "cifar":
                self.stem.add(ConvFactory(stem_channels, 3, 1, in_channels, prefix="stem_conv_"))
            else:
                self.stem.add(ConvFactory(stem_channels, 7, 2, in_channels, prefix="stem_conv_"),
                              nn.MaxPool2D(3, 2, 1, prefix="stem_pool_"))
            self.stages = nn.HybridSequential(prefix="")
            cin = stem_channels
            for s, (n, width) in enumerate(zip(units, widths), 1):
                stage = nn.HybridSequential(prefix=f"stage{s}_")
                with stage.name_scope():
                    for u in range(1, n + 1):
                        cout = width * expansion
                        stage.add(ResidualFactory(
                            cout, cin, stride=2 if (u == 1 and s > 1) else 1,
                            bottleneck=bottleneck, arrangement=arrangement,
                            shortcut=shortcut, residual=residual, stride_on=stride_on,
                            skip_preact=(s == 1 and u == 1 and not first_unit_preact),
                            shortcut_op=shortcut_op,
                            shortcut_op_args=shortcut_op_args, prefix=f"unit{u}_"))
                        cin = cout
                self.stages.add(stage)
            self.head = nn.HybridSequential(prefix="head_")
            with self.head.name_scope():
                if arrangement == "full_preact":
                    self.head.add(nn.BatchNorm(in_channels=cin, prefix="bn_"))
                if arrangement in ("full_preact", "relu_preact"):
                    self.head.add(nn.Activation("relu", prefix="relu_"))
                self.head.add(nn.GlobalAvgPool2D(prefix="pool_"),
                              nn.Dense(classes, in_units=cin, prefix="dense_"))

    def _layers(self):
        # the head's BN-ReLU of a pre-activation network belongs to the features; it
        # stays in ``head`` for its parameter names (``head_bn_gamma``)
        head = list(self.head)
        pool = next(i for i, layer in enumerate(head) if isinstance(layer, nn.GlobalAvgPool2D))
        return [self.stem, self.stages] + head[:pool], head[pool:]
