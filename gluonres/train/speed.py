"""Fast CPU execution: static graphs, fused for oneDNN where mxnet 1.9.1 allows it.

Three ways to run a network; each uses the network's own ``Parameter`` objects
(nothing is copied; save and export ``net`` itself):

* :func:`for_inference` -- the hybridized graph partitioned by the oneDNN subgraph
  backend (convolution + BatchNorm + ReLU + residual addition fused into one kernel),
  statically planned memory.
* :func:`for_training` -- the hybridized graph with every BatchNorm whose only consumer
  is a ReLU replaced by oneDNN's fused ``BatchNormWithReLU`` (forward and backward), and
  global average poolings fed plain NCHW (fast kernels on every ISA), statically planned
  memory.
* :class:`CheckpointedStep` -- a forward and backward pass that stores the
  activations of a few segment boundaries only and recomputes the rest, for networks
  too deep for memory (ResNet-1202 at batch 128).

docs/performance.md gives the measurements behind each choice.
"""
import json
import math
import warnings

import mxnet as mx
from mxnet import autograd, gluon

from gluonres.models import model_info


INPUT = "data"


def _symbol_block(net, sym):
    """A SymbolBlock over ``sym`` that uses ``net``'s Parameter objects."""
    with warnings.catch_warnings():
        # SymbolBlock cannot know the input's dtype before the first call; float32 it is
        warnings.filterwarnings("ignore", "Cannot decide type")
        return gluon.SymbolBlock(sym, mx.sym.var(INPUT), params=net.collect_params())


def _check_initialized(net):
    try:
        for p in net.collect_params().values():
            p.data()
    except RuntimeError as err:
        from gluonres.errors import GluonresError
        raise GluonresError("the network has no weights yet; call net.initialize() or load "
                            "weights first") from err


def _load_graph(graph):
    """A symbol from an edited graph dict (arg_nodes recomputed, row pointers dropped)."""
    graph["arg_nodes"] = [i for i, n in enumerate(graph["nodes"]) if n["op"] == "null"]
    graph.pop("node_row_ptr", None)
    return mx.sym.load_json(json.dumps(graph))


def fuse_bn_relu(sym):
    """Replace each BatchNorm -> ReLU pair by one ``_contrib_BatchNormWithReLU``.

    A BatchNorm is fused only when the ReLU is its single consumer, so no other node
    needs the un-activated values. Parameter names are unchanged; outputs, gradients
    and running statistics are those of the unfused graph (tests/train/test_speed.py).

    Parameters
    ----------
    sym : mxnet.symbol.Symbol

    Returns
    -------
    (mxnet.symbol.Symbol, int)
        The rewritten graph and the number of pairs fused.
    """
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    uses = {}
    for node in nodes:
        for src, *_ in node["inputs"]:
            uses[src] = uses.get(src, 0) + 1
    outputs = {h[0] for h in graph["heads"]}
    bypass = {}  # ReLU node -> the BatchNorm node that now applies it
    for i, node in enumerate(nodes):
        is_relu = node["op"] == "relu" or (node["op"] == "Activation" and
                                           node.get("attrs", {}).get("act_type") == "relu")
        if not is_relu:
            continue
        src = node["inputs"][0][0]
        if nodes[src]["op"] == "BatchNorm" and uses[src] == 1 and src not in outputs:
            nodes[src]["op"] = "_contrib_BatchNormWithReLU"
            bypass[i] = src
    for node in nodes:
        node["inputs"] = [[bypass.get(src, src), *rest] for src, *rest in node["inputs"]]
    graph["heads"] = [[bypass.get(src, src), *rest] for src, *rest in graph["heads"]]
    # the bypassed ReLU nodes are unreachable now; loading drops them
    return _load_graph(graph), len(bypass)


def _is_global_avg_pool(node):
    attrs = node.get("attrs", {})
    return (node["op"] == "Pooling" and attrs.get("global_pool") == "True"
            and attrs.get("pool_type", "max") == "avg")


def plain_global_pools(sym):
    """Give every global average pooling its input in plain NCHW layout.

    A reshape to the same shape goes in front of each global average pooling; in
    mxnet 1.9.1 it turns a oneDNN blocked tensor into plain NCHW, so the pooling and its
    gradient stay in plain layout, for which oneDNN has fast kernels on every ISA.

    Why: with AVX-512 kernels the tensors are 16-channel blocked (``aBcd16b``). The
    pooling's backward to a blocked input then runs oneDNN's reference kernel and hands
    its gradient on as ``acdB16b``. No fast BatchNorm backward takes that layout beside
    a blocked input, so the BatchNorm before the pooling runs the reference kernel too,
    about 20x slower; and when that BatchNorm is fused with its ReLU no kernel can be
    created at all ("could not create a primitive descriptor iterator": the fused
    forward's 1-bit ReLU mask and the reference backward's 8-bit one do not match). That
    BatchNorm+ReLU ends every plain net and every pre-activation net. With AVX2 kernels
    (8-channel blocks) neither happens, and the reshape costs one small reorder there.
    The gradient is unchanged (tests/train/test_isa_matrix.py compares it on every ISA level).

    Parameters
    ----------
    sym : mxnet.symbol.Symbol

    Returns
    -------
    (mxnet.symbol.Symbol, int)
        The rewritten graph and the number of poolings changed.
    """
    graph = json.loads(sym.tojson())
    nodes, moved = [], {}  # moved: old index -> new index
    changed = 0
    for i, node in enumerate(graph["nodes"]):
        node["inputs"] = [[moved[src], *rest] for src, *rest in node["inputs"]]
        if _is_global_avg_pool(node):
            nodes.append({"op": "Reshape", "name": f"{node['name']}_plain",
                          "attrs": {"shape": "(0, 0, -1, 0)"}, "inputs": [node["inputs"][0]]})
            node["inputs"] = [[len(nodes) - 1, 0, 0]]
            changed += 1
        nodes.append(node)
        moved[i] = len(nodes) - 1
    graph["nodes"] = nodes
    graph["heads"] = [[moved[src], *rest] for src, *rest in graph["heads"]]
    return _load_graph(graph), changed


def for_training(net, fuse=True):
    """A hybridized block that trains ``net``'s parameters faster.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        An initialised network (deferred shapes known: call it once or load weights).
    fuse : bool, default True
        Fuse BatchNorm + ReLU (:func:`fuse_bn_relu`); ``False`` leaves them apart, for
        comparison. Either way the global average poolings get plain-layout input
        (:func:`plain_global_pools`).

    Returns
    -------
    mxnet.gluon.HybridBlock
        Call it instead of ``net`` inside ``autograd.record()``; its gradients and
        BatchNorm statistics land in ``net.collect_params()``, so a ``gluon.Trainer``
        over those trains ``net``. Memory is planned once (``static_alloc``,
        ``static_shape``); another batch shape (a smaller last batch) re-plans.

    Notes
    -----
    In mxnet 1.9.1 a static graph's BatchNorm updates its running statistics without
    telling the engine, so ``param.data().asnumpy()`` right after a step can return the
    old values. Call ``mx.nd.waitall()`` before reading or saving them (a checkpoint).
    """
    _check_initialized(net)
    sym, _ = plain_global_pools(net(mx.sym.var(INPUT)))
    if fuse:
        sym, _ = fuse_bn_relu(sym)
    block = _symbol_block(net, sym)
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def for_inference(net, batch_size=1, input_shape=None, fuse=True):
    """A block for fast prediction with ``net``'s current weights.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        An initialised network.
    batch_size : int, default 1
        Batch the memory plan is made for (other sizes work, re-planned).
    input_shape : tuple, optional
        Full ``(N, C, H, W)``; overrides ``batch_size`` and the native image size.
    fuse : bool, default True
        Partition the graph with the oneDNN (``MKLDNN``) subgraph backend: each
        convolution absorbs its BatchNorm (folded into the weights on the first
        call), ReLU and residual addition. ``False``: the plain static graph.

    Returns
    -------
    mxnet.gluon.SymbolBlock
        For inference only (the fused operators have no backward). Outputs match
        ``net`` to float32 rounding (folding BatchNorm reorders the arithmetic). The
        fold is cached: after loading or training new weights into ``net``, call
        ``for_inference`` again (oneDNN refolds when a convolution's weights change,
        but not when only a BatchNorm's do).
    """
    _check_initialized(net)
    shape = tuple(input_shape or model_info(net).input_shape(batch_size))
    block = _symbol_block(net, net(mx.sym.var(INPUT)))
    x = mx.nd.zeros(shape)
    if fuse:
        block.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
    else:
        block.hybridize(static_alloc=True, static_shape=True)
    block(x).wait_to_read()  # plan memory and fold weights now, not on the first request
    return block


def _units(net):
    """The network as a flat list of blocks applied in sequence (stem, units, head)."""
    from gluonres.models.resnet import ResNet
    if not isinstance(net, ResNet):
        from gluonres.errors import GluonresError
        raise GluonresError(f"checkpointed training needs a gluonres ResNet, got "
                            f"{type(net).__name__}; train it with for_training instead")
    return [*net.stem, *(unit for stage in net.stages for unit in stage), *net.head]


class CheckpointedStep:
    """Forward and backward of ``loss_fn(net(x), y)`` keeping few activations.

    The network is cut into about ``sqrt(units)`` segments. The forward pass keeps only
    each segment's input; the backward pass recomputes one segment at a time, with
    autograd recording, and back-propagates through it. Memory for activations falls
    from all units to about ``2 * sqrt(units)`` of them, for one extra forward pass.

    Gradients and BatchNorm running statistics are those of an ordinary step: the
    recomputation sees the same input and weights, and mxnet updates the running
    statistics in the backward pass, which runs once per segment.

    Parameters
    ----------
    net : gluonres.models.ResNet
        An initialised network; its units are regrouped into hybridized segments here
        (dynamic memory, so a segment's activations are freed after its turn).
    loss_fn : mxnet.gluon.HybridBlock
        A per-sample loss such as ``gluon.loss.SoftmaxCrossEntropyLoss()``.
    segments : int, optional
        Number of segments; default ``round(sqrt(units))``.

    Notes
    -----
    A call replaces ``with autograd.record(): loss = loss_fn(net(x), y)`` and
    ``loss.backward()``; then ``trainer.step(batch_size)`` as usual.

    MXNet's own backward mirroring (``MXNET_BACKWARD_DO_MIRROR``) cannot do this for
    Gluon: mxnet 1.9.1's CachedOp builds its backward graph without a mirror function,
    and in the symbolic executor, which has one, it raised the peak memory of a
    ResNet-110 step instead of lowering it (docs/performance.md).
    """

    def __init__(self, net, loss_fn, segments=None):
        _check_initialized(net)
        units = _units(net)
        k = max(1, min(len(units), segments or round(math.sqrt(len(units)))))
        bounds = [round(i * len(units) / k) for i in range(k + 1)]
        self.segments = []
        for a, b in zip(bounds, bounds[1:]):
            segment = gluon.nn.HybridSequential(prefix="")
            segment.add(*units[a:b])  # the units stay in `net` too, with the same names
            # one graph per segment; not static_alloc, whose buffers would outlive the
            # segment's turn and keep every activation after all
            segment.hybridize()
            self.segments.append(segment)
        self._loss_fn = loss_fn

    def __call__(self, x, y):
        """One forward and backward pass; returns ``(per-sample loss, outputs)``."""
        inputs = [x]
        with autograd.pause(train_mode=True):  # BatchNorm uses batch statistics
            for segment in self.segments[:-1]:
                inputs.append(segment(inputs[-1]))
        last = inputs[-1]
        last.attach_grad()
        with autograd.record():
            out = self.segments[-1](last)
            loss = self._loss_fn(out, y)
        loss.backward()
        grad = last.grad
        for segment, inp in zip(self.segments[-2::-1], inputs[-2::-1]):
            inp.attach_grad()
            with autograd.record():
                seg_out = segment(inp)
            seg_out.backward(grad)
            grad = inp.grad
        return loss, out
