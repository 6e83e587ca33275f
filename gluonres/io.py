"""Weights files: gluonres ``.params`` (with metadata), exported params, reference ``.npz``,
and the registered model built for them (classes, input size and channels, resize).

Every format is read without unpickling: ``mx.nd.load`` for params and
``numpy.load(allow_pickle=False)`` for ``.npz``.
"""
import contextlib
import dataclasses
import json
import numbers
import os
import re
import zipfile
from io import StringIO

import mxnet as mx
import numpy as np

from gluonres import pretrained
from gluonres._files import atomic_path
from gluonres._untrusted import limit
from gluonres.data.images import check_channels
from gluonres.data.preprocess import REFERENCE, Preprocess
from gluonres.errors import CorruptFileError, GluonresError, WeightsMismatchError
from gluonres.models import get_model, model_info, model_spec


#: Key under which a gluonres weights file keeps its JSON metadata (as uint8 bytes).
META_KEY = "__gluonres_meta__"
#: Prefix of optimizer-state arrays in training checkpoints (``opt:NAME``).
OPTIMIZER_PREFIX = "opt:"
#: Prefix of the best epoch's weights in training checkpoints (``best:NAME``).
BEST_PREFIX = "best:"
#: Training-state arrays that are not weights of the network.
STATE_PREFIXES = (OPTIMIZER_PREFIX, BEST_PREFIX)


def save_arrays(path, arrays, meta=None):
    """Save named NDArrays (and JSON metadata) as one MXNet params file, atomically.

    The format of weights files and training checkpoints: ``mx.nd.save`` with the
    metadata stored as UTF-8 JSON bytes under :data:`META_KEY`, so reading never
    unpickles.

    Parameters
    ----------
    path : str
        Destination file; replaced only once fully written.
    arrays : dict of str to mxnet.nd.NDArray
    meta : dict, optional
        JSON-able metadata kept in the same file.
    """
    with atomic_path(path) as tmp:
        write_arrays(tmp, arrays, meta)


def write_arrays(path, arrays, meta=None):
    """:func:`save_arrays` without the atomic rename, for callers that manage it."""
    arrays = dict(arrays)
    if meta is not None:
        arrays[META_KEY] = mx.nd.array(
            np.frombuffer(json.dumps(meta).encode(), np.uint8), dtype="uint8")
    mx.nd.save(path, arrays)


def load_arrays(path):
    """Inverse of :func:`save_arrays`: ``(arrays, meta)``; ``meta`` is ``{}`` if absent.

    Raises
    ------
    CorruptFileError
        If the file is truncated, corrupt or holds unnamed arrays.
    """
    try:
        loaded = mx.nd.load(path)
    except mx.MXNetError:
        raise CorruptFileError(f"{path!r} is not a readable MXNet params file (truncated or "
                               "corrupt); re-export or re-download it") from None
    if not isinstance(loaded, dict):
        raise CorruptFileError(f"{path!r} holds unnamed arrays, not named parameters; save "
                               "weights with gluonres.io.save_weights or net.export")
    meta = {}
    if META_KEY in loaded:
        meta = json.loads(loaded.pop(META_KEY).asnumpy().tobytes().decode())
    return loaded, meta


def save_weights(net, path, meta=None):
    """Save every parameter of ``net`` under its readable name, atomically.

    Parameters
    ----------
    net : mxnet.gluon.Block
    path : str
        Destination ``.params`` file; replaced only once fully written.
    meta : dict, optional
        JSON-able metadata kept in the same file (model name, preprocessing, classes).
    """
    save_arrays(path, {name: p.data().copyto(mx.cpu())
                       for name, p in net.collect_params().items()}, meta)


def read_weights(path, expected=None):
    """Read a weights file into ``(arrays, meta)`` without touching any network.

    Accepts gluonres ``.params``, training checkpoints (their optimizer state and best
    weights are left out), exported ``NAME-0000.params`` (``arg:``/``aux:`` keys) and the reference
    ``.npz`` files (PyTorch names, mapped to ours; their metadata carries the
    reference's input normalisation).

    Parameters
    ----------
    path : str
    expected : dict of str to tuple, optional
        Parameter shapes of the network the weights are for: a reference ``.npz`` whose
        arrays declare other shapes is refused from its headers, before anything is
        decompressed.

    Raises
    ------
    GluonresError
        If the file is missing, truncated or not a weights file.
    """
    path = os.fspath(path)  # a pathlib.Path too
    if not os.path.isfile(path):
        raise GluonresError(f"weights file {path!r} does not exist; pass the path of a "
                            ".params or reference .npz file")
    if path.endswith(".npz"):
        return _read_reference_npz(path, expected)
    loaded, meta = load_arrays(path)
    return weights_only(loaded), meta


def weights_only(arrays):
    """The network's weights among a file's arrays: training state dropped, exported
    ``arg:``/``aux:`` prefixes removed."""
    return {re.sub(r"^(arg|aux):", "", k): v for k, v in arrays.items()
            if not k.startswith(STATE_PREFIXES)}


#: How much larger than its file a reference .npz may declare its arrays to be: float
#: weights barely compress, a "zip bomb" declares thousands of times its size.
NPZ_MAX_EXPANSION = 16


def _npz_headers(path):
    """``({key: (shape, dtype)}, declared bytes)`` from the ``.npy`` headers inside an
    ``.npz``: only the headers are decompressed."""
    try:
        declared = 0
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(f)
                headers[info.filename[:-4] if info.filename.endswith(".npy")
                        else info.filename] = (tuple(shape), dtype)
                declared += max(info.file_size, int(np.prod(shape)) * dtype.itemsize)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptFileError(f"{path!r} is not a readable .npz file "
                               f"({type(err).__name__}); re-download it") from None
    return headers, declared


def _read_reference_npz(path, expected=None):
    headers, declared = _npz_headers(path)
    for key, (shape, dtype) in headers.items():
        if dtype.kind != "f":
            raise CorruptFileError(f"{path!r}: array {key!r} holds {dtype}, not floating-point "
                                   "weights; re-download it")
        name = _torch_cifar_name(key)
        if expected and name in expected and tuple(expected[name]) != shape:
            raise WeightsMismatchError(
                f"{path!r}: parameter {name!r} ({key}) has shape {shape}, but the model "
                f"needs {tuple(expected[name])}; load weights of the same model")
    # bounded before any array is decompressed
    allowed = min(max(NPZ_MAX_EXPANSION * os.path.getsize(path), 1 << 20), limit("file_bytes"))
    if declared > allowed:
        raise CorruptFileError(
            f"{path!r} declares {declared:,} bytes of arrays in a {os.path.getsize(path):,}-"
            f"byte file (at most {allowed:,}): not a weights file of this size; re-download it")
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise CorruptFileError(f"{path!r} is not a readable .npz file ({err}); re-download "
                               "it") from None
    arrays = {_torch_cifar_name(k): mx.nd.array(v) for k, v in raw.items()}
    meta = {"source": "reference", "preprocess": REFERENCE.to_dict()}
    return arrays, meta


_BN = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
       "running_var": "running_var"}


def _torch_cifar_name(key):
    """Map the reference implementation's names (``layer2.0.bn1.weight``) to ours."""
    parts = key.split(".")
    if parts[0] == "conv1":
        return "stem_conv_weight"
    if parts[0] == "bn1":
        return "stem_conv_bn_" + _BN[parts[1]]
    if parts[0] == "linear":
        return "head_dense_" + parts[1]
    m = re.fullmatch(r"layer(\d+)", parts[0])
    if m and len(parts) == 4:
        unit = f"stage{m.group(1)}_unit{int(parts[1]) + 1}_"
        if parts[2].startswith("conv"):
            return unit + parts[2] + "_weight"
        if parts[2].startswith("bn"):
            return unit + "conv" + parts[2][2:] + "_bn_" + _BN[parts[3]]
    raise WeightsMismatchError(f"reference weight {key!r} has no counterpart in a gluonres "
                               "CIFAR ResNet; only the option-A reference layout is known")


def check_compatible(net, arrays, meta=None, source="weights"):
    """Raise ``WeightsMismatchError`` naming the first parameter that does not fit."""
    params = net.collect_params()
    model = model_info(net).name
    saved_from = (meta or {}).get("model")
    origin = f" (saved from {saved_from})" if saved_from and saved_from != model else ""
    for name, p in params.items():
        if name not in arrays:
            raise WeightsMismatchError(
                f"{source}{origin} has no parameter {name!r} needed by {model or 'the model'}; "
                "load weights saved from the same model")
        shape = tuple(arrays[name].shape)
        if p.shape and all(p.shape) and tuple(p.shape) != shape:
            raise WeightsMismatchError(
                f"{source}{origin}: parameter {name!r} has shape {shape}, but "
                f"{model or 'the model'} needs {tuple(p.shape)}; load weights saved from the "
                "same model (and the same classes)")
    extra = [k for k in arrays if k not in params]  # in file order: the first one named
    if extra:
        raise WeightsMismatchError(
            f"{source}{origin} has parameter {extra[0]!r} that {model or 'the model'} does not "
            "have; load weights saved from the same model")


def load_weights(net, path, ctx=None):
    """Load a weights file into ``net`` after checking every name and shape.

    Nothing is changed in ``net`` unless the whole file fits. ``path`` may be
    ``'pretrained'``: the weights shipped for ``net``'s model (:mod:`gluonres.pretrained`).

    Returns
    -------
    dict
        The file's metadata (``preprocess``, ``model``, ``classes`` ... when present).
    """
    expected = {n: p.shape for n, p in net.collect_params().items()
                if p.shape and all(p.shape)}  # deferred shapes are checked after loading
    arrays, meta = read_weights(pretrained.resolve(path, model_info(net).name), expected)
    set_weights(net, arrays, meta, repr(path), ctx)
    return meta


def sized_model(model, size=None, **model_kwargs):
    """The registered ``model`` built to run on ``size`` x ``size`` images.

    A model built for any size (:attr:`ModelSpec.sizable`) gets ``input_size=size``;
    another is built as registered and checked to take that size (a ResNet's global
    pooling takes any size; a fixed classifier does not), and its
    :func:`~gluonres.models.model_info` then reports ``size``, the size it runs at (and
    is exported at).

    Parameters
    ----------
    model : str
        Registered name.
    size : int, optional
        Default: the model's own input size.
    **model_kwargs
        Builder options: ``classes``, ``in_channels``, ``shortcut`` ...

    Returns
    -------
    mxnet.gluon.HybridBlock

    Raises
    ------
    GluonresError
        For a size that is not a whole number of pixels of at least 1, one below the
        smallest the model takes, or ``in_channels`` other than 1 (grey) or 3 (RGB).
    """
    spec = model_spec(model)
    if "in_channels" in model_kwargs:
        check_channels(model_kwargs["in_channels"])
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                             or size < 1):
        raise GluonresError(f"--size {size!r} is not an image size; pass a whole number of "
                            "pixels of at least 1, or leave --size out for the model's own "
                            f"({spec.input_size})")
    if size is None or size == spec.input_size:
        return get_model(model, **model_kwargs)
    if spec.sizable:
        if size < spec.min_input_size:
            raise GluonresError(f"{model} cannot take {size}x{size} images (its last feature "
                                f"map would be empty below {spec.min_input_size}x"
                                f"{spec.min_input_size}); pass --size {spec.min_input_size} "
                                "or more")
        return get_model(model, input_size=size, **model_kwargs)
    return run_at(get_model(model, **model_kwargs), size)


def run_at(net, size):
    """``net``, checked to take ``size`` x ``size`` images, reporting that size in its
    :func:`~gluonres.models.model_info` (the size it is trained and exported at).

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    size : int or None
        ``None`` or the size it reports already: ``net`` unchanged.

    Returns
    -------
    mxnet.gluon.HybridBlock
        ``net`` itself.

    Raises
    ------
    GluonresError
        If the network cannot take that size (e.g. a fixed-size classifier).
    """
    info = model_info(net)
    if size is None or size == info.input_size:
        return net
    try:
        with contextlib.redirect_stdout(StringIO()):  # mxnet prints the failed shapes
            net(mx.sym.var("data")).infer_shape(data=(1, info.in_channels, size, size))
    except mx.MXNetError:
        raise GluonresError(f"{info.name} cannot take {size}x{size} images (it is built for "
                            f"{info.input_size}x{info.input_size} only); pass --size "
                            f"{info.input_size} or leave --size out") from None
    net.model_info = dataclasses.replace(info, input_size=size)
    return net


def model_for_weights(model, path, size=None, **model_kwargs):
    """The registered ``model`` built for the weights file at ``path``, with them loaded.

    The number of classes, the input size and the input channels come from the weights'
    metadata unless given (a run on a 4-class folder at ``--size 64`` saves a 4-class
    head trained on 64x64 images), so ``evaluate`` and ``export`` need no ``--classes``
    or ``--size`` for a gluonres weights file.

    Parameters
    ----------
    model : str
    path : str
        A weights file, or ``'pretrained'``: those shipped for ``model``
        (:mod:`gluonres.pretrained`).
    size : int, optional
        Input size (:func:`sized_model`); default the recorded one, else the model's.
    **model_kwargs
        Builder options.

    Returns
    -------
    net : mxnet.gluon.HybridBlock
    meta : dict
        As for :func:`load_weights`.

    Raises
    ------
    GluonresError
        If ``in_channels`` differs from the channel count the weights record, or a
        ``size`` differs from that of a per-pixel mean image they normalise with.
    WeightsMismatchError
        If the weights do not fit the network built (another model, other options).
    """
    path = pretrained.resolve(path, model)
    arrays, meta = read_weights(path)
    recorded = recorded_options(model, meta)
    recorded_size = recorded.pop("size", None)
    have, want = meta.get("in_channels"), model_kwargs.get("in_channels")
    if want is not None and have is not None and check_channels(want) != have:
        raise GluonresError(f"{path!r} holds weights for {have}-channel images, not {want}; "
                            f"leave the input channels unset (the weights' {have} is used) or "
                            f"train a {want}-channel model")
    net = sized_model(model, recorded_size if size is None else size,
                      **{**recorded, **model_kwargs})
    size = model_info(net).input_size
    mean_image = (meta.get("preprocess") or {}).get("mean_image")
    if mean_image is not None and len(np.shape(mean_image)) == 3 \
            and np.shape(mean_image)[1] != size:
        side = np.shape(mean_image)[1]
        raise GluonresError(f"{path!r} normalises with a {side}x{side} per-pixel mean image, "
                            f"so it runs on {side}x{side} images only; leave --size out (or "
                            "train with --normalize channel for weights that take any size)")
    set_weights(net, arrays, meta, repr(path))
    return net, meta


def recorded_options(model, meta):
    """What weights (or checkpoint) metadata records of the network they were saved
    from: ``classes`` (a count), ``size`` (:func:`sized_model`), ``in_channels`` and
    the builder options of ``model_options`` (imported weights: ``stride_on`` ...),
    each only when recorded; ``in_channels`` only where it differs from ``model``'s own,
    so that models without that builder option still load."""
    own = model_spec(model).in_channels
    options = meta.get("model_options") or {}
    plain = (str, int, float, bool, type(None))
    if not isinstance(options, dict) or not all(
            isinstance(k, str) and (isinstance(v, plain) or isinstance(v, dict) and all(
                isinstance(a, str) and isinstance(b, plain) for a, b in v.items()))
            for k, v in options.items()):
        raise GluonresError('the weights\' "model_options" is not a mapping of builder '
                            "options to plain values; save the weights again")
    options = dict(options)
    if "classes" in meta:
        options["classes"] = len(meta["classes"])
    if meta.get("in_channels", own) != own:
        options["in_channels"] = meta["in_channels"]
    if meta.get("input_size"):
        options["size"] = meta["input_size"]
    return options


def weights_resize(meta, size, weights="weights"):
    """The shorter side images are resized to (before the centre crop to ``size``) for
    weights, as their metadata records it (``meta["resize"]``).

    A gluonres training run records its own input size (what training did); imported
    ImageNet weights record 256 for 224. At another ``size`` than the recorded
    ``input_size`` the same proportion is kept.

    Returns
    -------
    int or None
        ``None`` when the metadata records no resize.

    Raises
    ------
    GluonresError
        If the recorded resize is not ``{"shorter_side": pixels}``.
    """
    resize = meta.get("resize")
    if resize is None:
        return None
    shorter = resize.get("shorter_side") if isinstance(resize, dict) else None
    if isinstance(shorter, bool) or not isinstance(shorter, int) or shorter < 1:
        raise GluonresError(f"{weights!r} records a malformed resize (not "
                            '{"shorter_side": pixels}); save the weights again')
    recorded = meta.get("input_size") or size
    return shorter if recorded == size else round(shorter * size / recorded)


def set_weights(net, arrays, meta=None, source="weights", ctx=None):
    """Set ``net``'s parameters from named arrays after checking every name and shape."""
    check_compatible(net, arrays, meta, source=source)
    ctx = ctx or mx.cpu()
    for name, p in net.collect_params().items():
        if p._data is None and p._deferred_init == ():
            p.initialize(ctx=ctx)
        p.set_data(arrays[name])


def preprocess_of(meta, default=None):
    """The :class:`Preprocess` recorded in weights metadata, else ``default``."""
    if "preprocess" in meta:
        return Preprocess.from_dict(meta["preprocess"])
    return default


def weights_preprocess(meta, weights, mean=None, std=None, required=True, channels=3):
    """The input normalisation of weights: ``mean`` and ``std`` when given, else the one
    their metadata records.

    Parameters
    ----------
    meta : dict
        The weights' metadata (:func:`gluonres.io.read_weights`).
    weights : str or None
        Their path, named in the error.
    mean, std : sequence of float, optional
        Per-channel override (``channels`` values each), for pixels in [0, 1].
    required : bool, default True
        Refuse weights that record none (and no override).
    channels : int, default 3
        The model's input channels.

    Returns
    -------
    gluonres.data.preprocess.Preprocess or None

    Raises
    ------
    GluonresError
        If ``required`` and the normalisation is unknown, or an override does not have
        one value per channel.
    """
    values = " ".join(["R", "G", "B"] if channels == 3 else ["V"] * channels)
    if mean is not None or std is not None:
        for option, given in (("--mean", mean), ("--std", std)):
            if given is not None and len(given) != channels:
                raise GluonresError(f"{option} takes {channels} value(s), one per input "
                                    f"channel of the model, got {len(given)}; pass "
                                    f"{option} {values}")
        return Preprocess(mean=mean, std=std)
    preprocess = preprocess_of(meta)
    if preprocess is None and required:
        raise GluonresError(f"{weights!r} does not record its input normalisation; pass "
                            f"--mean {values} and --std {values} (in [0, 1] pixel units)")
    return preprocess
