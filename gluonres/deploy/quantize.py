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


def zero_pads_as_convs(sym, arg_params, data_shape):
    """The same graph with every option-A shortcut written as a 1x1 convolution.

    :class:`~gluonres.blocks.ZeroPadShortcut` subsamples and zero-pads channels with
    slice, reshape, broadcast and concat ops, which oneDNN cannot quantize: each one
    makes the int8 graph dequantize its input, run them in float and quantize again.
    A 1x1 convolution with the shortcut's stride whose weights embed the identity in the
    middle output channels (``W[before + i, i] = 1``, zero elsewhere, no bias) computes
    exactly the same numbers and is quantized like every other convolution.

    Parameters
    ----------
    sym : mxnet.sym.Symbol
        An exported FP32 graph (input ``data``).
    arg_params : dict of str to NDArray
    data_shape : tuple
        The input shape, ``(N, C, H, W)``, to read the shortcuts' input channels.

    Returns
    -------
    sym : mxnet.sym.Symbol
    arg_params : dict of str to NDArray
        With the embedding weights added (``...shortcut_identity_weight``).
    count : int
        Shortcuts rewritten.
    """
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    internals = sym.get_internals()
    added = {}
    for r, node in enumerate(nodes):
        found = _zero_pad_at(nodes, r)
        if found is None:
            continue
        concat, src, stride, before, after = found
        _, shapes, _ = internals[nodes[src]["name"] + "_output"].infer_shape(data=data_shape)
        cin = shapes[0][1]
        prefix = node["name"].rsplit("reshape_like", 1)[0]
        weight = np.zeros((before + cin + after, cin, 1, 1), np.float32)
        weight[before + np.arange(cin), np.arange(cin), 0, 0] = 1
        added[prefix + "identity_weight"] = mx.nd.array(weight)
        # the concat's slot becomes the weight variable, the reshape_like's the
        # convolution: every index stays in topological order and every consumer of the
        # shortcut now reads the convolution; the shortcut's other ops are left unused
        nodes[concat] = {"op": "null", "name": prefix + "identity_weight", "inputs": []}
        graph["arg_nodes"] = sorted(graph["arg_nodes"] + [concat])
        nodes[r] = {"op": "Convolution", "name": prefix + "identity_conv",
                    "attrs": {"kernel": "(1, 1)", "stride": f"({stride}, {stride})",
                              "pad": "(0, 0)", "num_filter": str(len(weight)),
                              "no_bias": "True"},
                    "inputs": [[src, 0, 0], [concat, 0, 0]]}
    if not added:
        return sym, arg_params, 0
    # a round trip through JSON drops the unused nodes
    out = mx.sym.load_json(mx.sym.load_json(json.dumps(graph)).tojson())
    return out, {**arg_params, **added}, len(added)


def _zero_pad_at(nodes, r):
    """``(concat, source, stride, before, after)`` when node ``r`` ends a
    :class:`~gluonres.blocks.ZeroPadShortcut` (``reshape_like`` of a concat of zeros,
    the flattened, possibly subsampled input, and zeros), else ``None``."""
    node = nodes[r]
    if node["op"] != "reshape_like":
        return None
    concat = node["inputs"][0][0]
    if nodes[concat]["op"] not in ("Concat", "concat"):
        return None
    parts = [i for i, *_ in nodes[concat]["inputs"]]
    flat = [i for i in parts if nodes[i]["op"] == "Reshape"
            and nodes[i].get("attrs", {}).get("shape") == "(0, 0, -1)"]
    zeros = [i for i in parts if nodes[i]["op"] == "broadcast_axis"]
    if len(flat) != 1 or len(flat) + len(zeros) != len(parts):
        return None
    shaped = nodes[flat[0]]["inputs"][0][0]
    if node["inputs"][1][0] != shaped:
        return None
    src, stride = shaped, 1
    if nodes[shaped]["op"] == "slice":
        attrs = nodes[shaped]["attrs"]
        if (attrs.get("begin"), attrs.get("end")) != ("(None, None, None, None)",) * 2:
            return None
        step = attrs.get("step", "")
        stride = int(step.strip("()").split(",")[2]) if step else 1
        if step.replace(" ", "") != f"(1,1,{stride},{stride})":
            return None
        src = nodes[shaped]["inputs"][0][0]
    sizes = [int(nodes[i]["attrs"]["size"]) for i in zeros]
    before = sizes[0] if parts[0] in zeros else 0
    return concat, src, stride, before, sum(sizes) - before


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

    sym, arg_params, _ = zero_pads_as_convs(sym, arg_params, (1, *calib_inputs.shape[1:]))
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
