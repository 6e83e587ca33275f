"""Import ImageNet ResNets from GluonCV (and the MXNet model zoo) into gluonres models, exactly.

=====================================  =========================  =========================
GluonCV                                gluonres model             options
=====================================  =========================  =========================
``resnet{18,34,50,101,152}_v1b``       ``resnet{N}``              ``stride_on='3x3'``
``resnet{18,34,50,101,152}_v1``        ``resnet{N}``              ``stride_on='1x1'``
``resnet{18,34,50,101,152}_v2``        ``resnet{N}_v2``           ``stride_on='3x3'``,
                                                                  ``first_unit_preact=True``
=====================================  =========================  =========================

Parameters are mapped layer by layer through both networks' structure (attributes and
layer order, never parameter names or positions), and every convolution's kernel,
stride, padding and dilation is compared with its counterpart, so a stride in the wrong
place or an unexpected variant (dilated, deep stem, squeeze-excitation) is an error rather
than a silently different network. Three things are folded so the result is the same
function:

- GluonCV v1's bottleneck convolutions have biases; each is followed by a BatchNorm, and
  ``BN(y + b)`` is ``BN'(y)`` with ``running_mean' = running_mean - b``.
- GluonCV v2 opens with a BatchNorm of the input (``scale=False, center=False``). It
  acts before the stem's zero padding, so it joins the input normalisation recorded with
  the weights: ``mean' = m + s * rm``, ``std' = s * sqrt(rv + eps)`` for the ImageNet
  ``m``, ``s`` in [0, 1] pixel units (less ``s * beta * sqrt(rv + eps)`` from the mean:
  the operator adds ``beta`` even with ``center=False``).
- A BatchNorm epsilon other than gluonres's is moved into ``running_var``.

GluonCV v2 gives the first unit of stage 1 its own BN-ReLU on top of the stem's (the
unit's ``bn1``); gluonres's pre-activation networks let the stem's BN-ReLU stand in for
it. No rewrite of the weights removes that layer (the unit's identity shortcut needs the
stem output before it), so the import builds ``resnet{N}_v2`` with the builder option
``first_unit_preact=True``, recorded in the weights' ``model_options``.

The files are read with :func:`gluonres.io.load_arrays` (``mx.nd.load``, no unpickling).
"""
import os
from typing import NamedTuple, Optional

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from gluonres import io
from gluonres.data.preprocess import Preprocess
from gluonres.errors import GluonresError
from gluonres.models import get_model


#: Prefix of an import spec, e.g. ``gluoncv:resnet50_v1b``.
ZOO = "gluoncv"
DEPTHS = (18, 34, 50, 101, 152)
FAMILIES = ("v1b", "v1", "v2")
#: The GluonCV models that import exactly.
SUPPORTED = tuple(f"resnet{d}_{f}" for f in FAMILIES for d in DEPTHS)
#: GluonCV's ImageNet input normalisation (pixels in [0, 1]).
IMAGENET = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
#: The standard ImageNet evaluation: shorter side to 256, centre crop of 224.
INPUT_SIZE = 224
RESIZE = {"shorter_side": 256, "center_crop": True}
#: gluonres option that gives stage 1's first pre-activation unit its own BN-ReLU.
FIRST_UNIT_PREACT = "first_unit_preact"
INSTALL = "pip install gluoncv==0.10.5.post0"

# family -> (gluonres model suffix, builder options, GluonCV class name)
_TARGETS = {
    "v1b": ("", {"stride_on": "3x3"}, "ResNetV1b"),
    # GluonCV's BottleneckV1 strides its first 1x1 convolution, as the 2015 paper does
    "v1": ("", {"stride_on": "1x1"}, "ResNetV1"),
    # BottleneckV2 strides its 3x3 convolution
    "v2": ("_v2", {"stride_on": "3x3", FIRST_UNIT_PREACT: True}, "ResNetV2"),
}


class ImportSpec(NamedTuple):
    """A parsed ``gluoncv:NAME[=PATH]``: the zoo, the model and an optional local file."""

    zoo: str
    name: str
    path: Optional[str] = None


def looks_like_spec(text):
    """Whether ``text`` names a zoo model (``gluoncv:...``) rather than a weights file."""
    return isinstance(text, str) and text.startswith(ZOO + ":")


def parse_spec(text):
    """Parse ``gluoncv:NAME`` or ``gluoncv:NAME=PATH`` (a local GluonCV ``.params`` file).

    Parameters
    ----------
    text : str
        E.g. ``'gluoncv:resnet50_v1b'`` or
        ``'gluoncv:resnet50_v1b=~/.mxnet/models/resnet50_v1b-0ecdba34.params'``.

    Returns
    -------
    ImportSpec

    Raises
    ------
    GluonresError
        If the zoo is not ``gluoncv`` or the model is not one of :data:`SUPPORTED`.
    """
    zoo, sep, rest = str(text).partition(":")
    if not sep or zoo != ZOO:
        raise GluonresError(f"{text!r} is not an import spec; write {ZOO}:NAME (e.g. "
                            f"{ZOO}:resnet50_v1b) or {ZOO}:NAME=PATH for a local .params file")
    name, eq, path = rest.partition("=")
    _check_name(name)
    if eq and not path:
        raise GluonresError(f"{text!r} ends in '=' without a path; write {ZOO}:{name}=PATH "
                            f"or leave '=' out to download")
    return ImportSpec(zoo, name, os.path.expanduser(path) if eq else None)


def target(name):
    """The gluonres model and builder options that ``name`` imports into.

    Parameters
    ----------
    name : str
        One of :data:`SUPPORTED`, e.g. ``'resnet50_v1b'``.

    Returns
    -------
    model : str
        Registered gluonres name, e.g. ``'resnet50'``.
    options : dict
        Builder options, e.g. ``{'stride_on': '3x3'}``.
    """
    depth, family = _check_name(name)
    suffix, options, _ = _TARGETS[family]
    return f"resnet{depth}{suffix}", dict(options)


def import_gluoncv(name, source=None, classes=None):
    """Convert a GluonCV ImageNet ResNet into the gluonres model that computes the same.

    Parameters
    ----------
    name : str
        One of :data:`SUPPORTED`: ``resnet{18,34,50,101,152}_{v1b,v1,v2}``.
    source : None, str or mxnet.gluon.Block, optional
        ``None``: GluonCV's pretrained weights (downloaded once into ``~/.mxnet/models``,
        needs internet). A path: a local GluonCV (or MXNet model zoo) ``.params`` file of
        that model. A block: an already built GluonCV ``name`` (or
        ``mxnet.gluon.model_zoo.vision`` counterpart) with its weights.
    classes : list of str, optional
        Names of the outputs to record. Default: the block's own ``classes`` if it has as
        many, else for 1000 outputs the ImageNet WordNet IDs (``n01440764`` ...: the
        folder names of an ImageNet split, in GluonCV's order), else ``'0'``, ``'1'`` ...

    Returns
    -------
    net : mxnet.gluon.HybridBlock
        The gluonres model with the converted weights.
    meta : dict
        Weights metadata for :func:`gluonres.io.save_weights`: ``model``,
        ``model_options``, ``classes`` (and ``class_names``), ``preprocess``,
        ``source`` (``'gluoncv:NAME'``), ``input_size`` and ``resize``.

    Raises
    ------
    GluonresError
        For an unsupported name, a missing gluoncv, an unreadable or mismatched file, or
        a block that is not the network ``name`` names.
    """
    _, family = _check_name(name)
    src, source_file = _source_block(name, source)
    if type(src).__name__ != _TARGETS[family][2]:
        raise GluonresError(f"the block given for {name} is a {type(src).__name__}, not "
                            f"GluonCV's {_TARGETS[family][2]}; pass a {name} built by "
                            "gluoncv.model_zoo.get_model")
    _ensure_shapes(src, name)
    model, options = target(name)
    dense = src.fc if family == "v1b" else src.output
    n_out = _host(dense.weight).shape[0]
    names = _class_names(src, n_out, classes, name)
    net = get_model(model, classes=n_out, **options)
    copier = _Copier(src, name, model)
    mean, std = _MAPPERS[family](src, net, copier)
    copier.finish()
    io.set_weights(net, copier.arrays, source=f"GluonCV's {name}")
    meta = {"model": model, "model_options": options, "classes": names,
            "preprocess": Preprocess(mean=mean, std=std).to_dict(),
            "source": f"{ZOO}:{name}", "input_size": INPUT_SIZE, "resize": dict(RESIZE)}
    if n_out == 1000 and names == _imagenet_attr("synset"):
        meta["class_names"] = _imagenet_attr("classes")  # readable, but not unique
    if source_file:
        meta["source_file"] = os.path.basename(source_file)
    return net, meta


def save_imported(name, path, source=None, classes=None):
    """Import a GluonCV ResNet (:func:`import_gluoncv`) and save it as gluonres weights.

    The file is a gluonres weights file (:func:`gluonres.io.save_weights`) whose metadata
    records the model, its builder options, the classes and the input normalisation.

    Parameters
    ----------
    name : str
        One of :data:`SUPPORTED`.
    path : str
        Destination ``.params`` file; replaced only once fully written.
    source, classes
        As for :func:`import_gluoncv`.

    Returns
    -------
    dict
        The metadata written.
    """
    net, meta = import_gluoncv(name, source=source, classes=classes)
    io.save_weights(net, path, meta)
    return meta


def _check_name(name):
    """``(depth, family)`` of a supported name."""
    if name not in SUPPORTED:
        raise GluonresError(f"cannot import {name!r} from {ZOO}; supported: "
                            f"{', '.join(SUPPORTED)}")
    depth, family = name[len("resnet"):].split("_")
    return int(depth), family


def _gluoncv_model_zoo():
    try:
        from gluoncv import model_zoo  # optional, slow to import: only when importing
    except ImportError:
        raise GluonresError(f"importing GluonCV models needs gluoncv; {INSTALL}") from None
    return model_zoo


def _source_block(name, source):
    """The GluonCV network and the weights file it was loaded from (or ``None``)."""
    if isinstance(source, mx.gluon.Block):
        return source, None
    if source is not None and not isinstance(source, (str, os.PathLike)):
        raise GluonresError(f"source must be None (download), a .params path or a GluonCV "
                            f"block, got {type(source).__name__}; pass one of those")
    if source is not None:
        source = os.path.expanduser(os.fspath(source))
        if not os.path.isfile(source):
            raise GluonresError(f"GluonCV weights file {source!r} does not exist; pass the "
                                f"path of {name}'s .params file, or no source to download it")
    zoo = _gluoncv_model_zoo()
    if source is None:
        from gluoncv.model_zoo.model_store import get_model_file
        try:
            source = get_model_file(name)  # downloads into ~/.mxnet/models once
        except OSError as err:
            raise GluonresError(f"could not download GluonCV's {name} ({err}); connect to "
                                "the internet or pass a local .params file as source") from None
    src = zoo.get_model(name, pretrained=False)
    _set_gluoncv_params(src, source, name)
    return src, source


def _set_gluoncv_params(src, path, name):
    """``src.load_parameters(path)``, through gluonres's reviewed params reader."""
    arrays, _ = io.load_arrays(path)
    arrays = io.weights_only(arrays)
    if any("." in k for k in arrays):
        params = src._collect_params_with_prefix()  # structural names: features.0.weight
    else:  # legacy save_params files: full names without the network's prefix
        params = {p.name[len(src.prefix):]: p for p in src.collect_params().values()}
    missing = [k for k in params if k not in arrays]
    extra = [k for k in arrays if k not in params]
    if missing or extra:
        what = (f"has no parameter {missing[0]!r}" if missing
                else f"has parameter {extra[0]!r}, which is not")
        raise GluonresError(f"{path!r} {what} of GluonCV's {name}; pass the .params file "
                            f"of {name} itself")
    for key, p in params.items():
        if p.shape and all(p.shape) and tuple(p.shape) != tuple(arrays[key].shape):
            raise GluonresError(f"{path!r}: {key!r} has shape {tuple(arrays[key].shape)} but "
                                f"GluonCV's {name} needs {tuple(p.shape)}; pass the .params "
                                f"file of {name} itself")
        p._load_init(arrays[key], mx.cpu())


def _ensure_shapes(src, name):
    """Fix the deferred shapes of an initialised block with one small forward pass."""
    params = list(src.collect_params().values())
    for p in params:
        if p._data is None and not p._deferred_init:
            raise GluonresError(f"the {name} block has uninitialised parameter {p.name!r}; "
                                "load its weights (or initialise it) before importing")
    deferred = [p for p in params if p._deferred_init]
    if deferred:
        ctx = deferred[0]._deferred_init[1][0]
        with mx.autograd.pause():  # inference: BatchNorm statistics stay untouched
            src(mx.nd.zeros((1, 3, 64, 64), ctx=ctx))


def _host(param):
    """A parameter's value as float32 numpy, from whichever device holds it."""
    return param.list_data()[0].asnumpy().astype(np.float32)


def _imagenet_attr(attr):
    try:
        from gluoncv.data import ImageNet1kAttr  # ships with gluoncv: no download
    except ImportError:
        return None
    return list(getattr(ImageNet1kAttr(), attr))


def _class_names(src, n_out, classes, name):
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != n_out:
            raise GluonresError(f"{len(classes)} class names given for {name}'s {n_out} "
                                f"outputs; pass {n_out} names, in output order")
        return classes
    own = getattr(src, "classes", None)
    if isinstance(own, (list, tuple)) and len(own) == n_out and len(set(own)) == n_out:
        return [str(c) for c in own]
    if n_out == 1000:
        synsets = _imagenet_attr("synset")  # unique, unlike the short names ("crane" x2)
        if synsets:
            return synsets
    return [str(i) for i in range(n_out)]


class _Copier:
    """Collects gluonres arrays from GluonCV layers, checking each pair and folding biases.

    Every GluonCV parameter must be taken exactly once, so a layer gluonres has no place
    for (squeeze-excitation, a deep stem) is an error, not a silent omission.
    """

    def __init__(self, src, name, model):
        self.name, self.model = name, model
        self.arrays = {}
        self._src = {id(p): n for n, p in src.collect_params().items()}
        self._taken = set()

    def fail(self, what):
        raise GluonresError(f"GluonCV's {self.name} {what}; only the plain ImageNet "
                            f"{self.name} imports into gluonres's {self.model}")

    def expect(self, layer, kind, where):
        if not isinstance(layer, kind):
            self.fail(f"has a {type(layer).__name__} at {where} where a {kind.__name__} "
                      "belongs")
        return layer

    def take(self, param):
        """A GluonCV parameter's value, marked as used."""
        if param is None:
            return None
        if id(param) in self._taken:
            self.fail(f"shares parameter {param.name!r} between layers")
        self._taken.add(id(param))
        return _host(param)

    def put(self, param, value):
        if tuple(param.shape) != tuple(value.shape):
            self.fail(f"gives {param.name!r} the shape {tuple(value.shape)}, not "
                      f"{tuple(param.shape)}")
        self.arrays[param.name] = mx.nd.array(value, dtype="float32")
        return value

    def conv(self, src, dst, where, bn_follows):
        """Copy a convolution's weight; return its bias (or ``None``) for the next BN."""
        self.expect(src, nn.Conv2D, where)
        for key in ("kernel", "stride", "pad", "dilate", "num_group", "layout"):
            theirs, ours = src._kwargs.get(key), dst._kwargs.get(key)
            if theirs != ours:
                self.fail(f"has {key}={theirs} in the convolution at {where}, where "
                          f"{self.model} has {ours}")
        self.put(dst.weight, self.take(src.weight))
        bias = self.take(src.bias)
        if bias is not None and not bn_follows:
            # gluonres convolutions have no bias, and only a BatchNorm can absorb one
            self.fail(f"has a bias in the convolution at {where}, which no BatchNorm "
                      "follows to absorb it")
        return bias

    def bn(self, src, dst, where, bias=None):
        """Copy a BatchNorm, absorbing the bias of the convolution before it."""
        self.expect(src, nn.BatchNorm, where)
        if src._kwargs.get("axis", 1) != 1:
            self.fail(f"normalises axis {src._kwargs['axis']} at {where}, not channels")
        gamma = self.take(src.gamma)
        if src._kwargs.get("fix_gamma"):
            gamma = np.ones_like(gamma)  # scale=False: the operator ignores gamma
        mean, var = self.take(src.running_mean), self.take(src.running_var)
        if bias is not None:
            mean = mean - bias  # BN(y + b) = BN(y) with the mean moved by -b
        eps_src, eps_dst = src._kwargs.get("eps", 1e-5), dst._kwargs.get("eps", 1e-5)
        if eps_src != eps_dst:
            var = (var.astype(np.float64) + eps_src - eps_dst).astype(np.float32)
        self.put(dst.gamma, gamma)
        self.put(dst.beta, self.take(src.beta))
        self.put(dst.running_mean, mean)
        self.put(dst.running_var, var)

    def conv_bn(self, conv, bn, dst, where):
        """A GluonCV conv followed by its BN into a gluonres post-activation ConvFactory."""
        bias = self.conv(conv, dst.conv, where, bn_follows=True)
        self.bn(bn, dst.bn, where, bias)

    def dense(self, src, dst, where):
        self.expect(src, nn.Dense, where)
        weight = self.put(dst.weight, self.take(src.weight))
        bias = self.take(src.bias)
        self.put(dst.bias, np.zeros(weight.shape[0], np.float32) if bias is None else bias)

    def input_norm(self, bn):
        """GluonCV v2's input BatchNorm folded into the ImageNet normalisation."""
        self.expect(bn, nn.BatchNorm, "the input")
        m, s = (np.asarray(v, np.float64) for v in (IMAGENET.mean, IMAGENET.std))
        gamma = self.take(bn.gamma).astype(np.float64)
        if bn._kwargs.get("fix_gamma"):
            gamma = np.ones_like(gamma)
        if not np.all(gamma):
            self.fail("scales an input channel by 0 in its input BatchNorm")
        beta = self.take(bn.beta).astype(np.float64)
        mean = self.take(bn.running_mean).astype(np.float64)
        sd = np.sqrt(self.take(bn.running_var).astype(np.float64) + bn._kwargs.get("eps", 1e-5))
        # gamma * ((p - m) / s - rm) / sd + beta = (p - mean') / std'
        scale = sd / gamma
        return (tuple(float(v) for v in m + s * (mean - beta * scale)),
                tuple(float(v) for v in s * scale))

    def units(self, src_stages, dst_stages, name):
        """``(where, source unit, our unit)`` of every stage, checking the unit counts
        and refusing squeeze-excitation units."""
        for s, (src_stage, dst_stage) in enumerate(zip(src_stages, dst_stages), 1):
            src_units, dst_units = list(src_stage), list(dst_stage)
            if len(src_units) != len(dst_units):
                self.fail(f"has {len(src_units)} units in {name}{s}, where {self.model} has "
                          f"{len(dst_units)}")
            for u, (blk, unit) in enumerate(zip(src_units, dst_units)):
                where = f"{name}{s}[{u}]"
                if getattr(blk, "se", None) is not None:
                    self.fail(f"has squeeze-excitation in {where}")
                yield where, blk, unit

    def shortcut(self, down, unit, where):
        """Refuse a projection shortcut on one side only."""
        if (down is None) != (unit.shortcut is None):
            self.fail(f"{'lacks' if down is None else 'has'} a projection shortcut in "
                      f"{where}, unlike {self.model}")

    def finish(self):
        left = [n for i, n in self._src.items() if i not in self._taken]
        if left:
            self.fail(f"has parameter {left[0]!r} with no counterpart")


def _pairs(layers, where, copier):
    """``[(conv, bn), ...]`` of a v1 body: convolutions, each followed by its BatchNorm."""
    layers = [layer for layer in layers if not isinstance(layer, nn.Activation)]
    if len(layers) % 2:
        copier.fail(f"has an unpaired layer in {where}")
    pairs = list(zip(layers[::2], layers[1::2]))
    for i, (conv, bn) in enumerate(pairs):
        copier.expect(conv, nn.Conv2D, f"{where}[{2 * i}]")
        copier.expect(bn, nn.BatchNorm, f"{where}[{2 * i + 1}]")
    return pairs


def _post_unit(copier, pairs, shortcut, unit, where):
    """A v1/v1b unit (conv-BN pairs and an optional conv-BN projection) into ours."""
    if len(pairs) != len(unit.body):
        copier.fail(f"has {len(pairs)} convolutions in {where}, where {copier.model} has "
                    f"{len(unit.body)}")
    for i, ((conv, bn), dst) in enumerate(zip(pairs, unit.body), 1):
        copier.conv_bn(conv, bn, dst, f"{where} conv{i}")
    copier.shortcut(shortcut, unit, where)
    if shortcut is not None:
        (conv, bn), = _pairs(list(shortcut), f"{where} downsample", copier)
        copier.conv_bn(conv, bn, unit.shortcut, f"{where} downsample")


def _features(src, kinds, copier):
    """``src.features`` after checking its layer types against ``kinds``."""
    layers = list(src.features)
    if len(layers) != len(kinds):
        copier.fail(f"has {len(layers)} feature layers, not the {len(kinds)} of the plain "
                    "ImageNet ResNet")
    for i, (layer, kind) in enumerate(zip(layers, kinds)):
        copier.expect(layer, kind, f"features[{i}]")
    return layers


def _check_pool(src, dst, copier):
    keys = ("kernel", "stride", "pad", "pool_type", "pooling_convention")
    if any(src._kwargs.get(k) != dst._kwargs.get(k) for k in keys):
        copier.fail("pools its stem differently (not a 3x3/2 max pool, padding 1)")


def _map_v1b(src, net, copier):
    conv1 = copier.expect(src.conv1, nn.Conv2D, "conv1")  # a deep stem (v1c/d/e) is not
    copier.conv_bn(conv1, src.bn1, net.stem[0], "conv1")
    _check_pool(src.maxpool, net.stem[1], copier)
    stages = [getattr(src, f"layer{s}") for s in range(1, len(net.stages) + 1)]
    for where, blk, unit in copier.units(stages, net.stages, "layer"):
        k = 3 if hasattr(blk, "conv3") else 2
        pairs = [(getattr(blk, f"conv{i}"), getattr(blk, f"bn{i}")) for i in range(1, k + 1)]
        _post_unit(copier, pairs, blk.downsample, unit, where)
    copier.dense(src.fc, net.head[-1], "fc")
    return IMAGENET.mean, IMAGENET.std


_V1_FEATURES = [nn.Conv2D, nn.BatchNorm, nn.Activation, nn.MaxPool2D] + \
    [nn.HybridSequential] * 4 + [nn.GlobalAvgPool2D]


def _map_v1(src, net, copier):
    f = _features(src, _V1_FEATURES, copier)
    copier.conv_bn(f[0], f[1], net.stem[0], "features[0]")
    _check_pool(f[3], net.stem[1], copier)
    for where, blk, unit in copier.units(f[4:8], net.stages, "stage"):
        _post_unit(copier, _pairs(list(blk.body), f"{where} body", copier),
                   blk.downsample, unit, where)
    copier.dense(src.output, net.head[-1], "output")
    return IMAGENET.mean, IMAGENET.std


_V2_FEATURES = [nn.BatchNorm, nn.Conv2D, nn.BatchNorm, nn.Activation, nn.MaxPool2D] + \
    [nn.HybridSequential] * 4 + [nn.BatchNorm, nn.Activation, nn.GlobalAvgPool2D, nn.Flatten]


def _map_v2(src, net, copier):
    f = _features(src, _V2_FEATURES, copier)
    mean, std = copier.input_norm(f[0])
    copier.conv_bn(f[1], f[2], net.stem[0], "features[1]")
    _check_pool(f[4], net.stem[1], copier)
    for where, blk, unit in copier.units(f[5:9], net.stages, "stage"):
        k = 3 if hasattr(blk, "conv3") else 2
        convs = [getattr(blk, f"conv{i}") for i in range(1, k + 1)]
        bns = [getattr(blk, f"bn{i}") for i in range(1, k + 1)]
        if len(convs) != len(unit.body) or unit.preact_bn is None:
            copier.fail(f"has a unit {where} unlike {copier.model}'s")
        # BN-ReLU-conv: bn1 is the unit's shared pre-activation, bn{i} (i > 1) sits
        # in our conv{i}; conv{i-1} feeds bn{i} directly, so a bias folds into it
        copier.bn(bns[0], unit.preact_bn, f"{where} bn1")
        bias = None
        for i, (conv, dst) in enumerate(zip(convs, unit.body)):
            if i:
                copier.bn(bns[i], dst.bn, f"{where} bn{i + 1}", bias)
            bias = copier.conv(conv, dst.conv, f"{where} conv{i + 1}",
                               bn_follows=i + 1 < len(convs))
        down = blk.downsample
        copier.shortcut(down, unit, where)
        if down is not None:  # feeds the addition: no BatchNorm of its own
            copier.conv(down, unit.shortcut.conv, f"{where} downsample", bn_follows=False)
    head_bn = [layer for layer in net.head if isinstance(layer, nn.BatchNorm)]
    copier.bn(f[9], head_bn[0], "features[9]")
    copier.dense(src.output, net.head[-1], "output")
    return mean, std


_MAPPERS = {"v1b": _map_v1b, "v1": _map_v1, "v2": _map_v2}
