"""Fine-tuning: a network started from trained weights, and parts of it frozen.

:func:`init_weights` builds a registered model from a weights file, the shipped weights
(``'pretrained'``) or a GluonCV model (``'gluoncv:NAME'``), with a fresh classifier when
the classes differ; :func:`freeze` stops training the stem and the first stages.
:func:`~gluonres.train.fit` then trains what is left, keeping the normalisation the
weights were trained with (its ``preprocess=``).
"""
from typing import NamedTuple

from mxnet.gluon import nn

from gluonres import importers, io
from gluonres.errors import GluonresError
from gluonres.models import model_info


class Init(NamedTuple):
    """What :func:`init_weights` made.

    Attributes
    ----------
    net : mxnet.gluon.HybridBlock
        Every parameter set from the weights, except a re-initialised classifier (left
        uninitialised: :func:`~gluonres.train.fit` initialises it).
    preprocess : gluonres.data.preprocess.Preprocess or None
        The normalisation the weights were trained with (``None``: they record none).
    source : str
        Where the weights came from.
    note : str or None
        What changed, e.g. the classifier re-initialised for another class count.
    """

    net: object
    preprocess: object
    source: str
    note: object


def init_weights(model, source, classes=None, size=None, **model_kwargs):
    """Build ``model`` from trained weights, for fine-tuning.

    Parameters
    ----------
    model : str
        Registered name.
    source : str
        A weights file (gluonres ``.params``, a training checkpoint, an exported
        ``NAME-0000.params`` or a reference ``.npz``), ``'pretrained'`` (the weights shipped
        for ``model``), ``'gluoncv:NAME'`` (a GluonCV model converted by
        :func:`gluonres.importers.import_gluoncv`; downloads unless cached) or
        ``'gluoncv:NAME=FILE'`` (the same from a local GluonCV ``.params`` file).
    classes : int, optional
        Outputs wanted. When the weights have another count, the classifier is replaced
        by a fresh one (``net.reset_classifier``) and :attr:`Init.note` says so.
    size : int, optional
        Input size to train at (:func:`gluonres.io.sized_model`); default the one the
        weights record, else the model's.
    **model_kwargs
        Builder options (``shortcut`` ...), which must fit the weights.

    Returns
    -------
    Init

    Raises
    ------
    GluonresError
        If the weights do not fit ``model`` (naming the first parameter), are missing or
        corrupt, or ``source`` names no known GluonCV model.
    """
    if importers.looks_like_spec(source):
        if model_kwargs:
            raise GluonresError(f"{source} converts to fixed builder options; drop "
                                f"{', '.join(sorted(model_kwargs))} (e.g. --in-channels)")
        spec = importers.parse_spec(source)
        net, meta = importers.import_gluoncv(spec.name, spec.path)
        if meta["model"] != model:
            raise GluonresError(f"{source} converts to {meta['model']}, not {model}; train "
                                f"{meta['model']} or pick the GluonCV model of {model}")
        net = io.run_at(net, size)
    else:
        net, meta = io.model_for_weights(model, source, size=size, **model_kwargs)
    return retarget(Init(net, io.preprocess_of(meta), source, None), classes)


def retarget(made, classes):
    """``made`` with a fresh classifier of ``classes`` outputs where its weights have
    another count (:attr:`Init.note` then says so); unchanged for ``None`` or the same
    count.

    Parameters
    ----------
    made : Init
    classes : int or None

    Returns
    -------
    Init
    """
    had = model_info(made.net).classes
    if classes is None or classes == had:
        return made
    made.net.reset_classifier(classes)
    return made._replace(note=f"{made.source} has a {had}-class classifier; it is "
                              f"re-initialised for {classes} classes, every other layer "
                              "keeps its weights")


def freeze(net, upto):
    """Stop training ``net`` up to and including the part ``upto``.

    The frozen parameters get ``grad_req='null'`` and their BatchNorm layers use and keep
    their running statistics (inference mode), so training leaves them bit-identical.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Built, before training (before its first hybridized forward pass).
    upto : str
        ``'stem'``, ``'stage1'`` ... ``'stageN'`` for a ResNet (the stem and the stages
        up to N), or ``'features'``: everything but the classifier (any model).

    Returns
    -------
    list of str
        Names of the frozen parameters.

    Raises
    ------
    GluonresError
        For a part the network does not have, naming those it has.
    """
    if upto == "features":  # every parameter but the classifier's, BatchNorm included
        keep = set(net.classifier.collect_params())
        blocks = [net]
    else:
        keep = set()
        blocks = [b for _, b in freeze_parts(net)[:_part_index(net, upto) + 1]]
    frozen = []
    for block in blocks:
        for name, param in block.collect_params().items():
            if name not in keep:
                param.grad_req = "null"
                frozen.append(name)
        block.apply(_freeze_batchnorm)
    return frozen


def freeze_parts(net):
    """The parts of ``net`` that :func:`freeze` can stop at, in order.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock

    Returns
    -------
    list of (str, mxnet.gluon.Block)
        The stem and stages of a ResNet; empty for other families, which freeze
        ``'features'`` only.
    """
    if hasattr(net, "stem") and hasattr(net, "stages"):
        return [("stem", net.stem)] + [(f"stage{i}", s) for i, s in enumerate(net.stages, 1)]
    return []


def _part_index(net, upto):
    names = [n for n, _ in freeze_parts(net)]
    if upto not in names:
        raise GluonresError(f"{model_info(net).name} has no part {upto!r} to freeze; use "
                            + ", ".join(names + ["features"]))
    return names.index(upto)


def _freeze_batchnorm(block):
    if isinstance(block, nn.BatchNorm):
        block._kwargs["use_global_stats"] = True
