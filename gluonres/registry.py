"""Model registry: one name per builder, close-name suggestions, pattern listing."""
import difflib
import fnmatch
import importlib

from .errors import GluonresError, UnknownModelError

_MODELS = {}


def _builtin():
    """The registered models, the built-in families included (imported on first use)."""
    importlib.import_module(".models", __package__)
    return _MODELS


def register_model(fn):
    """Register a builder under its function name; a name may be registered once.

    Parameters
    ----------
    fn : callable
        Builder ``fn(**kwargs) -> HybridBlock``; its ``__name__`` becomes the model name.

    Returns
    -------
    callable
        ``fn`` unchanged, so the decorator leaves the builder importable.

    Raises
    ------
    ValueError
        If the name is already registered.
    """
    name = fn.__name__
    if name in _builtin():  # built-ins first, so a clash is reported here, not later
        raise ValueError(f"model {name!r} is already registered by {_MODELS[name].__module__}")
    _MODELS[name] = fn
    return fn


def list_models(pattern="*"):
    """Names of the registered models matching a shell-style pattern, sorted.

    Parameters
    ----------
    pattern : str, default '*'
        ``fnmatch`` pattern, e.g. ``'resnet*_cifar'``.

    Returns
    -------
    list of str
    """
    return sorted(n for n in _builtin() if fnmatch.fnmatchcase(n, pattern))


def get_builder(name):
    """The builder registered as ``name``; unknown names raise with suggestions."""
    try:
        return _builtin()[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see `gluonres list`"
        raise UnknownModelError(f"unknown model {name!r}: {hint}") from None


def get_model(name, **kwargs):
    """Build a registered model.

    Parameters
    ----------
    name : str
        Registered name, e.g. ``'resnet56_cifar'``; see :func:`list_models`.
    **kwargs
        Passed to the builder: ``classes``, ``shortcut``, ``stride_on`` ...

    Returns
    -------
    mxnet.gluon.HybridBlock
        The uninitialised network; the registered name is kept in ``net.model_name``.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered; the message suggests the closest names.
    GluonresError
        If the model does not take one of ``kwargs`` (e.g. ``shortcut`` for AlexNet).
    """
    builder = get_builder(name)
    try:
        net = builder(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        option = str(err).rsplit(" ", 1)[-1]
        raise GluonresError(f"model {name!r} does not take the option {option}; leave it "
                            "out (shortcut, stride_on, arrangement and shortcut_op are "
                            "ResNet options)") from None
    net.model_name = name
    return net
