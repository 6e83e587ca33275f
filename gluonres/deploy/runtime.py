"""Run an exported network from its files alone: ``manifest.json``, symbol and params.

This is the deployment side of :mod:`gluonres.deploy`. It imports mxnet, numpy and small
gluonres helpers (:mod:`~gluonres.errors`, :mod:`~gluonres.data.preprocess`,
:mod:`~gluonres.data.images`, :mod:`~gluonres.machine`), never the model code: an export
is loaded as a ``SymbolBlock`` and needs nothing that built it. :func:`onnx_session` runs
its ONNX file instead; :mod:`gluonres.deploy.engines` loads an export on ONNX Runtime or
OpenVINO through these checks.

The manifest makes the preprocessing explicit (nothing is baked into the graph)::

    x = (pixels / 255 - mean) / std        # per channel (RGB, or "L": grey), then NCHW
    x = (pixels / 255 - mean_image) / std  # the 2015 paper's per-pixel mean (mean.npy)

and how an image file becomes those pixels (``image``: its colour, then the resize shared
with training and ``evaluate``, :func:`gluonres.data.images.fit_pixels`).

An export folder and the images given to ``predict`` are untrusted input. Every file the
manifest names must lie inside the folder and carry a SHA-256 entry; only regular files
are read; the graph may hold only the operators gluonres exports contain, and its shapes,
the params and every image are checked against :data:`gluonres._untrusted.LIMITS` before anything is
allocated or decoded. Errors never quote a file's content.
"""
import contextlib
import hashlib
import io
import json
import math
import os
import struct
import sys

import mxnet as mx
import numpy as np

from gluonres._files import sha256_of
from gluonres.data.images import COLORS, fit_pixels, scaled_shape
from gluonres.data.preprocess import Preprocess
from gluonres._untrusted import (image_size, limit, over_limit, printable, read_bytes,
                                 regular_size)
from gluonres.errors import CorruptFileError, DataError, GluonresError
from gluonres.machine import threads


#: File name of the manifest inside an export folder.
MANIFEST = "manifest.json"
#: Format tag written into every manifest; readers refuse tags they do not know.
FORMAT = "gluonres-export/1"
#: Graphs an export may hold: the float32 graph and, with ``--int8``, a quantized one.
VARIANTS = {"fp32": ("symbol", "params"), "int8": ("int8_symbol", "int8_params")}
#: Manifest keys a reader relies on.
REQUIRED = ("model", "input", "image", "preprocess", "classes", "files", "sha256")
#: Batch size used when predicting many images.
BATCH_SIZE = 64
#: The operators of every graph gluonres exports (all registered models, float32 and
#: oneDNN INT8); ``tests/deploy/test_untrusted_exports.py`` checks that the list covers
#: them. A graph with any other operator is refused before it runs.
GRAPH_OPS = frozenset({
    "Activation", "BatchNorm", "Concat", "Convolution", "Dropout", "Flatten",
    "FullyConnected", "Pooling", "Reshape", "_mul_scalar", "broadcast_axis", "broadcast_mul",
    "elemwise_add", "elemwise_mul", "null", "relu", "reshape_like", "sigmoid", "slice",
    "slice_axis", "tanh", "zeros_like",
    # oneDNN INT8 (resnets: fused conv+BN+sum+ReLU, quantized pooling, FC, flatten)
    "_contrib_dequantize", "_contrib_quantize_v2", "_contrib_quantized_act",
    "_contrib_quantized_concat", "_contrib_quantized_elemwise_add",
    "_contrib_quantized_flatten", "_contrib_quantized_pooling", "_sg_mkldnn_conv",
    "_sg_mkldnn_fully_connected"})

# mxnet's NDArray file format (src/ndarray/ndarray.cc): list magic, NDArray magics
_LIST_MAGIC, _ND_MAGICS = 0x112, (0xF993FAC9, 0xF993FACA)
# mshadow type flags -> bytes per element, for the dtypes an export's params can hold
_DTYPE_BYTES = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8}


def _short(value, length=60):
    """``repr`` of a value from an untrusted file, escaped and cut for an error message."""
    text = printable(value if isinstance(value, str) else repr(value))
    return repr(text if len(text) <= length else text[:length] + "...")


def member_path(folder, name, manifest_path):
    """The real path of the file ``name`` that a manifest lists, confined to ``folder``.

    Raises
    ------
    CorruptFileError
        If ``name`` is not a relative path that stays inside the folder once ``..`` and
        symbolic links are resolved.
    """
    if not isinstance(name, str) or not name or "\x00" in name or os.path.isabs(name):
        raise CorruptFileError(f"{manifest_path!r} names the file {_short(name)}, but only "
                               "relative paths inside the export folder are allowed; "
                               "re-export the model")
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, name))
    if real == root or os.path.commonpath([root, real]) != root:
        raise CorruptFileError(f"{manifest_path!r} names the file {_short(name)}, which lies "
                               f"outside the export folder {folder!r}; an export reads only "
                               "its own files: re-export the model")
    return real


def _check_manifest(m, path):
    """Refuse a manifest whose fields a reader would trip over, naming the first one."""
    def bad(problem):
        return CorruptFileError(f"{path!r} is malformed: {problem}; re-export the model")

    def is_int(v, low=1, high=65535):
        return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

    def numbers(v, count, positive=False):
        return (isinstance(v, list) and len(v) == count and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            and (x > 0 or not positive) for x in v))

    files, digests = m["files"], m["sha256"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in files.items()):
        raise bad('"files" must map roles to file names')
    if "symbol" not in files or "params" not in files:
        raise bad('"files" must name the "symbol" and "params" files')
    if not isinstance(digests, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64
            and all(c in "0123456789abcdef" for c in v) for k, v in digests.items()):
        raise bad('"sha256" must map file names to 64 hexadecimal digits')
    for role, name in files.items():
        if name not in digests:  # a file loaded without a digest would go unchecked
            raise bad(f'"files" lists {_short(name)} ({_short(role)}) without a "sha256" '
                      "entry")
    if not isinstance(m["model"], str):
        raise bad('"model" must be a name')
    classes = m["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str)
                                                               for c in classes):
        raise bad('"classes" must be a list of class names')
    image = m["image"]
    if not isinstance(image, dict) or not (isinstance(image.get("size"), list)
                                           and len(image["size"]) == 2
                                           and all(is_int(s) for s in image["size"])):
        raise bad('"image" must give "size" as [height, width]')
    resize = image.get("resize")
    if resize is not None and not (isinstance(resize, dict)
                                   and is_int(resize.get("shorter_side"))):
        raise bad('"image" "resize" must be null or {"shorter_side": pixels}')
    if not isinstance(image.get("color"), str) or image["color"] not in COLORS:
        names = " or ".join(json.dumps(c) for c in COLORS)
        raise bad(f'"image" "color" must be {names}')
    channels = COLORS[image["color"]]
    spec = m["preprocess"]
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise bad('"preprocess" must be null or an object')
    if spec.get("mean") is not None and not numbers(spec["mean"], channels):
        raise bad(f'"preprocess" "mean" must be null or {channels} numbers (one per channel '
                  f'of "{image["color"]}")')
    if spec.get("std") is not None and not numbers(spec["std"], channels, positive=True):
        raise bad(f'"preprocess" "std" must be null or {channels} positive numbers (one per '
                  f'channel of "{image["color"]}")')
    mean_image = spec.get("mean_image")
    if mean_image is not None and (not isinstance(mean_image, str) or mean_image not in digests):
        raise bad('"preprocess" "mean_image" must be null or a file with a "sha256" entry')


def read_manifest(folder, verify=True):
    """Read and check ``folder/manifest.json``, and every file it lists against its SHA-256.

    Parameters
    ----------
    folder : str
        An export folder written by :func:`gluonres.deploy.export`.
    verify : bool, default True
        Check the SHA-256 of every listed file (each must be a regular file inside the
        folder, within :data:`gluonres._untrusted.LIMITS` ``file_bytes``).

    Returns
    -------
    dict

    Raises
    ------
    GluonresError
        If the folder or its manifest is missing.
    CorruptFileError
        If the manifest is unreadable or malformed, names a path outside the folder, or a
        listed file is missing or does not match its recorded SHA-256 (truncated, modified,
        or from another export).
    """
    if not os.path.isdir(folder):
        what = "does not exist" if not os.path.lexists(folder) else "is not a folder"
        raise GluonresError(f"export folder {folder!r} {what}; pass a folder written by "
                            "`gluonres export`")
    path = os.path.join(folder, MANIFEST)
    if not os.path.lexists(path):
        raise GluonresError(f"{folder!r} holds no {MANIFEST}; pass a folder written by "
                            "`gluonres export`")
    data = read_bytes(path, "manifest", "re-export the model", "json_bytes", CorruptFileError)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CorruptFileError(f"{path!r} is not readable JSON (not UTF-8 at byte {err.start}); "
                               "re-export the model") from None
    except json.JSONDecodeError as err:  # its message gives the position, not the text
        raise CorruptFileError(f"{path!r} is not readable JSON ({err.msg} at line "
                               f"{err.lineno} column {err.colno}); re-export the model") from None
    except (ValueError, RecursionError):  # e.g. numbers of 5000 digits, deep nesting
        raise CorruptFileError(f"{path!r} is not readable JSON (too deeply nested or too "
                               "long a number); re-export the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CorruptFileError(f"{path!r} is not a {FORMAT} manifest (format {_short(found)}); "
                               "re-export the model with this version of gluonres")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise CorruptFileError(f"{path!r} lacks {', '.join(missing)}; re-export the model")
    _check_manifest(manifest, path)
    for fname in manifest["sha256"]:  # confined whether verified or not
        member_path(folder, fname, path)
    if verify:
        verify_files(folder, manifest)
    return manifest


def verify_files(folder, manifest, skip=()):
    """Check every file a manifest lists (but ``skip``) against its SHA-256.

    Raises
    ------
    CorruptFileError
        If a file is missing, not a regular file inside the folder, above the
        ``file_bytes`` limit, or does not match.
    """
    path = os.path.join(folder, MANIFEST)
    for fname, expected in manifest["sha256"].items():
        if fname in skip:
            continue
        real = member_path(folder, fname, path)
        shown = os.path.join(folder, fname)
        if not os.path.lexists(real):
            raise CorruptFileError(f"{shown!r} listed in {path!r} is missing; re-export the "
                                   "model or copy the whole folder")
        size = regular_size(real, "file", "re-export the model", CorruptFileError)
        if size > limit("file_bytes"):
            raise CorruptFileError(over_limit("file_bytes", f"the size of {shown!r} in bytes",
                                               size))
        if sha256_of(real) != expected:
            raise CorruptFileError(
                f"{shown!r} does not match the sha256 recorded in {path!r} (truncated, "
                "modified or from another export); re-export the model")


def _member_bytes(folder, manifest, name, limit_name="file_bytes"):
    """The bytes of a listed file, checked against its SHA-256 (read once: no file swapped
    in between the check and the use)."""
    path = os.path.join(folder, MANIFEST)
    if name not in manifest["sha256"]:
        raise CorruptFileError(f"{path!r} has no sha256 entry for {_short(name)}; re-export "
                               "the model")
    real = member_path(folder, name, path)
    shown = os.path.join(folder, name)
    if not os.path.lexists(real):
        raise CorruptFileError(f"{shown!r} listed in {path!r} is missing; re-export the "
                               "model or copy the whole folder")
    data = read_bytes(real, "file", "re-export the model", limit_name, CorruptFileError)
    if hashlib.sha256(data).hexdigest() != manifest["sha256"][name]:
        raise CorruptFileError(f"{shown!r} does not match the sha256 recorded in {path!r} "
                               "(truncated, modified or from another export); re-export the "
                               "model")
    return data


def preprocess_of(folder, manifest):
    """The :class:`~gluonres.data.Preprocess` an export's manifest describes.

    Raises
    ------
    GluonresError
        If the export records no preprocessing (exported from untrained weights).
    CorruptFileError
        If ``mean.npy`` fails its checks: SHA-256, a float array of shape ``(3, H, W)``
        for the export's image size, no pickled objects.
    """
    spec = manifest.get("preprocess") or {}
    if spec.get("mean") is None and spec.get("mean_image") is None and spec.get("std") is None:
        raise GluonresError(
            f"{os.path.join(folder, MANIFEST)!r} records no input normalisation (exported "
            "without trained weights); re-export with --weights, or with --mean R G B --std "
            "R G B")
    mean_image = None
    if spec.get("mean_image"):
        mean_image = _mean_image(folder, manifest, spec["mean_image"])
    return Preprocess(mean=tuple(spec["mean"]) if spec.get("mean") is not None else None,
                      std=tuple(spec["std"]) if spec.get("std") is not None else None,
                      mean_image=mean_image)


def _mean_image(folder, manifest, name):
    data = _member_bytes(folder, manifest, name)
    shown = os.path.join(folder, name)
    height, width = manifest["image"]["size"]
    channels = image_channels(manifest)
    try:
        f = io.BytesIO(data)
        version = np.lib.format.read_magic(f)
        shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0) else
                           np.lib.format.read_array_header_2_0(f))
    except (ValueError, OSError, EOFError, SyntaxError):  # their messages quote the header
        raise CorruptFileError(f"{shown!r} is not a readable .npy file; re-export the "
                               "model") from None
    if dtype.kind != "f" or tuple(shape) != (channels, height, width):
        raise CorruptFileError(f"{shown!r} holds a {dtype.kind!r}-kind array of shape "
                               f"{tuple(shape)}, not the float ({channels}, {height}, {width}) "
                               "per-pixel mean of this export; re-export the model")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
    except (ValueError, OSError, EOFError):
        raise CorruptFileError(f"{shown!r} is not a readable .npy file; re-export the "
                               "model") from None


def read_image(path):
    """Decode an image file as uint8 ``(H, W, 3)`` RGB.

    Grayscale images are replicated to three channels and an alpha channel is dropped
    (:func:`fit_image` then converts to the manifest's ``color``). Only regular JPEG, PNG
    and BMP files within :data:`gluonres._untrusted.LIMITS` (``image_bytes``,
    ``image_pixels``, the size read from the header before decoding) are decoded.

    Raises
    ------
    DataError
        If the file is missing, not a regular file, too large, or not a decodable image.
    """
    fix = "pass paths of image files"
    data = read_bytes(path, "image", fix, "image_bytes")
    size = image_size(data)
    if size is None or 0 in size:
        raise DataError(f"{path!r} is not a readable image (JPEG, PNG or BMP); check the "
                        "file or convert it")
    width, height = size
    if width * height > limit("image_pixels"):
        raise DataError(over_limit("image_pixels", f"{path!r} is {width}x{height} pixels, "
                                    "so its pixel count", width * height))
    with _decoder_messages():
        try:
            image = mx.image.imdecode(data, flag=1)
            image.wait_to_read()  # mxnet decodes asynchronously: its errors surface here
        except mx.MXNetError:
            image = None
    # a truncated file can decode to nothing, or to other dimensions than its header's; a
    # truncated JPEG decodes (grey where data is missing) without a word: its end is checked
    if image is None or sorted(image.shape[:2]) != sorted((height, width)) or \
            _jpeg_truncated(data):
        raise DataError(f"{path!r} is not a readable image (JPEG, PNG or BMP; truncated or "
                        "corrupt); check the file or convert it")
    return image


@contextlib.contextmanager
def _decoder_messages():
    """Swallow what the C image decoders write to stderr during a decode (libpng's "PNG
    input buffer is incomplete" ...): a failure is reported in one line of gluonres's."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _jpeg_truncated(data):
    """Whether a JPEG's end-of-image marker is missing after its first scan.

    ``FF D9`` cannot occur inside entropy-coded data (``FF`` is stuffed as ``FF 00``)."""
    if data[:2] != b"\xff\xd8":
        return False
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
        elif marker == 0xDA:
            return data.find(b"\xff\xd9", i) < 0
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return True  # no scan found where one must be


def image_channels(manifest):
    """The input channels of an export: 3 for ``"color": "RGB"``, 1 for ``"L"`` (grey)."""
    return COLORS[manifest["image"]["color"]]


def color_name(channels):
    """How a message calls an image of ``channels`` channels: "RGB", "grey" ..."""
    return {3: "RGB", 1: "grey"}.get(channels, f"{channels}-channel")


def fit_image(image, spec, name="image"):
    """Bring a decoded RGB image to the network's input as ``spec`` says: its colour, then
    its size, by :func:`gluonres.data.images.fit_pixels` (what training and ``evaluate``
    do to the same file).

    Parameters
    ----------
    image : mxnet.nd.NDArray or numpy.ndarray
        uint8 ``(H, W, 3)`` RGB.
    spec : dict
        The manifest's ``image``: ``color`` (``"RGB"``, or ``"L"``: grey), ``size``
        ``[H, W]`` and ``resize``, either ``None`` (the image must already have that
        size; small CIFAR exports, whose 32x32 inputs are not photos to be shrunk
        silently) or ``{"shorter_side": S}`` (resize the shorter side to ``S``, then
        crop the centre).
    name : str
        How to call the image in an error message.

    Returns
    -------
    mxnet.nd.NDArray or numpy.ndarray
        uint8 ``(H, W, C)``, of the type of ``image``.

    Raises
    ------
    DataError
        If ``resize`` is ``None`` and the size differs, or if resizing would exceed the
        ``image_pixels`` limit (a very elongated image).
    """
    height, width = spec["size"]
    resize = spec.get("resize")
    h, w = image.shape[:2]
    if (h, w) != (height, width) and not resize:
        raise DataError(
            f"{name} is {w}x{h} pixels, but this export takes "
            f"{width}x{height} images and does not resize (its manifest sets no resize); "
            f"resize the image to {width}x{height} first")
    shorter = resize["shorter_side"] if resize else None
    if shorter:
        scaled = scaled_shape(h, w, shorter, (height, width))
        if scaled[0] * scaled[1] > limit("image_pixels"):  # e.g. 1x30000 -> 256x7680000
            raise DataError(over_limit(
                "image_pixels", f"{name} is {w}x{h} pixels; resizing its shorter side to "
                f"{shorter} would make it {scaled[1]}x{scaled[0]}, so its pixel count",
                scaled[0] * scaled[1], "crop it to a less elongated shape first"))
    pixels = image.asnumpy() if isinstance(image, mx.nd.NDArray) else image
    fitted = fit_pixels(pixels, (height, width), shorter, COLORS[spec.get("color", "RGB")])
    return mx.nd.array(fitted, dtype="uint8") if isinstance(image, mx.nd.NDArray) else fitted


class Exported:
    """An exported network loaded from its files, with its preprocessing and classes.

    Use :func:`load_exported` (mxnet) or :func:`gluonres.deploy.engines.load` (any engine)
    to create one.

    Attributes
    ----------
    folder : str
    manifest : dict
    variant : {'fp32', 'int8'}
    net : mxnet.gluon.SymbolBlock or None
        Hybridized; maps preprocessed float32 NCHW input to logits (``None`` on another
        engine: :meth:`forward` runs every engine).
    engine : str
        ``'mxnet'``, or the engine of :func:`gluonres.deploy.engines.load`.
    classes : list of str
    """

    def __init__(self, folder, manifest, variant, net, engine="mxnet", run=None):
        self.folder = folder
        self.manifest = manifest
        self.variant = variant
        self.net = net
        self.engine = engine
        self.classes = list(manifest["classes"])
        self._preprocess = None
        self._run = run

    def forward(self, x):
        """Logits of a preprocessed float32 NCHW batch, on the export's engine.

        Parameters
        ----------
        x : mxnet.nd.NDArray or numpy.ndarray
            ``(N, C, H, W)``, as :attr:`preprocess` makes it.

        Returns
        -------
        numpy.ndarray
            ``(N, classes)`` float32 logits.
        """
        if self._run is not None:  # another engine (gluonres.deploy.engines)
            return self._run(x)
        if not isinstance(x, mx.nd.NDArray):
            x = mx.nd.array(x, dtype="float32")
        return self.net(x).asnumpy()

    @property
    def preprocess(self):
        """The manifest's preprocessing (raises if the export records none)."""
        if self._preprocess is None:
            self._preprocess = preprocess_of(self.folder, self.manifest)
        return self._preprocess

    def load_images(self, paths):
        """Read and fit image files (:func:`fit_image`) into a uint8 ``(N, H, W, C)``
        numpy array."""
        spec = self.manifest["image"]
        return np.stack([fit_image(read_image(p).asnumpy(), spec, name=repr(p))
                         for p in paths])

    def predict(self, paths, top_k=5):
        """Top-``k`` classes with softmax probabilities for each image file.

        Parameters
        ----------
        paths : list of str
            Image files (converted to the export's colour; resized only if the manifest
            says so).
        top_k : int, default 5
            Clamped to the number of classes.

        Returns
        -------
        list of dict
            Per image: ``image`` (its path) and ``top_k``, a list of
            ``{class, index, probability}``, most probable first.
        """
        if top_k < 1:
            raise GluonresError(f"--top-k must be at least 1, got {top_k}")
        preprocess = self.preprocess  # an unusable export fails before images are read
        images = self.load_images(paths)
        out = []
        for start in range(0, len(paths), BATCH_SIZE):
            batch = mx.nd.array(images[start:start + BATCH_SIZE], dtype="uint8")
            logits = self.forward(preprocess(batch))
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            for path, p in zip(paths[start:start + BATCH_SIZE], probs):
                best = np.argsort(-p, kind="stable")[:top_k]
                out.append({"image": path, "top_k": [
                    {"class": self.classes[i], "index": int(i), "probability": float(p[i])}
                    for i in best]})
        return out


def load_symbol_block(symbol, params_file, ctx=None):
    """``SymbolBlock`` over an exported (possibly quantized) graph, input ``data``.

    Like ``SymbolBlock.imports``, with the input declared float32 so that mxnet need not
    guess its type, and parameters kept in their saved dtypes (int8 for a quantized
    graph). For a graph and params you trust; :func:`load_exported` checks an export's
    first.

    Parameters
    ----------
    symbol : str or mxnet.sym.Symbol
        ``NAME-symbol.json`` or a graph built from it.
    params_file : str
        The matching ``NAME-0000.params``.
    ctx : mxnet.Context, optional
    """
    ctx = ctx or mx.cpu()
    try:
        sym = mx.sym.load(symbol) if isinstance(symbol, str) else symbol
        net = mx.gluon.SymbolBlock(sym, [mx.sym.var("data", dtype="float32")])
        net.collect_params().load(params_file, ctx, cast_dtype=True, dtype_source="saved")
    except (mx.MXNetError, AssertionError, ValueError):
        # mxnet's message can quote the file (its JSON parser does), so it is not repeated
        raise CorruptFileError(f"cannot load the exported graph with {params_file!r} (its "
                               "parameters are truncated, corrupt or do not fit the graph); "
                               "re-export the model") from None
    return net


def _graph_ops(graph):
    """Every operator of a symbol's JSON graph, those of fused subgraphs included."""
    ops, todo = set(), [graph]
    while todo:
        g = todo.pop()
        nodes = g.get("nodes") if isinstance(g, dict) else None
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            raise ValueError("no node list")
        for node in nodes:
            ops.add(node.get("op"))
            todo.extend(node.get("subgraphs") or [])
    return ops


def check_graph(text, shown, image_size, classes, channels=3):
    """Load a symbol's JSON after checking what it would run, before anything runs.

    Parameters
    ----------
    text : str
        The ``-symbol.json`` content.
    shown : str
        The file, for messages.
    image_size : (int, int)
        The manifest's ``[height, width]``.
    classes : int
        The manifest's number of class names: the graph must output that many logits.
    channels : int, default 3
        The manifest's input channels (:func:`image_channels`).

    Returns
    -------
    sym : mxnet.sym.Symbol
    shapes : dict
        ``{name: shape}`` of every parameter (``arg:``/``aux:`` names, as in the params).

    Raises
    ------
    CorruptFileError
        For operators outside :data:`GRAPH_OPS`, a graph that does not take one image of
        ``channels`` and ``image_size`` to ``classes`` logits, or one above
        ``graph_elements`` of
        :data:`LIMITS`.
    """
    try:
        ops = _graph_ops(json.loads(text))
    except (ValueError, TypeError, RecursionError):  # TypeError: e.g. a list as an op
        raise CorruptFileError(f"{shown!r} is not a readable symbol graph (JSON with a node "
                               "list); re-export the model") from None
    unknown = sorted(_short(op, 30) for op in ops if op not in GRAPH_OPS)
    if unknown:
        raise CorruptFileError(
            f"{shown!r} contains operators that no gluonres export contains "
            f"({', '.join(unknown[:5])}); predict runs only the graphs gluonres exports: "
            "re-export the model")
    height, width = image_size
    data_shape = (1, channels, height, width)
    try:
        sym = mx.sym.load_json(text)
        args, outs, auxs = sym.infer_shape(data=data_shape)
        inner = sym.get_internals().infer_shape(data=data_shape)[1]
        arg_names, aux_names = sym.list_arguments(), sym.list_auxiliary_states()
    except mx.MXNetError:
        args = None
    if args is None or None in (outs, auxs, inner) or "data" not in arg_names:
        raise CorruptFileError(f"{shown!r} is not a graph that takes a {width}x{height} "
                               f"{color_name(channels)} image as `data` (mxnet cannot load it "
                               "or infer its shapes); re-export the model")
    if [tuple(s) for s in outs] != [(1, classes)]:
        raise CorruptFileError(f"{shown!r} outputs shape {[tuple(s) for s in outs]}, but "
                               f"{MANIFEST} lists {classes} classes (one logit each); "
                               "re-export the model")
    # the internals are every node's output, the variables' (parameters, data) included
    elements = sum(math.prod(s) for s in inner)
    if elements > limit("graph_elements"):
        raise CorruptFileError(over_limit(
            "graph_elements", f"{shown!r} needs too much memory: the element count of its "
            "parameters and node outputs for one image", elements))
    shapes = {f"arg:{n}": tuple(s) for n, s in zip(arg_names, args) if n != "data"}
    shapes.update({f"aux:{n}": tuple(s) for n, s in zip(aux_names, auxs)})
    return sym, shapes


def params_shapes(data, shown):
    """``{name: shape}`` of an MXNet ``.params`` file, read from its headers only.

    Every array's declared size is checked against the bytes that follow, so a small
    file cannot make mxnet allocate a huge array before it finds the file short.

    Raises
    ------
    CorruptFileError
        If the layout is not that of dense arrays of an export's dtypes.
    """
    def bad():
        return CorruptFileError(f"cannot load {shown!r}: not a readable MXNet params file "
                                "(truncated or corrupt); re-export the model")

    pos = 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise bad()
        values = struct.unpack_from(fmt, data, pos)
        pos += size
        return values

    magic, _ = take("<QQ")
    if magic != _LIST_MAGIC:
        raise bad()
    (count,) = take("<Q")
    if count > len(data):
        raise bad()
    shapes = []
    for _ in range(count):
        nd_magic, stype = take("<Ii")
        if nd_magic not in _ND_MAGICS or stype != 0:  # dense arrays only
            raise bad()
        (ndim,) = take("<i")
        if not 0 < ndim <= 8:
            raise bad()
        shape = take(f"<{ndim}q")
        _, _, dtype = take("<iii")  # device type, device id, dtype flag
        if dtype not in _DTYPE_BYTES or min(shape) < 0:
            raise bad()
        nbytes = _DTYPE_BYTES[dtype] * math.prod(shape)
        if pos + nbytes > len(data):
            raise bad()
        pos += nbytes
        shapes.append(shape)
    (count_names,) = take("<Q")
    if count_names != len(shapes):
        raise bad()
    names = []
    for _ in range(count_names):
        (length,) = take("<Q")
        if pos + length > len(data):
            raise bad()
        try:
            names.append(data[pos:pos + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise bad() from None
        pos += length
    if pos != len(data):
        raise bad()
    return dict(zip(names, shapes))


def load_exported(folder, variant="fp32", ctx=None):
    """Load an export folder after checking its manifest, every file's SHA-256, the
    graph's operators and shapes, and the params' shapes against the graph.

    Parameters
    ----------
    folder : str
    variant : {'fp32', 'int8'}, default 'fp32'
        ``'int8'`` loads the quantized graph written by ``export --int8``.
    ctx : mxnet.Context, optional

    Returns
    -------
    Exported

    Raises
    ------
    GluonresError
        For a folder without a manifest or without the requested variant.
    CorruptFileError
        For a manifest, file or graph that fails its checks.
    """
    if variant not in VARIANTS:
        raise GluonresError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    manifest = read_manifest(folder, verify=False)
    sym_key, params_key = VARIANTS[variant]
    files = manifest["files"]
    if sym_key not in files or params_key not in files:
        raise GluonresError(f"{folder!r} holds no {variant} graph; re-export with --int8 "
                            "--calib-data DIR")
    sym_file, params_file = files[sym_key], files[params_key]
    # the graph and params are checked below from the very bytes that are used
    verify_files(folder, manifest, skip=(sym_file, params_file))
    shown = os.path.join(folder, sym_file)
    text = _member_bytes(folder, manifest, sym_file, "json_bytes")
    try:
        text = text.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{shown!r} is not a readable symbol graph (not UTF-8); "
                               "re-export the model") from None
    sym, shapes = check_graph(text, shown, manifest["image"]["size"], len(manifest["classes"]),
                              image_channels(manifest))
    params_shown = os.path.join(folder, params_file)
    real = member_path(folder, params_file, os.path.join(folder, MANIFEST))
    found = params_shapes(_member_bytes(folder, manifest, params_file), params_shown)
    if found != shapes:
        name = sorted(set(found) ^ set(shapes)) or sorted(
            n for n in shapes if found[n] != shapes[n])
        raise CorruptFileError(
            f"{params_shown!r} does not fit the graph {shown!r} (first difference: "
            f"{_short(name[0])}: {found.get(name[0])} in the params, {shapes.get(name[0])} in "
            "the graph); re-export the model")
    net = load_symbol_block(sym, real, ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return Exported(folder, manifest, variant, net)


def onnx_session(model, spinning=False):
    """An ONNX Runtime CPU session for an ONNX model, on the threads mxnet uses.

    Parameters
    ----------
    model : str or bytes
        An ``.onnx`` file, e.g. the one ``gluonres export --onnx`` writes, or its bytes
        (:func:`gluonres.deploy.engines.load` passes the bytes it checked).
    spinning : bool, default False
        Let idle worker threads spin (ONNX Runtime's default). Off, they sleep between
        calls, as mxnet's do, instead of taking the cores from whatever runs next (the
        other variants of an interleaved benchmark, a training run); measured not to
        slow ONNX Runtime itself (docs/deployment.md, "Engines").

    Returns
    -------
    onnxruntime.InferenceSession

    Raises
    ------
    ImportError
        If ``onnxruntime`` is not installed (the ``[engines]`` and ``[test]`` extras).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()  # the same threads as mxnet, for comparisons
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if spinning else "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
