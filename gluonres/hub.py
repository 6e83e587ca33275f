"""``gluonres.get_model`` and ``gluonres.list_models``: the registry's, plus the weights
shipped with the package (:mod:`gluonres.pretrained`)."""
from gluonres import io, pretrained as shipped
from gluonres.errors import GluonresError
from gluonres.models import registry


def get_model(name, pretrained=False, **kwargs):
    """Build a registered model, optionally with its shipped weights.

    Parameters
    ----------
    name : str
        Registered name, e.g. ``'resnet56_cifar'``; see :func:`list_models`.
    pretrained : bool, default False
        Load the weights shipped for ``name`` (``list_models(pretrained=True)``). The
        network then carries their model card as ``net.pretrained_card`` and the input
        normalisation they were trained with as ``net.preprocess`` (a
        :class:`~gluonres.data.preprocess.Preprocess`: uint8 ``(N, H, W, 3)`` images in,
        network input out).
    **kwargs
        Builder options (:func:`gluonres.models.get_model`). With ``pretrained``,
        options that change the weights' shapes (``classes``, ``in_channels``,
        ``shortcut``) must match the card's; to fine-tune on other classes call
        ``net.reset_classifier(n)``.

    Returns
    -------
    mxnet.gluon.HybridBlock
        Uninitialised, or initialised with the shipped weights.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered.
    GluonresError
        If no weights are shipped for ``name``, or ``kwargs`` do not fit them.
    """
    if not pretrained:
        return registry.get_model(name, **kwargs)
    card = shipped.card(name)
    classes = kwargs.get("classes")
    if classes is not None and classes != len(card["classes"]):
        raise GluonresError(
            f"the shipped {name} weights have {len(card['classes'])} classes, not {classes}; "
            f"load them without classes= and call net.reset_classifier({classes}) to "
            "fine-tune on yours")
    channels = 1 if card["preprocess"].get("color") == "L" else 3
    if kwargs.get("in_channels", channels) != channels:
        raise GluonresError(
            f"the shipped {name} weights are for {channels}-channel images, not "
            f"{kwargs['in_channels']}; load them without in_channels= (or train a "
            f"{kwargs['in_channels']}-channel model)")
    net, meta = io.model_for_weights(name, shipped.weights_path(name), **kwargs)
    net.pretrained_card = card
    net.preprocess = io.preprocess_of(meta)
    return net


def list_models(pattern="*", pretrained=False):
    """Names of the registered models matching a shell-style pattern, sorted.

    Parameters
    ----------
    pattern : str, default '*'
        ``fnmatch`` pattern, e.g. ``'resnet*_cifar'``.
    pretrained : bool, default False
        Only the models with shipped weights.

    Returns
    -------
    list of str
    """
    names = registry.list_models(pattern)
    if pretrained:
        have = set(shipped.names(pattern))
        names = [n for n in names if n in have]
    return names
