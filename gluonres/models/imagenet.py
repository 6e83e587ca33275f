"""ImageNet ResNets of the 2015 paper (Table 1) and their 2016 pre-activation versions."""
from gluonres.models.registry import RESNET_OPTIONS, register_model
from gluonres.models.resnet import ResNet


WIDTHS = (64, 128, 256, 512)
# depth -> (bottleneck units?, units per stage): the 2015 paper's Table 1
SPEC = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
}


def imagenet_resnet(depth, preact=None, residual=True, shortcut="B", classes=1000,
                    **kwargs):
    """An ImageNet ResNet from the spec table.

    Parameters
    ----------
    depth : {18, 34, 50, 101, 152}
    preact : bool, optional
        2016 full pre-activation units (``arrangement='full_preact'``); ``arrangement=``
        (passed on) names any of the 2016 paper's arrangements.
    residual : bool, default True
        ``False`` builds the plain counterpart.
    shortcut : {'A', 'B', 'C'}, default 'B'
        The 2015 paper's ImageNet default is option B.
    classes : int, default 1000
    **kwargs
        Passed to :class:`~gluonres.models.resnet.ResNet`, e.g. ``stride_on='3x3'``
        for the "v1b" stride placement or ``in_channels=1`` for grey images.
    """
    if depth not in SPEC:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(SPEC)}, got {depth}")
    bottleneck, units = SPEC[depth]
    return ResNet(units, WIDTHS, stem="imagenet", bottleneck=bottleneck, preact=preact,
                  shortcut=shortcut, residual=residual, classes=classes, **kwargs)


_imagenet = register_model(family="imagenet", input_size=224, classes=1000,
                           options=RESNET_OPTIONS)


@_imagenet
def resnet18(**kw): return imagenet_resnet(18, **kw)
@_imagenet
def resnet34(**kw): return imagenet_resnet(34, **kw)
@_imagenet
def resnet50(**kw): return imagenet_resnet(50, **kw)
@_imagenet
def resnet101(**kw): return imagenet_resnet(101, **kw)
@_imagenet
def resnet152(**kw): return imagenet_resnet(152, **kw)


@_imagenet
def plain18(**kw): return imagenet_resnet(18, residual=False, **kw)
@_imagenet
def plain34(**kw): return imagenet_resnet(34, residual=False, **kw)


@_imagenet
def resnet18_v2(**kw): return imagenet_resnet(18, preact=True, **kw)
@_imagenet
def resnet34_v2(**kw): return imagenet_resnet(34, preact=True, **kw)
@_imagenet
def resnet50_v2(**kw): return imagenet_resnet(50, preact=True, **kw)
@_imagenet
def resnet101_v2(**kw): return imagenet_resnet(101, preact=True, **kw)
@_imagenet
def resnet152_v2(**kw): return imagenet_resnet(152, preact=True, **kw)
