"""One process of the ISA matrix (tests/test_isa_matrix.py): every case, at one ISA level.

Run as ``python tests/isa_worker.py CASES_JSON`` with ``DNNL_MAX_CPU_ISA`` set (or not) by
the caller. For each case it builds the network, then measures against the imperative
network with the same weights:

* the fused inference graph (:func:`gluonres.speed.for_inference`) -- its outputs;
* one training pass of the graph ``gluonres train`` runs (:func:`gluonres.speed.for_training`)
  and of the unfused static graph -- their loss, outputs and gradients.

It prints one JSON line per case as soon as the case ends (so a crash of the process names
the case it died in) and raises nothing: an MXNet error is reported in the line.
Gradient errors are per parameter, against a float64 reference (see :func:`run`).
"""
import json
import math
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

import gluonres
from gluonres.models.cifar import cifar_resnet
from gluonres.train import speed


BATCH = 16


def build(case):
    """The network of a case: a registered name, or ``cifar_resnet`` for the small
    bottleneck nets (the same code as ResNet-164 at a ninth of its depth)."""
    kwargs = dict(case.get("kwargs", {}))
    if case["model"] == "cifar_resnet":
        return cifar_resnet(**kwargs)
    return gluonres.get_model(case["model"], **kwargs)


def max_rel(got, want):
    """Largest difference relative to the reference tensor's largest magnitude."""
    scale = max(float(np.abs(want).max()), 1e-30)
    return float(np.abs(got - want).max()) / scale


def setup(case, dtype="float32"):
    """The case's network with He weights and non-trivial BatchNorm statistics (so that
    folding them at inference is exercised), a batch and its labels; the same numbers
    for either dtype."""
    mx.random.seed(0)
    np.random.seed(0)
    net = build(case)
    size = case["size"]
    net.initialize(mx.init.MSRAPrelu(factor_type="in", slope=0))
    x = mx.nd.random.uniform(-1, 1, (BATCH, 3, size, size))
    y = mx.nd.array(np.arange(BATCH) % 10)
    net(x)  # deferred shapes
    for name, p in net.collect_params().items():
        if name.endswith("running_var"):
            p.set_data(mx.nd.random.uniform(0.5, 1.5, p.shape))
        elif name.endswith("running_mean"):
            p.set_data(mx.nd.random.uniform(-0.1, 0.1, p.shape))
    if dtype != "float32":
        net.cast(dtype)
        x, y = x.astype(dtype), y.astype(dtype)
    return net, x, y


def train_pass(net, block, x, y, seed=1):
    """Loss, outputs and gradients (float64 numpy) of one recorded pass of ``block``."""
    params = {k: p for k, p in net.collect_params().items() if p.grad_req != "null"}
    for p in params.values():
        p.zero_grad()
    mx.random.seed(seed)  # the same dropout masks in every pass of one dtype
    with autograd.record():
        out = block(x)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(out, y).mean()
    loss.backward()
    mx.nd.waitall()
    return (float(loss.asscalar()), out.asnumpy().astype(np.float64),
            {k: p.grad().asnumpy().astype(np.float64) for k, p in params.items()})


def run(case):
    """Errors of each graph, per parameter, against the most exact reference there is.

    That reference is the network in float64: some gradients of a randomly initialised
    network are ill-conditioned (a BatchNorm backward subtracts nearly equal sums), and
    then float32 imperative and float32 static graphs each land a few percent from the
    truth, in different places. A graph is right when it is about as close to the truth as
    the imperative float32 pass is (``imperative_grad`` per parameter). A network that
    draws random numbers in training (dropout) cannot be compared across dtypes, which
    draw differently: its reference is the imperative float32 pass with the same draws.
    """
    net, x, y = setup(case)
    result = {"case": case["id"]}
    # inference first: the training passes below move the running statistics
    want = net(x).asnumpy()
    got = speed.for_inference(net, input_shape=x.shape)(x).asnumpy()
    result["inference_out"] = max_rel(got, want)

    ref_loss, ref_out, ref_grads = train_pass(net, net, x, y)
    random = not np.array_equal(train_pass(net, net, x, y, seed=2)[1], ref_out)
    result["reference"] = "float32 imperative (random draws)" if random else "float64"
    truth = ref_grads
    if not random:
        net64, x64, y64 = setup(case, "float64")
        truth = train_pass(net64, net64, x64, y64)[2]
    result["imperative_grad"] = {k: max_rel(g, truth[k]) for k, g in ref_grads.items()}
    for label, block in (("fused", speed.for_training(net)),
                         ("static", speed.for_training(net, fuse=False))):
        loss, out, grads = train_pass(net, block, x, y)
        result[f"{label}_loss"] = loss if math.isfinite(loss) else str(loss)
        result[f"{label}_out"] = max_rel(out, ref_out)
        result[f"{label}_grad"] = {k: max_rel(grads[k], g) for k, g in truth.items()}
    result["imperative_loss"] = ref_loss
    return result


def main(cases):
    for case in cases:
        try:
            line = run(case)
        except mx.MXNetError as err:
            line = {"case": case["id"], "error": str(err).strip().splitlines()[0][:300]}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
