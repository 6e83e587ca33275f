"""The one He initialisation every gluonres network starts from."""
import mxnet as mx


def he_initialize(net, seed=0, ctx=None):
    """He initialisation (fan-in, ReLU gain) of every parameter not yet initialised.

    He et al. (2015, "Delving deep into rectifiers") scale by the fan-in, as the ResNet
    papers' training does; mxnet's ``MSRAPrelu`` default averages fan-in and fan-out.
    Layers that set their own initialiser (BatchNorm's ones and zeros, zero biases) keep
    it; already initialised parameters (e.g. loaded for fine-tuning) are left alone;
    parameters of layers that infer their shape are initialised at the first forward pass.

    Parameters
    ----------
    net : mxnet.gluon.Block
    seed : int, default 0
        Seeds mxnet's generator, so the same seed gives the same weights.
    ctx : mxnet.Context, optional
        Default ``mx.cpu()``.
    """
    mx.random.seed(seed)
    he = mx.init.MSRAPrelu(factor_type="in", slope=0.0)
    for p in net.collect_params().values():
        if p._data is None and not p._deferred_init:
            p.initialize(ctx=ctx or mx.cpu(), default_init=he)
