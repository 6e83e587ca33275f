"""Read off the network's symbolic graph: shapes, parameters, multiply-adds; and the two
measurements of the papers' analyses: layer responses (2015, Fig. 7) and per-layer
gradient norms."""
import json
import warnings
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon


def default_input_shape(net, batch=1):
    """``(batch, C, S, S)``: the model's ``in_channels`` (default 3) and native input size
    ``S`` (``net.input_size``: 32 for CIFAR models, 224, 240 or 299 for ImageNet ones)."""
    size = getattr(net, "input_size", 224)
    return (batch, getattr(net, "in_channels", 3), size, size)


def trainable_params(net):
    """Number of trainable parameters (BatchNorm running statistics excluded).

    Works on uninitialised networks. Where a layer's shape is still deferred (GluonCV's
    layers infer their input channels), the shapes are inferred from the graph at the
    model's native input size, as :func:`summary` does.
    """
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    if any(not p.shape or min(p.shape) <= 0 for p in params):
        return summary(net).params
    return sum(int(np.prod(p.shape)) for p in params)


@dataclass
class Stage:
    """One group of layers sharing a name prefix (``stem``, ``stage1`` ... ``head``)."""

    name: str
    output_shape: tuple
    params: int = 0
    macs: int = 0


@dataclass
class Summary:
    """Per-stage output shapes, trainable parameters and multiply-adds of a network."""

    input_shape: tuple
    stages: list = field(default_factory=list)

    @property
    def params(self):
        return sum(s.params for s in self.stages)

    @property
    def macs(self):
        return sum(s.macs for s in self.stages)

    def to_dict(self):
        """JSON-ready record: totals plus one entry per stage."""
        return {"input_shape": list(self.input_shape), "params": self.params,
                "macs": self.macs,
                "stages": [{"name": s.name, "output_shape": list(s.output_shape),
                            "params": s.params, "macs": s.macs} for s in self.stages]}

    def __str__(self):
        rows = [f"{'stage':<10}{'output shape':>22}{'params':>14}{'mult-adds':>18}"]
        for s in self.stages:
            rows.append(f"{s.name:<10}{str(tuple(s.output_shape)):>22}{s.params:>14,}"
                        f"{s.macs:>18,}")
        rows.append(f"{'total':<10}{'':>22}{self.params:>14,}{self.macs:>18,}")
        return "\n".join(rows)


def _group(name):
    return name.split("_", 1)[0]


def graph_shapes(net, input_shape=None):
    """The nodes of ``net``'s graph and the shape of every node output and argument.

    Returns
    -------
    nodes : list of dict
        The symbol's JSON nodes (``op``, ``name``, ``attrs``, ``inputs``), in order.
    shapes : dict of str to tuple
        ``'<node>_output'`` and argument names -> shape, for ``input_shape`` (default:
        batch 1 at the model's native size).
    """
    input_shape = tuple(input_shape or default_input_shape(net))
    sym = net(mx.sym.var("data"))
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(data=input_shape)
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    shapes.update(zip(internals.list_arguments(), arg_shapes))
    return json.loads(sym.tojson())["nodes"], shapes


def summary(net, input_shape=None):
    """Per-stage output shapes, trainable parameters and multiply-adds, from the graph.

    Multiply-adds count convolutions and fully connected layers, as the 2015 paper's
    Table 1 does ("FLOPs" there are multiply-adds); BatchNorm, ReLU, pooling and the
    additions are left out.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Any hybridizable network; layers are grouped by the first token of their names
        (``stem``, ``stage1`` ... ``head`` for gluonres models).
    input_shape : tuple, optional
        ``(N, C, H, W)``; defaults to batch 1 at the model's native size.

    Returns
    -------
    Summary
        Printable; ``to_dict()`` gives the JSON record.
    """
    input_shape = tuple(input_shape or default_input_shape(net))
    nodes, shapes = graph_shapes(net, input_shape)
    stages = {}
    for node in nodes:
        if node["op"] == "null":
            continue
        group = _group(node["name"])
        out = shapes.get(node["name"] + "_output")
        stage = stages.setdefault(group, Stage(group, out))
        if out is not None:
            stage.output_shape = out  # the group's last node gives its output shape
        if node["op"] in ("Convolution", "FullyConnected"):
            # weight (out, in/groups, kh, kw) or (out, in): each output element costs
            # one multiply-add per weight of its filter
            weight = shapes[nodes[node["inputs"][1][0]]["name"]]
            stage.macs += int(np.prod(out[1:])) * int(np.prod(weight[1:]))
    for name, p in net.collect_params().items():
        if p.grad_req != "null" and name in shapes:
            stages.setdefault(_group(name), Stage(_group(name), ())).params += \
                int(np.prod(shapes[name]))
    return Summary(input_shape, list(stages.values()))


# ---------------------------------------------------------------------------- analyses
def response_layers(net):
    """The 3x3 convolutions whose BatchNorm output is a "layer response" (2015, Fig. 7).

    The 2015 paper's Fig. 7 plots, for each 3x3 layer, the response after its
    BatchNorm and before any other nonlinearity (ReLU or the addition): the output of a
    ``BatchNorm`` node fed directly by a 3x3 ``Convolution``. (In a pre-activation unit
    such a BatchNorm is the next convolution's pre-activation; Fig. 7 is about 2015
    networks.)

    Returns
    -------
    list of (str, str)
        ``(convolution name, BatchNorm node name)`` in graph (forward) order.
    """
    nodes = json.loads(net(mx.sym.var("data")).tojson())["nodes"]
    layers = []
    for node in nodes:
        if node["op"] == "BatchNorm":
            source = nodes[node["inputs"][0][0]]
            kernel = source.get("attrs", {}).get("kernel", "").replace(" ", "")
            if source["op"] == "Convolution" and kernel == "(3,3)":
                layers.append((source["name"].removesuffix("_fwd"), node["name"]))
    return layers


def layer_responses(net, x, batch_size=250):
    """Standard deviation of each 3x3 layer's response (2015 paper, Fig. 7).

    Inference mode (BatchNorm running statistics), over every element of the response
    (images, channels and positions) of the input batch.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Initialised network; its parameters are shared, not copied.
    x : mxnet.nd.NDArray
        Preprocessed input ``(N, C, H, W)``, evaluated ``batch_size`` at a time.
    batch_size : int, default 250

    Returns
    -------
    dict
        ``layers`` (convolution names, forward order) and ``std`` (one float each).
    """
    layers = response_layers(net)
    internals = net(mx.sym.var("data")).get_internals()
    outputs = mx.sym.Group([internals[f"{bn}_output"] for _, bn in layers])
    with warnings.catch_warnings():  # the input's type is only known at the first call
        warnings.simplefilter("ignore", UserWarning)
        block = gluon.SymbolBlock(outputs, mx.sym.var("data"), params=net.collect_params())
    count, sums, squares = 0, np.zeros(len(layers)), np.zeros(len(layers))
    for start in range(0, x.shape[0], batch_size):
        responses = block(x[start:start + batch_size])
        for i, r in enumerate(responses):
            r = r.asnumpy().astype(np.float64)
            sums[i] += r.sum()
            squares[i] += (r * r).sum()
        count += responses[0].size
    mean = sums / count
    return {"layers": [conv for conv, _ in layers],
            "std": np.sqrt(np.maximum(squares / count - mean * mean, 0)).tolist()}


def gradient_norms(net, x, y):
    """L2 norm of the loss gradient for each main-path convolution's weights.

    One forward and backward pass in training mode (batch statistics) on ``(x, y)``,
    mean softmax cross-entropy, no update. Projection shortcuts and gates are left out,
    so layer ``i`` is the ``i``-th weighted layer on the path the papers count. The
    BatchNorm running statistics the forward pass moves are put back, so a training
    run measured this way continues exactly as an unmeasured one.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Initialised network.
    x : mxnet.nd.NDArray
        Preprocessed input batch.
    y : mxnet.nd.NDArray
        Labels.

    Returns
    -------
    dict
        ``layers`` (weight names, forward order) and ``norms`` (floats).
    """
    params = net.collect_params()
    weights = [(n, p) for n, p in params.items()
               if p.grad_req != "null" and n.endswith("_weight") and len(p.shape) == 4
               and "shortcut" not in n and "gate" not in n]
    running = {n: p.data().copy() for n, p in params.items() if p.grad_req == "null"}
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        loss = loss_fn(net(x), y).mean()
    loss.backward()
    norms = [float(p.grad().norm().asscalar()) for _, p in weights]
    for n, value in running.items():
        params[n].set_data(value)
    return {"layers": [n.removesuffix("_weight") for n, _ in weights], "norms": norms}
