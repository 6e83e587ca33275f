"""Export a network as a static graph (``NAME-symbol.json`` + ``NAME-0000.params``)."""
import os
import shutil
import tempfile

import mxnet as mx
from mxnet.gluon.parameter import DeferredInitializationError

from .analysis import default_input_shape
from .errors import GluonresError


def export(net, out_dir, name, input_shape=None):
    """Hybridize, trace and export ``net`` into ``out_dir``, atomically per file.

    The caller need not hybridize or run a forward pass first: both happen here.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        An initialised network.
    out_dir : str
        Created if missing.
    name : str
        File prefix: ``NAME-symbol.json`` and ``NAME-0000.params``.
    input_shape : tuple, optional
        Trace shape; defaults to batch 1 at the model's native size.

    Returns
    -------
    dict
        ``symbol`` and ``params`` paths.
    """
    input_shape = tuple(input_shape or default_input_shape(net))
    try:
        next(iter(net.collect_params().values())).data()
    except DeferredInitializationError:
        pass  # initialised; the forward pass below infers the deferred shapes
    except RuntimeError:
        raise GluonresError("the network has no weights yet; call net.initialize() or load "
                            "weights before exporting") from None
    if not net._active:  # export needs the cached graph of a hybridized forward pass
        net.hybridize()
    net(mx.nd.zeros(input_shape))
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export.", dir=out_dir)
    try:
        net.export(os.path.join(staging, name), epoch=0)
        paths = {}
        for key, fname in (("symbol", f"{name}-symbol.json"), ("params", f"{name}-0000.params")):
            paths[key] = os.path.join(out_dir, fname)
            os.replace(os.path.join(staging, fname), paths[key])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths
