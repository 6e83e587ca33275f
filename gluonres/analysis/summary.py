"""What a network is: per-stage output shapes, trainable parameters and multiply-adds,
read from its graph.
"""
import json
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

from gluonres.models import model_info


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
    input_shape = tuple(input_shape or model_info(net).input_shape())
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
    input_shape = tuple(input_shape or model_info(net).input_shape())
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
