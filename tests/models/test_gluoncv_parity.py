"""Same weights, same output: GluonCV's ResNets copied into ours."""
import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model as gluoncv_model

import gluonres


def _copy_in_order(src, dst):
    """Copy parameters by position; both nets register them in the same layer order."""
    src_params = list(src.collect_params().values())
    dst_params = list(dst.collect_params().values())
    assert len(src_params) == len(dst_params)
    for s, d in zip(src_params, dst_params):
        assert s.shape == d.shape, (s.name, d.name)
        d.set_data(s.data())


@pytest.mark.parametrize("theirs,ours,kwargs", [
    ("resnet18_v1", "resnet18", {}),
    ("resnet50_v1b", "resnet50", {"stride_on": "3x3"}),
])
def test_same_weights_same_output(theirs, ours, kwargs):
    mx.random.seed(1)
    src = gluoncv_model(theirs, pretrained=False)
    src.initialize(mx.init.MSRAPrelu(slope=0))
    x = mx.nd.random.uniform(-1, 1, shape=(2, 3, 224, 224))
    expected = src(x).asnumpy()
    dst = gluonres.get_model(ours, **kwargs)
    dst.initialize()
    _copy_in_order(src, dst)
    np.testing.assert_allclose(dst(x).asnumpy(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


def test_default_stride_placement_differs_from_v1b():
    """The paper's 1x1 stride placement is a different function from v1b's 3x3 one."""
    mx.random.seed(1)
    src = gluoncv_model("resnet50_v1b", pretrained=False)
    src.initialize(mx.init.MSRAPrelu(slope=0))
    x = mx.nd.random.uniform(-1, 1, shape=(1, 3, 224, 224))
    theirs = src(x).asnumpy()  # the first forward pass also fixes GluonCV's deferred shapes
    dst = gluonres.get_model("resnet50")
    dst.initialize()
    _copy_in_order(src, dst)
    assert np.abs(dst(x).asnumpy() - theirs).max() > 1e-2 * np.abs(theirs).max()


@pytest.mark.parametrize("theirs,ours,size", [
    ("densenet121", "densenet121", 224),
    ("inceptionv3", "inception_v3", 299),
])
def test_wrapped_zoo_models_are_gluoncvs_function(theirs, ours, size):
    """The wrapper keeps GluonCV's layers and forward pass: same weights, same output."""
    mx.random.seed(2)
    src = gluoncv_model(theirs, pretrained=False)
    src.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(-1, 1, shape=(1, 3, size, size))
    expected = src(x).asnumpy()
    dst = gluonres.get_model(ours)
    dst.initialize()
    dst.infer_shape(x)  # GluonCV's layers defer their input channels
    _copy_in_order(src, dst)
    np.testing.assert_allclose(dst(x).asnumpy(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
