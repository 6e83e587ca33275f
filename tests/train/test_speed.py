"""speed.py: the fast graphs compute what the plain network computes (no timings here)."""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluonres
from gluonres.errors import GluonresError
from gluonres.train import speed


BN_MEAN = "stage1_unit2_conv1_bn_running_mean"


def _net(name="resnet20_cifar", seed=0):
    """He weights and non-trivial BatchNorm statistics, so folding them is exercised."""
    mx.random.seed(seed)
    net = gluonres.get_model(name)
    net.initialize(mx.init.MSRAPrelu(slope=0))
    for pname, p in net.collect_params().items():
        if pname.endswith("running_var"):
            p.set_data(mx.nd.random.uniform(0.5, 1.5, p.shape))
        elif pname.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.random.uniform(-0.1, 0.1, p.shape))
    return net


def _batch(n=4):
    mx.random.seed(1)
    return mx.nd.random.uniform(-1, 1, shape=(n, 3, 32, 32)), mx.nd.array(np.arange(n) % 10)


def _graph_ops(sym):
    return {node["op"] for node in json.loads(sym.tojson())["nodes"]}


def test_blocks_use_the_onednn_relu():
    ops = _graph_ops(gluonres.get_model("resnet20_cifar")(mx.sym.var("data")))
    assert "relu" not in ops and "Activation" in ops


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet20_cifar_v2"])
def test_inference_graph_matches_the_network(name):
    net = _net(name)
    x, _ = _batch()
    fast = speed.for_inference(net, batch_size=4)
    fused = _graph_ops(fast._cached_graph[1])
    assert "_sg_mkldnn_conv" in fused
    if not name.endswith("v2"):  # pre-activation BatchNorms precede their convolution
        assert "BatchNorm" not in fused
    expected = net(x).asnumpy()
    np.testing.assert_allclose(fast(x).asnumpy(), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


def _one_step(forward, net, x, y):
    """Gradients and one BatchNorm's running mean after a forward/backward pass."""
    params = net.collect_params()
    forward(x, y)
    mx.nd.waitall()  # static graphs update BN statistics without an engine dependency
    return ({k: p.grad().asnumpy().copy() for k, p in params.items() if p.grad_req != "null"},
            params[BN_MEAN].data().asnumpy().copy())


def _autograd(block, loss_fn):
    def forward(x, y):
        with autograd.record():
            loss = loss_fn(block(x), y)
        loss.backward()
    return forward


def test_training_graph_and_checkpointed_step_match_imperative():
    x, y = _batch()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    ref_net = _net()
    ref_grads, ref_mean = _one_step(_autograd(ref_net, loss_fn), ref_net, x, y)
    assert np.abs(ref_mean - _net().collect_params()[BN_MEAN].data().asnumpy()).max() > 1e-3

    net = _net()
    fast = speed.for_training(net)
    # ResNet-20: the stem's and each unit's first BatchNorm feed a ReLU alone
    assert speed.fuse_bn_relu(net(mx.sym.var("data")))[1] == 10
    grads, mean = _one_step(_autograd(fast, loss_fn), net, x, y)
    net2 = _net()
    step = speed.CheckpointedStep(net2, loss_fn, segments=3)
    assert len(step.segments) == 3
    ckpt_grads, ckpt_mean = _one_step(step, net2, x, y)
    for got_grads, got_mean in ((grads, mean), (ckpt_grads, ckpt_mean)):
        np.testing.assert_allclose(got_mean, ref_mean, rtol=1e-5, atol=1e-6)
        for k, g in ref_grads.items():
            np.testing.assert_allclose(got_grads[k], g, rtol=1e-4, atol=1e-5 * np.abs(g).max(),
                                       err_msg=k)


def test_checkpointed_step_needs_a_gluonres_resnet():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(2, in_units=3))
    net.initialize()
    with pytest.raises(GluonresError, match="for_training"):
        speed.CheckpointedStep(net, gluon.loss.SoftmaxCrossEntropyLoss())


def test_uninitialised_network_is_refused():
    with pytest.raises(GluonresError, match="initialize"):
        speed.for_inference(gluonres.get_model("resnet20_cifar"))


def test_training_graph_feeds_global_pools_plain_layout():
    """The reshape in front of the pooling keeps it and its gradient in plain layout
    (the AVX-512 crash and slowdown, tests/test_isa_matrix.py); the net computes the same."""
    net = _net("plain20_cifar")
    sym, changed = speed.plain_global_pools(net(mx.sym.var("data")))
    assert changed == 1
    nodes = json.loads(sym.tojson())["nodes"]
    pool = next(n for n in nodes if n["op"] == "Pooling")
    assert nodes[pool["inputs"][0][0]]["op"] == "Reshape"
    x, _ = _batch()
    block = speed._symbol_block(net, sym)
    np.testing.assert_allclose(block(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)
