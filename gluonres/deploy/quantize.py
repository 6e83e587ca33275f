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
    """The same graph with every channel-padding option-A shortcut written as a 1x1
    convolution.

    :class:`~gluonres.blocks.ZeroPadShortcut` subsamples and zero-pads channels with
    slice, reshape and broadcast ops, which have no int8 kernels in mxnet: around them the
    int8 graph dequantizes, runs them in float and quantizes again. A 1x1 convolution with
    the shortcut's stride whose weights embed the identity in the middle output channels
    (``W[before + i, i] = 1``, zero elsewhere, no bias) computes exactly the same numbers
    and is quantized like every other convolution. Shortcuts that only subsample are left
    as they are (no gluonres model builds one).

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
    consumers = _consumers(graph)
    found = [(r, at) for r, at in ((r, _zero_pad_at(nodes, r, consumers))
                                   for r in range(len(nodes))) if at is not None]
    if not found:
        return sym, arg_params, 0
    shapes = _entry_shapes(sym, graph, data_shape)
    added = {}
    for r, (concat, source, stride, before, after) in found:
        node = nodes[r]
        cin = shapes[tuple(source[:2])][1]
        prefix = node["name"].rsplit("reshape_like", 1)[0]
        weight = np.zeros((before + cin + after, cin, 1, 1), np.float32)
        weight[before + np.arange(cin), np.arange(cin), 0, 0] = 1
        added[prefix + "identity_weight"] = mx.nd.array(weight)
        # the concat's slot (read by this reshape_like alone) becomes the weight variable,
        # the reshape_like's the convolution: every index stays in topological order and
        # every consumer of the shortcut now reads the convolution; the shortcut's other
        # ops are left unused and dropped below
        nodes[concat] = {"op": "null", "name": prefix + "identity_weight", "inputs": []}
        graph["arg_nodes"] = sorted(graph["arg_nodes"] + [concat])
        nodes[r] = {"op": "Convolution", "name": prefix + "identity_conv",
                    "attrs": {"kernel": "(1, 1)", "stride": f"({stride}, {stride})",
                              "pad": "(0, 0)", "num_filter": str(len(weight)),
                              "no_bias": "True"},
                    "inputs": [list(source), [concat, 0, 0]]}
    # a round trip through JSON drops the unused nodes
    out = mx.sym.load_json(mx.sym.load_json(json.dumps(graph)).tojson())
    return out, {**arg_params, **added}, len(added)


def _entry_shapes(sym, graph, data_shape):
    """``{(node index, output index): shape}`` of every node output of ``sym`` (whose
    JSON is ``graph``)."""
    internals = sym.get_internals()
    _, shapes, _ = internals.infer_shape(data=data_shape)
    names = internals.list_outputs()
    index = {n["name"]: i for i, n in enumerate(graph["nodes"])}
    out = {}
    for name, shape in zip(names, shapes):
        node, _, k = name.rpartition("_output")
        if node in index and k in ("", *map(str, range(16))):
            out[(index[node], int(k or 0))] = shape
        elif name in index:  # a variable: its own name
            out[(index[name], 0)] = shape
    return out


def _consumers(graph):
    """How many times each node's outputs are read (as an input or a head)."""
    count = {}
    for node in graph["nodes"]:
        for i, *_ in node["inputs"]:
            count[i] = count.get(i, 0) + 1
    for i, *_ in graph["heads"]:
        count[i] = count.get(i, 0) + 1
    return count


def _zero_pad_at(nodes, r, consumers):
    """``(concat, source entry, stride, before, after)`` when node ``r`` ends a
    :class:`~gluonres.blocks.ZeroPadShortcut` that pads channels, else ``None``: a
    ``reshape_like`` of a channel concat (read by nothing else) of zeros, the flattened,
    possibly subsampled input, and zeros."""
    node = nodes[r]
    attrs = node.get("attrs", {})
    if node["op"] != "reshape_like" or (attrs.get("lhs_begin"), attrs.get("rhs_begin")) != (
            "2", "2"):
        return None
    concat = node["inputs"][0][0]
    if (nodes[concat]["op"] not in ("Concat", "concat") or consumers.get(concat) != 1
            or nodes[concat].get("attrs", {}).get("dim") != "1"):
        return None
    parts = [i for i, *_ in nodes[concat]["inputs"]]
    flat = [i for i in parts if nodes[i]["op"] == "Reshape"
            and nodes[i].get("attrs", {}).get("shape") == "(0, 0, -1)"]
    if len(flat) != 1 or len(parts) < 2:
        return None
    zeros = [i for i in parts if i != flat[0]]
    if not all(_zeros_of(nodes, i, flat[0]) for i in zeros):
        return None
    shaped = nodes[flat[0]]["inputs"][0]
    if node["inputs"][1][:2] != shaped[:2]:
        return None
    source, stride = shaped, 1
    if nodes[shaped[0]]["op"] == "slice":
        stride = _subsampling(nodes[shaped[0]].get("attrs", {}))
        if stride is None:
            return None
        source = nodes[shaped[0]]["inputs"][0]
    at = parts.index(flat[0])
    before = sum(int(nodes[i]["attrs"]["size"]) for i in parts[:at])
    after = sum(int(nodes[i]["attrs"]["size"]) for i in parts[at + 1:])
    return concat, source, stride, before, after


def _zeros_of(nodes, i, flat):
    """Whether node ``i`` is ``broadcast_axis(zeros_like(slice_axis(flat)), axis=1)``."""
    node = nodes[i]
    if node["op"] != "broadcast_axis" or node.get("attrs", {}).get("axis") != "1":
        return False
    zero = nodes[node["inputs"][0][0]]
    if zero["op"] != "zeros_like":
        return False
    sliced = nodes[zero["inputs"][0][0]]
    return sliced["op"] == "slice_axis" and sliced["inputs"][0][0] == flat


def _subsampling(attrs):
    """The stride of a ``slice`` that keeps everything but subsamples the two spatial
    axes alike (``x[:, :, ::s, ::s]``), else ``None``."""
    if (attrs.get("begin"), attrs.get("end")) != ("(None, None, None, None)",) * 2:
        return None
    step = [v.strip() for v in attrs.get("step", "").strip("()").split(",")]
    if len(step) != 4 or step[:2] != ["1", "1"] or step[2] != step[3] or not step[2].isdigit():
        return None
    return int(step[2])


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
