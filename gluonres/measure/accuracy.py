"""Accuracy, per-class accuracy and confusion matrix of a weights file on a dataset
(``gluonres evaluate``)."""
import os

import mxnet as mx

from gluonres import io
from gluonres._files import check_writable
from gluonres.analysis import evaluation
from gluonres.analysis.footprint import check_batch_size
from gluonres.data import load
from gluonres.errors import DataError, GluonresError
from gluonres.models import model_info


def evaluate_weights(model, weights, data, out=None, mean=None, std=None, batch_size=None,
                     progress=True, size=None, val_split=None, seed=0, **model_kwargs):
    """Evaluate a registered model with ``weights`` on the test split of ``data``.

    Parameters
    ----------
    model : str
        Registered name; built with the weights' classes, input size and channels
        (:func:`gluonres.io.model_for_weights`) unless given.
    weights : str
        A gluonres ``.params`` file, an exported ``NAME-0000.params`` or a reference
        ``.npz``.
    data : str
        As for :func:`gluonres.data.load`, decoded as the weights were trained: at their
        input size, resized as their metadata records (:func:`gluonres.io.weights_resize`;
        else the shorter side to the input size), in their channels. Its test split, every
        image of a single-split folder, or with ``val_split`` the held-out split.
    out : str, optional
        Folder for ``confusion.png``.
    mean, std : sequence of float, optional
        Override the normalisation the weights record, one value per input channel
        (:func:`gluonres.io.weights_preprocess`).
    batch_size : int, optional
        Default: derived from the model and the input size
        (:func:`gluonres.analysis.evaluation.eval_batch_size`), 256 where that fits.
    progress : bool, default True
        Progress bars on standard error.
    size : int, optional
        Input size; default the one the weights record, else the model's.
    val_split : int or float, optional
        Score the validation split that ``gluonres train --val-split`` held out of
        ``data``'s training images with the same ``seed``: exactly the images the run
        did not train on.
    seed : int, default 0
        The run's seed (``train --seed``), which drew that split.
    **model_kwargs
        Builder options: ``classes``, ``in_channels``, ``shortcut`` ...

    Returns
    -------
    dict
        ``model``, ``weights``, ``data``, ``split`` (``'test'``, ``'all images'`` or
        ``'validation'``, then also ``val_split`` and ``seed``), ``input_size``,
        ``shorter_side`` (of the resize), then
        :func:`gluonres.analysis.evaluation.evaluate`'s figures (``batch_size`` the one
        used) without the predictions, ``confusion_png`` with ``out``, and ``note`` when
        the images scored include the weights' own training images.

    Raises
    ------
    GluonresError
        For a ``batch_size`` below 1 or an ``out`` that cannot be written (both checked
        before any work), weights that do not fit the model or record no normalisation,
        or data whose classes differ from those the weights were trained on.
    """
    check_batch_size(batch_size, "--batch-size", example=256)
    if out:
        if os.path.exists(out) and not os.path.isdir(out):
            raise GluonresError(f"cannot write to --out {out!r} (it is a file); pass a folder "
                                "for confusion.png")
        check_writable(out)
    net, meta = io.model_for_weights(model, weights, size=size, **model_kwargs)
    info = model_info(net)
    preprocess = io.weights_preprocess(meta, weights, mean, std, channels=info.in_channels)
    shorter_side = io.weights_resize(meta, info.input_size, weights) or info.input_size
    dataset = load(data, size=info.input_size, shorter_side=shorter_side,
                   channels=info.in_channels, val_size=val_split or 0, seed=seed,
                   progress=progress)
    if val_split:
        split, which = dataset.val, "validation"
    elif dataset.test is not None:
        split, which = dataset.test, "test"
    else:
        split, which = dataset.train, "all images"
    if "classes" in meta and meta["classes"] != split.classes:
        raise DataError(f"{weights!r} was trained on classes {meta['classes']}, but "
                        f"{data!r} has {split.classes}; evaluate on data with the same "
                        "classes")
    net.hybridize(static_alloc=True, static_shape=True)
    result = evaluation.evaluate(net, split, preprocess, class_names=split.classes,
                                 batch_size=batch_size, ctx=mx.cpu(), progress=progress)
    result.pop("predictions")
    record = {"model": model, "weights": weights, "data": data, "split": which,
              **({"val_split": val_split, "seed": seed} if val_split else {}),
              "input_size": info.input_size, "shorter_side": shorter_side, **result}
    if which == "all images" and meta.get("data") == data:
        record["note"] = ("the weights were trained on this folder, so these images include "
                          "their training images; pass the run's --val-split and --seed to "
                          "score only the images it held out")
    if out:
        os.makedirs(out, exist_ok=True)
        record["confusion_png"] = os.path.join(out, "confusion.png")
        evaluation.plot_confusion(result["confusion"], split.classes, record["confusion_png"],
                                  title=f"{model}: {100 * result['accuracy']:.2f}% correct")
    return record
