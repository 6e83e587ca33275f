"""Run an exported network from its files alone: ``manifest.json``, symbol and params.

This is the deployment side of :mod:`gluonres.deploy`. It imports mxnet, numpy and small
gluonres helpers (:mod:`~gluonres.errors`, :mod:`~gluonres.data.preprocess`,
:mod:`~gluonres.machine`), never the model code: an export is loaded as a ``SymbolBlock``
and needs nothing that built it. :func:`onnx_session` runs its ONNX file instead.

The manifest makes the preprocessing explicit (nothing is baked into the graph)::

    x = (pixels / 255 - mean) / std        # RGB, per channel, then NCHW
    x = (pixels / 255 - mean_image) / std  # the 2015 paper's per-pixel mean (mean.npy)
"""
import json
import os

import mxnet as mx
import numpy as np

from gluonres._files import sha256_of
from gluonres.data.preprocess import Preprocess
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


def read_manifest(folder, verify=True):
    """Read ``folder/manifest.json`` and check every file it lists against its SHA-256.

    Parameters
    ----------
    folder : str
        An export folder written by :func:`gluonres.deploy.export`.
    verify : bool, default True
        Check the SHA-256 of every listed file.

    Returns
    -------
    dict

    Raises
    ------
    GluonresError
        If the folder or its manifest is missing.
    CorruptFileError
        If the manifest is unreadable, or a listed file is missing or does not match
        its recorded SHA-256 (truncated, modified, or from another export).
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise GluonresError(f"{folder!r} holds no {MANIFEST}; pass a folder written by "
                            "`gluonres export`")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"{path!r} is not readable JSON ({err}); re-export the "
                               "model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CorruptFileError(f"{path!r} is not a {FORMAT} manifest (format {found!r}); "
                               "re-export the model with this version of gluonres")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise CorruptFileError(f"{path!r} lacks {', '.join(missing)}; re-export the model")
    if verify:
        for fname, expected in manifest["sha256"].items():
            fpath = os.path.join(folder, fname)
            if not os.path.isfile(fpath):
                raise CorruptFileError(f"{fpath!r} listed in {path!r} is missing; re-export "
                                       "the model or copy the whole folder")
            if sha256_of(fpath) != expected:
                raise CorruptFileError(
                    f"{fpath!r} does not match the sha256 recorded in {path!r} (truncated, "
                    "modified or from another export); re-export the model")
    return manifest


def preprocess_of(folder, manifest):
    """The :class:`~gluonres.data.Preprocess` an export's manifest describes.

    Raises
    ------
    GluonresError
        If the export records no preprocessing (exported from untrained weights).
    """
    spec = manifest.get("preprocess") or {}
    if spec.get("mean") is None and spec.get("mean_image") is None and spec.get("std") is None:
        raise GluonresError(
            f"{os.path.join(folder, MANIFEST)!r} records no input normalisation (exported "
            "without trained weights); re-export with --weights, or with --mean R G B --std "
            "R G B")
    mean_image = None
    if spec.get("mean_image"):
        mean_image = np.load(os.path.join(folder, spec["mean_image"]), allow_pickle=False)
    return Preprocess(mean=tuple(spec["mean"]) if spec.get("mean") is not None else None,
                      std=tuple(spec["std"]) if spec.get("std") is not None else None,
                      mean_image=mean_image)


def read_image(path):
    """Decode an image file as uint8 ``(H, W, 3)`` RGB.

    Grayscale images are replicated to three channels and an alpha channel is dropped
    (the manifest's ``"color": "RGB"``).

    Raises
    ------
    DataError
        If the file is missing or is not a decodable image.
    """
    if not os.path.isfile(path):
        raise DataError(f"image {path!r} does not exist; pass paths of image files")
    try:
        return mx.image.imread(path, flag=1)
    except mx.MXNetError:
        raise DataError(f"{path!r} is not a readable image (JPEG, PNG or BMP); check the "
                        "file or convert it") from None


def fit_image(image, spec, name="image"):
    """Bring a decoded ``(H, W, 3)`` image to the network's input size as ``spec`` says.

    Parameters
    ----------
    image : mxnet.nd.NDArray
        uint8 ``(H, W, 3)`` RGB.
    spec : dict
        The manifest's ``image``: ``size`` ``[H, W]`` and ``resize``, either
        ``None`` (the image must already have that size; CIFAR models, whose 32x32
        inputs are not photos to be shrunk silently) or ``{"shorter_side": S}``
        (resize the shorter side to ``S``, then crop the centre).
    name : str
        How to call the image in an error message.

    Raises
    ------
    DataError
        If ``resize`` is ``None`` and the size differs.
    """
    height, width = spec["size"]
    if image.shape[:2] == (height, width):
        return image
    resize = spec.get("resize")
    if not resize:
        raise DataError(
            f"{name} is {image.shape[1]}x{image.shape[0]} pixels, but this export takes "
            f"{width}x{height} images and does not resize (its manifest sets no resize); "
            f"resize the image to {width}x{height} first")
    image = mx.image.resize_short(image, resize["shorter_side"])
    return mx.image.center_crop(image, (width, height))[0]


class Exported:
    """An exported network loaded from its files, with its preprocessing and classes.

    Use :func:`load_exported` to create one.

    Attributes
    ----------
    folder : str
    manifest : dict
    variant : {'fp32', 'int8'}
    net : mxnet.gluon.SymbolBlock
        Hybridized; maps preprocessed float32 NCHW input to logits.
    classes : list of str
    """

    def __init__(self, folder, manifest, variant, net):
        self.folder = folder
        self.manifest = manifest
        self.variant = variant
        self.net = net
        self.classes = list(manifest["classes"])
        self._preprocess = None

    @property
    def preprocess(self):
        """The manifest's preprocessing (raises if the export records none)."""
        if self._preprocess is None:
            self._preprocess = preprocess_of(self.folder, self.manifest)
        return self._preprocess

    def load_images(self, paths):
        """Read and fit image files into a uint8 ``(N, H, W, 3)`` numpy array."""
        spec = self.manifest["image"]
        return np.stack([fit_image(read_image(p), spec, name=repr(p)).asnumpy()
                         for p in paths])

    def predict(self, paths, top_k=5):
        """Top-``k`` classes with softmax probabilities for each image file.

        Parameters
        ----------
        paths : list of str
            Image files (converted to RGB; resized only if the manifest says so).
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
            logits = self.net(preprocess(batch)).asnumpy()
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
    graph).

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
    except mx.MXNetError as err:
        reason = (str(err).strip().splitlines() or ["unknown mxnet error"])[-1]
        raise CorruptFileError(f"cannot load the exported graph with {params_file!r} "
                               f"({reason}); re-export the model") from None
    return net


def load_exported(folder, variant="fp32", ctx=None):
    """Load an export folder after checking its manifest and every file's SHA-256.

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
        For a manifest or file that fails its checks.
    """
    if variant not in VARIANTS:
        raise GluonresError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    manifest = read_manifest(folder)
    sym_key, params_key = VARIANTS[variant]
    files = manifest["files"]
    if sym_key not in files:
        raise GluonresError(f"{folder!r} holds no {variant} graph; re-export with --int8 "
                            "--calib-data DIR")
    net = load_symbol_block(os.path.join(folder, files[sym_key]),
                            os.path.join(folder, files[params_key]), ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return Exported(folder, manifest, variant, net)


def onnx_session(path):
    """An ONNX Runtime CPU session for an ONNX file, on the threads mxnet uses.

    Parameters
    ----------
    path : str
        An ``.onnx`` file, e.g. the one ``gluonres export --onnx`` writes.

    Returns
    -------
    onnxruntime.InferenceSession

    Raises
    ------
    ImportError
        If ``onnxruntime`` is not installed (the ``[test]`` extra).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()  # the same threads as mxnet, for comparisons
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
