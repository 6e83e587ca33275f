"""What a network does inside: per-layer response strengths (2015 paper, Fig. 7) and
per-layer gradient norms.
"""
import json
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon


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
