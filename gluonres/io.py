"""Weights files: gluonres ``.params`` (with metadata), exported params, reference ``.npz``.

Every format is read without unpickling: ``mx.nd.load`` for params and
``numpy.load(allow_pickle=False)`` for ``.npz``.
"""
import json
import os
import re
import zipfile

import mxnet as mx
import numpy as np

from gluonres._files import atomic_path
from gluonres._untrusted import limit
from gluonres.data.preprocess import REFERENCE, Preprocess
from gluonres.errors import CorruptFileError, GluonresError, WeightsMismatchError
from gluonres.models import get_model, model_info


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

    Nothing is changed in ``net`` unless the whole file fits.

    Returns
    -------
    dict
        The file's metadata (``preprocess``, ``model``, ``classes`` ... when present).
    """
    expected = {n: p.shape for n, p in net.collect_params().items()
                if p.shape and all(p.shape)}  # deferred shapes are checked after loading
    arrays, meta = read_weights(path, expected)
    set_weights(net, arrays, meta, repr(path), ctx)
    return meta


def model_for_weights(model, path, **model_kwargs):
    """The registered ``model`` built for the weights file at ``path``, with them loaded.

    The number of classes comes from the weights' metadata unless ``classes`` is given
    (a run on a 4-class folder saves a 4-class head), so ``evaluate`` and ``export``
    need no ``--classes`` for a gluonres weights file.

    Returns
    -------
    net : mxnet.gluon.HybridBlock
    meta : dict
        As for :func:`load_weights`.
    """
    arrays, meta = read_weights(path)
    if "classes" in meta:
        model_kwargs.setdefault("classes", len(meta["classes"]))
    net = get_model(model, **model_kwargs)
    set_weights(net, arrays, meta, repr(path))
    return net, meta


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


def weights_preprocess(meta, weights, mean=None, std=None, required=True):
    """The input normalisation of weights: ``mean`` and ``std`` when given, else the one
    their metadata records.

    Parameters
    ----------
    meta : dict
        The weights' metadata (:func:`gluonres.io.read_weights`).
    weights : str or None
        Their path, named in the error.
    mean, std : sequence of 3 float, optional
        Per-channel override, for pixels in [0, 1].
    required : bool, default True
        Refuse weights that record none (and no override).

    Returns
    -------
    gluonres.data.preprocess.Preprocess or None

    Raises
    ------
    GluonresError
        If ``required`` and the normalisation is unknown.
    """
    if mean is not None or std is not None:
        return Preprocess(mean=mean, std=std)
    preprocess = preprocess_of(meta)
    if preprocess is None and required:
        raise GluonresError(f"{weights!r} does not record its input normalisation; pass "
                            "--mean R G B and --std R G B (in [0, 1] pixel units)")
    return preprocess
