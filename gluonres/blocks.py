"""The two building blocks of every network in the ResNet papers.

``ConvFactory`` is one convolution with its BatchNorm and ReLU, in post-activation
(conv-BN-ReLU, 2015) or pre-activation (BN-ReLU-conv, 2016) order; the EfficientNets
reuse it with swish and grouped (depthwise) convolutions. ``ResidualFactory`` is one
residual unit, basic or bottleneck, in either order, with shortcut option A, B or C, or
with no shortcut at all (the "plain" counterpart).
"""
from mxnet.gluon import HybridBlock, nn

SHORTCUTS = ("A", "B", "C")


def relu(F, x):
    """ReLU as the ``Activation`` operator, which has a oneDNN kernel.

    The plain ``relu`` operator has none in mxnet 1.9.1: each call converts oneDNN's
    blocked layout back to NCHW and the next convolution converts it again, which made
    ResNet-56 training ~25% slower on the project machine (docs/performance.md).
    """
    return F.Activation(x, act_type="relu")


def swish(F, x):
    """``x * sigmoid(x)`` (swish, also called SiLU), the EfficientNet activation."""
    return x * F.sigmoid(x)


# activation name -> function(F, x); ``act=True`` means "relu" for the ResNets
ACTIVATIONS = {"relu": relu, "swish": swish}


class ConvFactory(HybridBlock):
    """Convolution with BatchNorm and activation in a fixed order.

    Parameters
    ----------
    channels : int
        Output channels of the convolution.
    kernel_size : int
        Square kernel size; padding keeps the spatial size (``kernel_size // 2``).
    strides : int, default 1
        Convolution stride.
    in_channels : int, default 0
        Input channels (0 infers them at the first forward pass).
    preact : bool, default False
        ``False``: conv -> BN -> ReLU (2015). ``True``: BN -> ReLU -> conv (2016), the
        BatchNorm then normalises the *input* channels.
    bn : bool, default True
        Include the BatchNorm. The convolution never has a bias: every convolution in
        these networks is followed by a BatchNorm, either its own or the next unit's.
    act : bool or {'relu', 'swish'}, default True
        The activation: ``True`` is ``'relu'``, ``False`` (or ``None``) leaves it out.
    groups : int, default 1
        Convolution groups; ``groups == in_channels == channels`` is a depthwise
        convolution.
    prefix : str, optional
        Parameter prefix; the convolution's weight is ``<prefix>weight`` and the
        BatchNorm's are ``<prefix>bn_gamma`` etc.
    """

    def __init__(self, channels, kernel_size, strides=1, in_channels=0, preact=False,
                 bn=True, act=True, groups=1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        if act is True:
            act = "relu"
        if act and act not in ACTIVATIONS:
            raise ValueError(f"act must be a bool or one of {sorted(ACTIVATIONS)}, got {act!r}")
        self._preact = preact
        self._act = ACTIVATIONS[act] if act else None
        with self.name_scope():
            self.conv = nn.Conv2D(channels, kernel_size, strides, kernel_size // 2,
                                  groups=groups, use_bias=False, in_channels=in_channels,
                                  prefix="")
            self.bn = None
            if bn:
                bn_channels = in_channels if preact else channels
                self.bn = nn.BatchNorm(in_channels=bn_channels, prefix="bn_")

    def _norm_act(self, F, x):
        if self.bn is not None:
            x = self.bn(x)
        return self._act(F, x) if self._act is not None else x

    def hybrid_forward(self, F, x):
        if self._preact:
            return self.conv(self._norm_act(F, x))
        return self._norm_act(F, self.conv(x))


class ZeroPadShortcut(HybridBlock):
    """Option A: a parameter-free shortcut that subsamples and zero-pads channels.

    ``x[:, :, ::stride, ::stride]`` with ``(out - in) // 2`` zero channels before the
    input channels and the rest after, as in the public reference implementation
    (the identity lands in the middle channels).
    """

    def __init__(self, in_channels, channels, stride, prefix=None):
        super().__init__(prefix=prefix)
        if channels < in_channels:
            raise ValueError(f"option A cannot reduce channels ({in_channels} -> {channels}); "
                             "use shortcut='B'")
        self._stride = stride
        self._before = (channels - in_channels) // 2
        self._after = channels - in_channels - self._before

    def hybrid_forward(self, F, x):
        if self._stride > 1:
            x = F.slice(x, begin=(None,) * 4, end=(None,) * 4,
                        step=(1, 1, self._stride, self._stride))
        if not (self._before or self._after):
            return x
        zero = F.zeros_like(F.slice_axis(x, axis=1, begin=0, end=1))
        parts = []
        if self._before:
            parts.append(F.broadcast_axis(zero, axis=1, size=self._before))
        parts.append(x)
        if self._after:
            parts.append(F.broadcast_axis(zero, axis=1, size=self._after))
        return F.concat(*parts, dim=1)


class ResidualFactory(HybridBlock):
    """One residual unit of either paper, or its plain counterpart.

    Parameters
    ----------
    channels : int
        Output channels of the unit (for a bottleneck, 4x its inner width).
    in_channels : int
        Input channels.
    stride : int, default 1
        Spatial stride of the unit (2 where a stage halves the resolution).
    bottleneck : bool, default False
        ``False``: two 3x3 convolutions. ``True``: 1x1 -> 3x3 -> 1x1 with inner width
        ``channels // 4``.
    preact : bool, default False
        ``False``: the 2015 unit, ReLU after the addition. ``True``: the 2016 full
        pre-activation unit, BN-ReLU before each convolution and nothing after the
        addition.
    shortcut : {'A', 'B', 'C'}, default 'B'
        'A': identity, and zero-padding with subsampling where the shape changes (no
        parameters). 'B': identity, and a 1x1 projection where the shape changes.
        'C': 1x1 projections on every unit.
    residual : bool, default True
        ``False`` builds the plain counterpart: the same layers with no shortcut.
    stride_on : {'1x1', '3x3'}, default '1x1'
        In a bottleneck, which convolution carries the stride: the first 1x1 as in the
        2015 paper, or the 3x3 as in "ResNet v1b".
    skip_preact : bool, default False
        Pre-activation only: the input is already BN-ReLU'd (the unit right after the
        2016 stem), so the unit's own input BN-ReLU is left out.
    prefix : str, optional
        Parameter prefix, e.g. ``'stage2_unit1_'``.

    Notes
    -----
    In a pre-activation unit whose shape changes, the input BN-ReLU is shared by both
    branches (the projection or subsampling sees the activated input), as in the
    authors' code; where the shape is kept, the shortcut is the raw input.
    """

    def __init__(self, channels, in_channels, stride=1, bottleneck=False, preact=False,
                 shortcut="B", residual=True, stride_on="1x1", skip_preact=False,
                 prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if stride_on not in ("1x1", "3x3"):
            raise ValueError(f"stride_on must be '1x1' or '3x3', got {stride_on!r}")
        self._preact = preact
        self._residual = residual
        self._reshapes = stride != 1 or channels != in_channels
        with self.name_scope():
            self.preact_bn = None
            if preact and not skip_preact:
                self.preact_bn = nn.BatchNorm(in_channels=in_channels, prefix="preact_bn_")
            self.body = self._make_body(channels, in_channels, stride, bottleneck, preact,
                                        stride_on)
            self.shortcut = None
            if residual:
                self.shortcut = self._make_shortcut(channels, in_channels, stride, shortcut,
                                                    preact)

    def _make_body(self, channels, in_channels, stride, bottleneck, preact, stride_on):
        # (out channels, kernel, stride) of each convolution in the unit
        if bottleneck:
            width = channels // 4
            s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
            layout = [(width, 1, s1), (width, 3, s3), (channels, 1, 1)]
        else:
            layout = [(channels, 3, stride), (channels, 3, 1)]
        body = nn.HybridSequential(prefix="")
        cin = in_channels
        for i, (cout, k, s) in enumerate(layout, 1):
            last = i == len(layout)
            if preact:
                # the first convolution's BN-ReLU is the unit's shared preact_bn
                conv = ConvFactory(cout, k, s, cin, preact=True, bn=i > 1, act=i > 1,
                                   prefix=f"conv{i}_")
            else:
                # the last BN's ReLU comes after the addition
                conv = ConvFactory(cout, k, s, cin, act=not last, prefix=f"conv{i}_")
            body.add(conv)
            cin = cout
        return body

    def _make_shortcut(self, channels, in_channels, stride, shortcut, preact):
        if shortcut == "C" or (shortcut == "B" and self._reshapes):
            # pre-activation projections feed the next unit's BN, so they need none here
            return ConvFactory(channels, 1, stride, in_channels, bn=not preact, act=False,
                               prefix="shortcut_")
        if self._reshapes:
            return ZeroPadShortcut(in_channels, channels, stride, prefix="shortcut_")
        return None

    def hybrid_forward(self, F, x):
        if self._preact:
            act = relu(F, self.preact_bn(x)) if self.preact_bn is not None else x
            out = self.body(act)
            if not self._residual:
                return out
            if self.shortcut is None:
                return out + x
            return out + self.shortcut(act if self._reshapes else x)
        out = self.body(x)
        if self._residual:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return relu(F, out)
