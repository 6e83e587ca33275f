"""Test-set evaluation: accuracy, per-class accuracy, confusion matrix."""
import mxnet as mx
import numpy as np
from mxnet.gluon.data import DataLoader
from tqdm import tqdm

from gluonres.analysis.footprint import MAX_INFERENCE_BATCH, check_batch_size, inference_batch


def eval_batch_size(net, dataset, per_image=None):
    """The evaluation batch of ``net`` on ``dataset`` when none is given.

    :func:`~gluonres.analysis.footprint.inference_batch` at the dataset's image size
    (at most 256, smaller where a batch of 256 would not fit the free memory);
    :data:`~gluonres.analysis.footprint.MAX_INFERENCE_BATCH` for a block without a graph
    to read (not hybridizable) or an empty dataset. ``per_image``: the network's
    :func:`~gluonres.analysis.footprint.activation_bytes` at that size, when known.
    """
    if not isinstance(net, mx.gluon.HybridBlock) or len(dataset) == 0:
        return MAX_INFERENCE_BATCH
    if hasattr(dataset, "images"):  # decoded arrays (gluonres.data.ImageArrays)
        h, w, c = dataset.images.shape[1:]
    else:
        h, w, c = dataset[0][0].shape
    return inference_batch(net, (h, w), c, per_image=per_image)


def predict_dataset(net, dataset, preprocess, batch_size=None, ctx=None, progress=True):
    """Logits and labels for every sample of an ``(image, label)`` dataset, in order.

    Parameters
    ----------
    net : mxnet.gluon.Block
    dataset : mxnet.gluon.data.Dataset
        Yields uint8 ``(H, W, 3)`` images and integer labels; a
        :class:`~gluonres.data.ImageArrays` is read in slices, without a loader.
    preprocess : callable
        Maps a uint8 ``(N, H, W, 3)`` batch to network input, e.g.
        :class:`~gluonres.preprocess.Preprocess`.
    batch_size : int, optional
        Default :func:`eval_batch_size`: 256 where that fits the free memory, less for
        large models and inputs.
    ctx : mxnet.Context, optional
    progress : bool, default True
        Show a progress bar on standard error.

    Returns
    -------
    logits : numpy.ndarray, shape (N, classes)
    labels : numpy.ndarray, shape (N,)
    """
    ctx = ctx or mx.cpu()
    check_batch_size(batch_size)
    batch_size = eval_batch_size(net, dataset) if batch_size is None else batch_size
    logits, labels = [], []
    if hasattr(dataset, "batches"):  # decoded arrays (gluonres.data.ImageArrays): slice them
        loader = dataset.batches(batch_size)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep")
    total = -(-len(dataset) // batch_size)
    for images, y in tqdm(loader, desc="evaluate", unit="batch", disable=not progress,
                          leave=False, total=total):
        logits.append(net(preprocess(images.as_in_context(ctx))).asnumpy())
        labels.append(y.asnumpy())
    return np.concatenate(logits), np.concatenate(labels).astype(np.int64)


def confusion_matrix(labels, predictions, classes):
    """``counts[true, predicted]`` as an int array of shape (classes, classes)."""
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def evaluate(net, dataset, preprocess, class_names=None, batch_size=None, ctx=None,
             progress=True):
    """Accuracy, error, per-class accuracy and confusion matrix on a labelled dataset.

    ``batch_size`` defaults to :func:`eval_batch_size`; the rest as for
    :func:`predict_dataset`.

    Returns
    -------
    dict
        ``accuracy`` (0-1), ``error_pct``, ``samples``, ``batch_size`` (the one used),
        ``per_class`` ({class: accuracy}), ``confusion`` (nested list), ``predictions``
        (numpy array, not JSON).
    """
    check_batch_size(batch_size)
    batch_size = eval_batch_size(net, dataset) if batch_size is None else batch_size
    logits, labels = predict_dataset(net, dataset, preprocess, batch_size, ctx, progress)
    pred = logits.argmax(axis=1)
    n_classes = logits.shape[1]
    names = list(class_names) if class_names else [str(i) for i in range(n_classes)]
    counts = confusion_matrix(labels, pred, n_classes)
    per_class = counts.diagonal() / np.maximum(counts.sum(axis=1), 1)
    accuracy = float((pred == labels).mean())
    return {"accuracy": accuracy, "error_pct": 100 * (1 - accuracy), "samples": len(labels),
            "batch_size": batch_size, "per_class": {n: float(a) for n, a in zip(names, per_class)},
            "confusion": counts.tolist(), "predictions": pred}


def plot_confusion(confusion, class_names, path, title=None):
    """Save a confusion-matrix heat map (rows: true class, columns: predicted) as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                color="white" if v > counts.max() / 2 else "black")
    fig.colorbar(im, ax=ax)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
