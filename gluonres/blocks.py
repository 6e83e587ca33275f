"""The two building blocks of every network in the ResNet papers.

``ConvFactory`` is one convolution with its BatchNorm and ReLU, in post-activation
(conv-BN-ReLU, 2015) or pre-activation (BN-ReLU-conv, 2016) order; the EfficientNets
reuse it with swish and grouped (depthwise) convolutions. ``ResidualFactory`` is one
residual unit, basic or bottleneck, in any of the five activation arrangements of the
2016 paper (Fig. 4), with shortcut option A, B or C, with any of the 2016 paper's
shortcut operators (Fig. 2: scaling, gating, dropout), or with no shortcut at all (the
"plain" counterpart).
"""
from mxnet.gluon import HybridBlock, nn

from gluonres.errors import GluonresError


SHORTCUTS = ("A", "B", "C")
#: Where BN and ReLU sit relative to the addition: 2016 paper, Fig. 4 (a)-(e).
ARRANGEMENTS = ("original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")
#: How the shortcut ``h`` and the residual branch ``F`` are added: 2016 paper, Fig. 2.
#: (Fig. 2(e), a 1x1 convolution on every shortcut, is ``shortcut='C'``.)
SHORTCUT_OPS = ("identity", "scale", "exclusive_gate", "shortcut_gate", "dropout")
_PREACT = ("relu_preact", "full_preact")


def resolve_arrangement(preact=None, arrangement=None):
    """The activation arrangement named by ``arrangement``, or by the ``preact`` switch.

    ``preact=True`` is ``'full_preact'`` (the 2016 unit) and ``preact=False`` is
    ``'original'`` (the 2015 unit); given together, the two must agree.

    Raises
    ------
    GluonresError
        For an unknown arrangement, or one that contradicts ``preact``.
    """
    if arrangement is None:
        return "full_preact" if preact else "original"
    if arrangement not in ARRANGEMENTS:
        raise GluonresError(f"arrangement must be one of {ARRANGEMENTS}, got {arrangement!r}")
    if preact is not None and bool(preact) != (arrangement == "full_preact"):
        raise GluonresError(f"preact={preact} contradicts arrangement={arrangement!r} (preact "
                            "means 'full_preact'); pass only one of them, e.g. build "
                            "resnet20_cifar with arrangement=... rather than resnet20_cifar_v2")
    return arrangement


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
        # The channels are joined as (N, C, H*W) tensors, then given back their (H, W).
        # A 4-D concat would split its gradient at channel offsets such as 8 and 24, and
        # with AVX-512 kernels that gradient arrives in 16-channel blocks: oneDNN's
        # concat backward then dies of a division by zero (SIGFPE) in a hybridized
        # graph whose addition feeds a BatchNorm (the 2016 'bn_after_add' unit). The
        # 3-D gradient is plain NCHW on every ISA (tests/train/test_isa_matrix.py).
        flat = F.reshape(x, shape=(0, 0, -1))
        zero = F.zeros_like(F.slice_axis(flat, axis=1, begin=0, end=1))
        parts = []
        if self._before:
            parts.append(F.broadcast_axis(zero, axis=1, size=self._before))
        parts.append(flat)
        if self._after:
            parts.append(F.broadcast_axis(zero, axis=1, size=self._after))
        return F.reshape_like(F.concat(*parts, dim=1), x, lhs_begin=2, rhs_begin=2)


class ShortcutOp(HybridBlock):
    """How a unit adds its shortcut ``h`` to its residual branch ``F`` (2016 paper, Fig. 2).

    ========================  =====================================  ===========
    ``kind``                  output                                  2016 paper
    ========================  =====================================  ===========
    ``'scale'``               ``scale * h + branch_scale * F``        Fig. 2(b)
    ``'exclusive_gate'``      ``(1 - g) * h + g * F``                 Fig. 2(c)
    ``'shortcut_gate'``       ``(1 - g) * h + F``                     Fig. 2(d)
    ``'dropout'``             ``dropout(h) + F``                      Fig. 2(f)
    ========================  =====================================  ===========

    ``g = sigmoid(W_g x + b_g)`` is a 1x1 convolution (with bias, at the unit's stride)
    of the unit's input ``x``, as in the paper; ``b_g`` starts at ``gate_bias``.

    Parameters
    ----------
    kind : {'scale', 'exclusive_gate', 'shortcut_gate', 'dropout'}
    channels, in_channels, stride : int
        The unit's output and input channels and stride (the gate's shape).
    scale : float, default 0.5
        Shortcut factor for ``'scale'``.
    branch_scale : float, default 1.0
        Branch factor for ``'scale'`` (the paper also tries 0.5).
    gate_bias : float, default -6.0
        Initial gate bias; the paper's best for both gates (Table 1).
    dropout : float, default 0.5
        Drop ratio of ``'dropout'`` (inverted dropout: identity at inference).
    """

    def __init__(self, kind, channels, in_channels, stride=1, scale=0.5, branch_scale=1.0,
                 gate_bias=-6.0, dropout=0.5, prefix=None):
        super().__init__(prefix=prefix)
        if kind not in SHORTCUT_OPS or kind == "identity":
            raise GluonresError(f"shortcut operator must be one of {SHORTCUT_OPS[1:]}, got "
                                f"{kind!r}")
        self._kind = kind
        self._scale, self._branch_scale = scale, branch_scale
        with self.name_scope():
            self.gate = self.drop = None
            if kind.endswith("_gate"):
                from mxnet import init
                self.gate = nn.Conv2D(channels, 1, stride, in_channels=in_channels,
                                      bias_initializer=init.Constant(gate_bias), prefix="")
            elif kind == "dropout":
                self.drop = nn.Dropout(dropout, prefix="")

    def hybrid_forward(self, F, x, h, branch):
        if self._kind == "scale":
            if self._branch_scale != 1:
                branch = self._branch_scale * branch
            return self._scale * h + branch
        if self._kind == "dropout":
            return self.drop(h) + branch
        g = F.sigmoid(self.gate(x))
        if self._kind == "exclusive_gate":
            return (1 - g) * h + g * branch
        # branch first: as the second operand, mxnet 1.9.1's oneDNN subgraph pass (fused
        # inference, exports) fuses this addition into the branch's last convolution but
        # hands the gate's 1x1 weight to the unit's first convolution ("Shape
        # inconsistent, Provided = [16,16,1,1], inferred shape=(16,16,3,3)"), on every ISA
        return branch + (1 - g) * h


class ResidualFactory(HybridBlock):
    """One residual unit of either paper, any 2016 variant, or its plain counterpart.

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
    preact : bool, optional
        The common switch: ``False`` is ``arrangement='original'`` (the 2015 unit, ReLU
        after the addition), ``True`` is ``'full_preact'`` (the 2016 unit).
    shortcut : {'A', 'B', 'C'}, default 'B'
        'A': identity, and zero-padding with subsampling where the shape changes (no
        parameters). 'B': identity, and a 1x1 projection where the shape changes.
        'C': 1x1 projections on every unit (also the 2016 paper's Fig. 2(e)).
    residual : bool, default True
        ``False`` builds the plain counterpart: the same layers with no shortcut.
    stride_on : {'1x1', '3x3'}, default '1x1'
        In a bottleneck, which convolution carries the stride: the first 1x1 as in the
        2015 paper, or the 3x3 as in "ResNet v1b".
    skip_preact : bool, default False
        Pre-activation only: the input is already activated (the unit right after the
        stem), so the unit's own input BN-ReLU (or ReLU) is left out.
    arrangement : str, optional
        The 2016 paper's Fig. 4 (default from ``preact``):

        - ``'original'`` (a): conv-BN-ReLU-conv-BN, add, ReLU;
        - ``'bn_after_add'`` (b): conv-BN-ReLU-conv, add, BN, ReLU (the unit of the
          original MXNet ResNet example);
        - ``'relu_before_add'`` (c): conv-BN-ReLU-conv-BN-ReLU, add;
        - ``'relu_preact'`` (d): ReLU-conv-BN-ReLU-conv-BN, add;
        - ``'full_preact'`` (e): BN-ReLU-conv-BN-ReLU-conv, add.
    shortcut_op : {'identity', 'scale', 'exclusive_gate', 'shortcut_gate', 'dropout'}
        How the shortcut is added (2016 paper, Fig. 2; see :class:`ShortcutOp`); it
        acts on whatever the shortcut option gives (identity, zero-padding or
        projection). Default ``'identity'``: a plain sum.
    shortcut_op_args : dict, optional
        Keyword arguments of :class:`ShortcutOp` (``scale``, ``gate_bias`` ...).
    prefix : str, optional
        Parameter prefix, e.g. ``'stage2_unit1_'``.

    Notes
    -----
    In a pre-activation unit whose shape changes, the input activation is shared by both
    branches (the projection or subsampling sees the activated input), as in the
    authors' code; where the shape is kept, the shortcut is the raw input. Projections
    have a BatchNorm unless a BatchNorm follows the addition (``'bn_after_add'``) or
    opens the next unit (``'full_preact'``). Parameter names do not depend on the
    arrangement except for the layers it adds or removes (``post_bn_`` after the
    addition in ``'bn_after_add'``, no ``conv2_bn_`` there), so the 2015 and 2016
    networks keep their names.
    """

    def __init__(self, channels, in_channels, stride=1, bottleneck=False, preact=None,
                 shortcut="B", residual=True, stride_on="1x1", skip_preact=False,
                 arrangement=None, shortcut_op="identity", shortcut_op_args=None,
                 prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        arrangement = resolve_arrangement(preact, arrangement)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if stride_on not in ("1x1", "3x3"):
            raise ValueError(f"stride_on must be '1x1' or '3x3', got {stride_on!r}")
        if shortcut_op not in SHORTCUT_OPS:
            raise GluonresError(f"shortcut_op must be one of {SHORTCUT_OPS}, got "
                                f"{shortcut_op!r} (a 1x1 convolution shortcut is shortcut='C')")
        if shortcut_op != "identity" and not residual:
            raise GluonresError(f"shortcut_op={shortcut_op!r} needs a shortcut; a plain unit "
                                "(residual=False) has none")
        if shortcut_op_args and shortcut_op == "identity":
            raise GluonresError("shortcut_op_args given without a shortcut_op; pass "
                                "shortcut_op='scale', 'exclusive_gate', ...")
        self._arrangement = arrangement
        self._preact = arrangement in _PREACT
        self._residual = residual
        self._reshapes = stride != 1 or channels != in_channels
        self._input_relu = arrangement == "relu_preact" and not skip_preact
        with self.name_scope():
            self.preact_bn = None
            if arrangement == "full_preact" and not skip_preact:
                self.preact_bn = nn.BatchNorm(in_channels=in_channels, prefix="preact_bn_")
            self.body = self._make_body(channels, in_channels, stride, bottleneck, arrangement,
                                        stride_on)
            self.shortcut = self.combine = None
            if residual:
                self.shortcut = self._make_shortcut(channels, in_channels, stride, shortcut,
                                                    arrangement)
                if shortcut_op != "identity":
                    self.combine = ShortcutOp(shortcut_op, channels, in_channels, stride,
                                              **(shortcut_op_args or {}), prefix="gate_")
            self.post_bn = None
            if arrangement == "bn_after_add":
                self.post_bn = nn.BatchNorm(in_channels=channels, prefix="post_bn_")

    @staticmethod
    def _make_body(channels, in_channels, stride, bottleneck, arrangement, stride_on):
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
            if arrangement == "full_preact":
                # the first convolution's BN-ReLU is the unit's shared preact_bn
                conv = ConvFactory(cout, k, s, cin, preact=True, bn=i > 1, act=i > 1,
                                   prefix=f"conv{i}_")
            else:
                # the last convolution: BN and ReLU as the arrangement says, the rest
                # (the addition's ReLU, or BN) comes after the addition
                conv = ConvFactory(cout, k, s, cin,
                                   bn=not (last and arrangement == "bn_after_add"),
                                   act=not last or arrangement == "relu_before_add",
                                   prefix=f"conv{i}_")
            body.add(conv)
            cin = cout
        return body

    def _make_shortcut(self, channels, in_channels, stride, shortcut, arrangement):
        if shortcut == "C" or (shortcut == "B" and self._reshapes):
            # a projection needs no BN of its own where one follows the addition
            return ConvFactory(channels, 1, stride, in_channels, act=False,
                               bn=arrangement not in ("bn_after_add", "full_preact"),
                               prefix="shortcut_")
        if self._reshapes:
            return ZeroPadShortcut(in_channels, channels, stride, prefix="shortcut_")
        return None

    def hybrid_forward(self, F, x):
        if self.preact_bn is not None:
            act = relu(F, self.preact_bn(x))
        elif self._input_relu:
            act = relu(F, x)
        else:
            act = x
        out = self.body(act)
        if self._residual:
            source = act if (self._preact and self._reshapes) else x
            h = self.shortcut(source) if self.shortcut is not None else source
            out = out + h if self.combine is None else self.combine(source, h, out)
        if self.post_bn is not None:
            out = self.post_bn(out)
        if self._arrangement in ("original", "bn_after_add"):
            out = relu(F, out)
        return out
