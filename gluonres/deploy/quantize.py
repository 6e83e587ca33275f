"""INT8 quantization with oneDNN (MKLDNN): the one INT8 path of gluonres.

mxnet 1.9.1 quantizes through its MKLDNN subgraph backend: ``MKLDNN_QUANTIZE`` fuses
convolution + BatchNorm (+ residual sum) + ReLU into one node, the quantization pass
turns those nodes into int8 ones, and calibration on real images fixes each layer's
int8 range. The quantized graph is written as an ordinary symbol/params pair and loads
again with :func:`gluonres.deploy.runtime.load_symbol_block`. ``gluonres export
--int8`` writes it; ``gluonres bench`` and ``gluonres int8-bench`` time that export
(:mod:`gluonres.measure`).
"""
import json
import os
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

from gluonres.errors import DataError, GluonresError


#: Calibration defaults: naive (min/max) calibration on a few hundred training images.
CALIB_IMAGES, CALIB_SEED, CALIB_MODE = 512, 0, "naive"


def onednn_symbol(sym):
    """The same graph with each ``relu`` op written as ``Activation(act_type='relu')``.

    The blocks call ``F.relu``; oneDNN's fusion passes only fold ``Activation`` into the
    preceding convolution. Without this rewrite every convolution's output is
    dequantized for a float ReLU, and the quantized graph is much slower. Both ops compute
    ``max(x, 0)`` exactly, so the outputs do not change.
    """
    graph = json.loads(sym.tojson())
    for node in graph["nodes"]:
        if node["op"] == "relu":
            node["op"] = "Activation"
            node["attrs"] = {"act_type": "relu"}
    return mx.sym.load_json(json.dumps(graph))


def fuse_fp32(sym):
    """FP32 graph with oneDNN's operator fusion (conv+BN+sum+ReLU), for a fair baseline."""
    return onednn_symbol(sym).get_backend_symbol("MKLDNN")


@dataclass
class Calibration:
    """Images that set the int8 ranges, and how they were chosen.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 ``(N, H, W, 3)`` RGB at the network's input size.
    source : dict
        JSON-able description recorded in the manifest (folder, split, seed ...).
    mode : {'naive', 'entropy'}, default 'naive'
        'naive' takes each layer's min/max over the images; 'entropy' picks thresholds
        minimising the KL divergence (slower; no better on ResNet-20 here).
    quantized_dtype : {'auto', 'int8', 'uint8'}, default 'auto'
        'auto' uses uint8 after ReLUs and int8 elsewhere.
    exclude_first_conv : bool, default True
        Keep the stem convolution in float32: its input is the signed, normalised image.
    """

    images: np.ndarray
    source: dict = field(default_factory=dict)
    mode: str = CALIB_MODE
    quantized_dtype: str = "auto"
    exclude_first_conv: bool = True

    def describe(self):
        """JSON-ready record of the calibration (without the images)."""
        return {**self.source, "images": int(len(self.images)), "mode": self.mode,
                "quantized_dtype": self.quantized_dtype,
                "excluded": ["first convolution"] if self.exclude_first_conv else []}


def calibration_images(root, count=CALIB_IMAGES, seed=CALIB_SEED, spec=None,
                       mode=CALIB_MODE):
    """A seeded random choice of ``count`` training images from an image folder.

    Parameters
    ----------
    root : str
        Image-folder root with a ``train/`` split (or its ``.tar.gz``), or a folder of
        class subfolders.
    count : int
    seed : int
    spec : dict, optional
        The manifest's ``image`` (size and resize rule); images are fitted with
        :func:`gluonres.deploy.runtime.fit_image` exactly as ``predict`` fits them.
    mode : {'naive', 'entropy'}
        Calibration mode (see :class:`Calibration`).

    Returns
    -------
    Calibration
    """
    from gluonres import data
    from gluonres.deploy.runtime import fit_image

    if count < 1:
        raise GluonresError(f"--calib-images must be at least 1, got {count}")
    root = data.resolve_root(root)
    split = "train" if os.path.isdir(os.path.join(root, "train")) else None
    _, files = data.image_files(os.path.join(root, split) if split else root)
    if count > len(files):
        raise DataError(f"{root!r} has {len(files)} images, fewer than the {count} "
                        "calibration images asked for; lower --calib-images")
    picked = np.sort(np.random.RandomState(seed).choice(len(files), count, replace=False))
    images = []
    for i in picked:  # decode only the picked images, not the whole split
        path = files[int(i)][0]
        with open(path, "rb") as f:
            img = mx.nd.array(data.decode(f.read(), path), dtype="uint8")
        images.append((fit_image(img, spec, name=path) if spec else img).asnumpy())
    source = {"data": root, "split": split or ".", "seed": seed,
              "selection": "uniform random without replacement"}
    return Calibration(np.stack(images), source, mode=mode)


def quantize(sym, arg_params, aux_params, calib_inputs, calibration):
    """Quantize an FP32 graph to int8 with oneDNN, calibrated on preprocessed inputs.

    Parameters
    ----------
    sym : mxnet.sym.Symbol
        The exported FP32 graph (input ``data``).
    arg_params, aux_params : dict of str to NDArray
    calib_inputs : mxnet.nd.NDArray
        Preprocessed float32 ``(N, 3, H, W)`` calibration batch.
    calibration : Calibration
        Mode, dtype and exclusions.

    Returns
    -------
    qsym : mxnet.sym.Symbol
    qarg_params, qaux_params : dict of str to NDArray
    """
    from mxnet.contrib import quantization

    # the two MKLDNN_QUANTIZE passes mirror quantization.quantize_model_mkldnn, which
    # gives no handle on the fused node names needed to exclude the stem convolution
    fused = onednn_symbol(sym).get_backend_symbol("MKLDNN_QUANTIZE")
    excluded = _first_conv(fused) if calibration.exclude_first_conv else []
    batch = min(64, len(calib_inputs))
    calib = mx.io.NDArrayIter(calib_inputs, batch_size=batch, data_name="data")
    qsym, qargs, qauxs = quantization.quantize_model(
        fused, arg_params, aux_params, data_names=("data",), label_names=(), ctx=mx.cpu(),
        excluded_sym_names=excluded, calib_mode=calibration.mode, calib_data=calib,
        num_calib_examples=len(calib_inputs), quantized_dtype=calibration.quantized_dtype,
        quantize_mode="full")
    return qsym.get_backend_symbol("MKLDNN_QUANTIZE"), qargs, qauxs


def _first_conv(fused):
    nodes = json.loads(fused.tojson())["nodes"]
    data = {i for i, n in enumerate(nodes) if n["op"] == "null" and n["name"] == "data"}
    return [n["name"] for n in nodes
            if n["op"] == "_sg_mkldnn_conv" and any(src in data for src, *_ in n["inputs"])]
