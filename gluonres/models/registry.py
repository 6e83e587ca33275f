"""Model registry: one :class:`ModelSpec` per name, with the model's metadata.

A leaf: it imports no model family. ``gluonres.models`` imports the families (which
register themselves here) before any lookup, so :func:`gluonres.get_model` always sees the
built-in models first.

What a model is built for (input size, classes, input channels), the options its builder
takes and the warm-up its paper trains it with live here, where the model is registered
(like timm's ``default_cfgs``); :func:`model_info` reads them back from a built network.
"""
import dataclasses
import difflib
import fnmatch
import inspect
from typing import Callable, Optional, Tuple

from gluonres.errors import GluonresError, UnknownModelError


#: Options of every ResNet builder (passed on to :class:`~gluonres.models.resnet.ResNet`).
RESNET_OPTIONS = ("preact", "residual", "shortcut", "bottleneck", "arrangement",
                  "shortcut_op", "shortcut_op_args", "stride_on", "in_channels",
                  "first_unit_preact")

_MODELS = {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of a model without building it.

    Attributes
    ----------
    name : str
    builder : callable
        ``builder(**options) -> HybridBlock``.
    family : str
        ``'cifar'``, ``'imagenet'``, ``'classic'`` ... (``'user'`` for models registered
        without one).
    input_size : int
        The square input the model is built for by default.
    classes : int
        Output classes by default.
    in_channels : int
        Input channels by default; the built-in builders take ``in_channels=`` (e.g. 1
        for grey images) and fix the first convolution's input to it.
    warmup : {'none', 'error', 'fixed'}
        The learning-rate warm-up its paper trains it with (see
        :class:`~gluonres.train.TrainConfig`).
    options : tuple of str, optional
        Keyword options the builder takes besides ``classes`` (and ``input_size`` for a
        sizable model); ``None``: not declared, anything is passed on.
    min_input_size : int, optional
        For a model that is built for any input size (``input_size=`` option): the
        smallest one it can take. ``None``: the input size is fixed.
    """

    name: str
    builder: Callable
    family: str = "user"
    input_size: int = 224
    classes: int = 1000
    in_channels: int = 3
    warmup: str = "none"
    options: Optional[Tuple[str, ...]] = None
    min_input_size: Optional[int] = None

    @property
    def sizable(self):
        """Whether the builder takes ``input_size``."""
        return self.min_input_size is not None

    def accepts(self):
        """The keyword options :func:`get_model` passes to the builder (``None``: any)."""
        if self.options is None:
            return None
        return ("classes",) + (("input_size",) if self.sizable else ()) + tuple(self.options)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a built network is: its registered name, the input and output it takes and
    the other builder options it was built with (``shortcut``, ``stride_on`` ...: what a
    weights file must record to rebuild it).

    Read it with :func:`model_info`.
    """

    name: str
    input_size: int
    classes: int
    in_channels: int
    options: dict = dataclasses.field(default_factory=dict, hash=False)

    def input_shape(self, batch=1):
        """The NCHW input shape, e.g. ``(1, 3, 32, 32)``."""
        return (batch, self.in_channels, self.input_size, self.input_size)


def register_model(fn=None, **metadata):
    """Register a builder under its function name; a name may be registered once.

    Use as ``@register_model`` or ``@register_model(input_size=32, classes=10, ...)``
    with the fields of :class:`ModelSpec`.

    Parameters
    ----------
    fn : callable
        Builder ``fn(**kwargs) -> HybridBlock``; its ``__name__`` becomes the model name.
    **metadata
        :class:`ModelSpec` fields (``family``, ``input_size``, ``classes``,
        ``in_channels``, ``warmup``, ``options``, ``min_input_size``).

    Returns
    -------
    callable
        ``fn`` unchanged, so the decorator leaves the builder importable.

    Raises
    ------
    ValueError
        If the name is already registered.
    """
    if fn is None:
        return lambda f: register_model(f, **metadata)
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered by "
                         f"{_MODELS[name].builder.__module__}")
    _MODELS[name] = ModelSpec(name, fn, **metadata)
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
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def model_spec(name):
    """The :class:`ModelSpec` registered as ``name``, without building the model.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered; the message suggests the closest names.
    """
    try:
        return _MODELS[name]
    except KeyError:
        # a registered name that extends the one given (resnet56 -> resnet56_cifar) is the
        # likeliest meaning; then names that are spelled alike
        close = sorted(n for n in _MODELS if n.startswith(name + "_"))[:3]
        close += [n for n in difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.6)
                  if n not in close][:3 - len(close)]
        hint = f"did you mean {', '.join(close)}?" if close else "see `gluonres list`"
        raise UnknownModelError(f"unknown model {name!r}: {hint}") from None


def get_builder(name):
    """The builder registered as ``name``; unknown names raise with suggestions."""
    return model_spec(name).builder


def get_model(name, **kwargs):
    """Build a registered model.

    Parameters
    ----------
    name : str
        Registered name, e.g. ``'resnet56_cifar'``; see :func:`list_models`.
    **kwargs
        Passed to the builder: ``classes``, ``in_channels``, ``shortcut``,
        ``stride_on`` ... (the model's :meth:`ModelSpec.accepts`).

    Returns
    -------
    mxnet.gluon.HybridBlock
        The uninitialised network; :func:`model_info` reads what it was built as.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered; the message suggests the closest names.
    GluonresError
        If the model does not take one of ``kwargs`` (e.g. ``shortcut`` for AlexNet).
    """
    spec = model_spec(name)
    accepts = spec.accepts()
    if accepts is None:  # undeclared options: the builder's own signature decides
        params = inspect.signature(spec.builder).parameters.values()
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            accepts = tuple(p.name for p in params)
    unknown = [k for k in kwargs if accepts is not None and k not in accepts]
    if unknown:
        takes = ", ".join(accepts) if accepts else "no options"
        raise GluonresError(f"model {name!r} does not take the option {unknown[0]!r}; leave it "
                            f"out ({name} takes {takes})")
    net = spec.builder(**kwargs)
    net.model_info = ModelInfo(
        name, kwargs.get("input_size", getattr(net, "input_size", spec.input_size)),
        kwargs.get("classes", getattr(net, "classes", spec.classes)),
        kwargs.get("in_channels", getattr(net, "in_channels", spec.in_channels)),
        {k: v for k, v in kwargs.items() if k not in ("classes", "input_size", "in_channels")})
    net.model_name = name
    return net


def model_info(net):
    """What ``net`` was built as: name, input size, classes and input channels.

    A network from :func:`get_model` carries it; for one built directly from a family
    (e.g. ``cifar_resnet(20)``) it is read from the attributes every family sets
    (``classes``, ``input_size``, ``in_channels``), with the name of its class.

    Returns
    -------
    ModelInfo
    """
    info = getattr(net, "model_info", None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(getattr(net, "model_name", type(net).__name__),
                     getattr(net, "input_size", 224), getattr(net, "classes", None),
                     getattr(net, "in_channels", 3))
