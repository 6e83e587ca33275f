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
                     progress=True, **model_kwargs):
    """Evaluate a registered model with ``weights`` on the test split of ``data``.

    Parameters
    ----------
    model : str
        Registered name; built with the weights' classes unless ``classes`` is given.
    weights : str
        A gluonres ``.params`` file, an exported ``NAME-0000.params`` or a reference
        ``.npz``.
    data : str
        As for :func:`gluonres.data.load`, decoded at the model's input size; its test
        split, or every image of a single-split folder.
    out : str, optional
        Folder for ``confusion.png``.
    mean, std : sequence of 3 float, optional
        Override the normalisation the weights record
        (:func:`gluonres.io.weights_preprocess`).
    batch_size : int, optional
        Default: derived from the model and the input size
        (:func:`gluonres.analysis.evaluation.eval_batch_size`), 256 where that fits.
    progress : bool, default True
        Progress bars on standard error.
    **model_kwargs
        Builder options: ``classes``, ``shortcut`` ...

    Returns
    -------
    dict
        ``model``, ``weights``, ``data``, ``split`` (``'test'`` or ``'all images'``),
        then :func:`gluonres.analysis.evaluation.evaluate`'s figures (``batch_size`` the
        one used) without the predictions, and ``confusion_png`` with ``out``.

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
    net, meta = io.model_for_weights(model, weights, **model_kwargs)
    preprocess = io.weights_preprocess(meta, weights, mean, std)
    dataset = load(data, size=model_info(net).input_size, progress=progress)
    split, which = (dataset.test, "test") if dataset.test is not None else (dataset.train,
                                                                            "all images")
    if "classes" in meta and meta["classes"] != split.classes:
        raise DataError(f"{weights!r} was trained on classes {meta['classes']}, but "
                        f"{data!r} has {split.classes}; evaluate on data with the same "
                        "classes")
    net.hybridize(static_alloc=True, static_shape=True)
    result = evaluation.evaluate(net, split, preprocess, class_names=split.classes,
                                 batch_size=batch_size, ctx=mx.cpu(), progress=progress)
    result.pop("predictions")
    record = {"model": model, "weights": weights, "data": data, "split": which, **result}
    if out:
        os.makedirs(out, exist_ok=True)
        record["confusion_png"] = os.path.join(out, "confusion.png")
        evaluation.plot_confusion(result["confusion"], split.classes, record["confusion_png"],
                                  title=f"{model}: {100 * result['accuracy']:.2f}% correct")
    return record
