"""CIFAR ResNets of the 2015 paper (Sec. 4.2) and the 2016 pre-activation paper.

Depth is ``6n + 2`` for basic units and ``9n + 2`` for bottleneck units: a 3x3 stem,
three stages of ``n`` units at 16/32/64 filters (32x32, 16x16, 8x8 maps), global
average pooling and a 10-way classifier.
"""
from gluonres.blocks import resolve_arrangement
from gluonres.models.registry import RESNET_OPTIONS, register_model
from gluonres.models.resnet import ResNet


WIDTHS = (16, 32, 64)
# the 2015 paper uses option A on CIFAR (Sec. 4.2); the 2016 code projects (option B)
V1_SHORTCUT, V2_SHORTCUT = "A", "B"


def units_per_stage(depth, bottleneck=False):
    """``n`` for a CIFAR depth: ``(depth - 2) / 6`` (basic) or ``/ 9`` (bottleneck).

    Raises
    ------
    ValueError
        If the depth is not of that form.
    """
    layers_per_unit = 3 if bottleneck else 2
    n, rest = divmod(depth - 2, 3 * layers_per_unit)
    if rest or n < 1:
        form = "9n+2" if bottleneck else "6n+2"
        raise ValueError(f"a CIFAR {'bottleneck' if bottleneck else 'basic'} ResNet has "
                         f"depth {form} (n >= 1), got {depth}")
    return n


# depth -> (bottleneck units?, units per stage): the paper's CIFAR networks
SPEC = {d: (False, units_per_stage(d)) for d in (20, 32, 44, 56, 110, 1202)}
SPEC.update({d: (True, units_per_stage(d, True)) for d in (164, 1001)})


def cifar_resnet(depth, preact=None, residual=True, shortcut=None, bottleneck=None,
                 classes=10, arrangement=None, **kwargs):
    """A CIFAR ResNet of any ``6n+2`` (basic) or ``9n+2`` (bottleneck) depth.

    Parameters
    ----------
    depth : int
        Weighted layers; depths in ``SPEC`` pick their block kind from it.
    preact : bool, optional
        2016 full pre-activation units (``arrangement='full_preact'``).
    residual : bool, default True
        ``False`` builds the plain counterpart.
    shortcut : {'A', 'B', 'C'}, optional
        Defaults to 'B' for full pre-activation networks (the 2016 authors' code) and
        'A' for the others (2015, Sec. 4.2).
    bottleneck : bool, optional
        Defaults to the spec table's choice, else basic units.
    classes : int, default 10
    arrangement : str, optional
        The 2016 paper's activation arrangement (Fig. 4), see
        :class:`~gluonres.blocks.ResidualFactory`.
    **kwargs
        Passed to :class:`~gluonres.models.resnet.ResNet` (e.g. ``stride_on``,
        ``shortcut_op``, ``in_channels=1`` for grey images).
    """
    arrangement = resolve_arrangement(preact, arrangement)
    if bottleneck is None:
        bottleneck = SPEC.get(depth, (False, None))[0]
    n = units_per_stage(depth, bottleneck)
    if shortcut is None:
        shortcut = V2_SHORTCUT if arrangement == "full_preact" else V1_SHORTCUT
    return ResNet([n] * 3, WIDTHS, stem="cifar", bottleneck=bottleneck,
                  arrangement=arrangement, shortcut=shortcut, residual=residual,
                  classes=classes, **kwargs)


def _cifar(warmup="none"):
    """Register a CIFAR ResNet: 32x32 RGB input, 10 classes, the paper's warm-up."""
    return register_model(family="cifar", input_size=32, classes=10, warmup=warmup,
                          options=RESNET_OPTIONS)


# ResNet-110 and -1202 warm up at 0.1x until training error < 80% (2015, Sec. 4.2); the
# 2016 paper's CIFAR runs warm up for a fixed 400 iterations
@_cifar()
def resnet20_cifar(**kw): return cifar_resnet(20, **kw)
@_cifar()
def resnet32_cifar(**kw): return cifar_resnet(32, **kw)
@_cifar()
def resnet44_cifar(**kw): return cifar_resnet(44, **kw)
@_cifar()
def resnet56_cifar(**kw): return cifar_resnet(56, **kw)
@_cifar("error")
def resnet110_cifar(**kw): return cifar_resnet(110, **kw)
@_cifar("error")
def resnet1202_cifar(**kw): return cifar_resnet(1202, **kw)
# the bottleneck network of the 2016 paper's Table 3 ("original" column), 2015 units
@_cifar()
def resnet164_cifar(**kw): return cifar_resnet(164, **kw)


@_cifar()
def plain20_cifar(**kw): return cifar_resnet(20, residual=False, **kw)
@_cifar()
def plain32_cifar(**kw): return cifar_resnet(32, residual=False, **kw)
@_cifar()
def plain44_cifar(**kw): return cifar_resnet(44, residual=False, **kw)
@_cifar()
def plain56_cifar(**kw): return cifar_resnet(56, residual=False, **kw)
@_cifar()
def plain110_cifar(**kw): return cifar_resnet(110, residual=False, **kw)


@_cifar("fixed")
def resnet20_cifar_v2(**kw): return cifar_resnet(20, preact=True, **kw)
@_cifar("fixed")
def resnet32_cifar_v2(**kw): return cifar_resnet(32, preact=True, **kw)
@_cifar("fixed")
def resnet44_cifar_v2(**kw): return cifar_resnet(44, preact=True, **kw)
@_cifar("fixed")
def resnet56_cifar_v2(**kw): return cifar_resnet(56, preact=True, **kw)
@_cifar("fixed")
def resnet110_cifar_v2(**kw): return cifar_resnet(110, preact=True, **kw)
@_cifar("fixed")
def resnet164_cifar_v2(**kw): return cifar_resnet(164, preact=True, **kw)
@_cifar("fixed")
def resnet1001_cifar_v2(**kw): return cifar_resnet(1001, preact=True, **kw)
