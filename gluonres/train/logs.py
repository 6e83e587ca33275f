"""A run's logs: ``log.json``, ``log.csv``, ``curve.png`` and the per-epoch lines.
"""
import csv
import io as _io
import json
import os
import sys

from gluonres import io
from gluonres._files import atomic_path, write_text


def _log_paths(out_dir):
    return {"log_json": os.path.join(out_dir, "log.json"),
            "log_csv": os.path.join(out_dir, "log.csv"),
            "curve": os.path.join(out_dir, "curve.png")}


def write_logs(history, out_dir):
    """Write ``log.json``, ``log.csv`` and ``curve.png`` into ``out_dir``, atomically."""
    paths = _log_paths(out_dir)
    write_text(paths["log_json"], json.dumps(history, indent=1) + "\n")
    write_text(paths["log_csv"], epochs_csv(history["epochs"]))
    plot_curves({history["model"]: history}, paths["curve"])
    return paths


def epochs_csv(records):
    """Per-epoch records as CSV text (columns: the union of the records' keys)."""
    columns = list(dict.fromkeys(k for r in records for k in r
                                 if not isinstance(r[k], (dict, list))))
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def plot_curves(histories, path=None, ax=None):
    """Training (dashed) and test (bold) error per epoch, as in the papers' figures, and
    beside it the losses, when the histories have held-out losses and no ``ax`` is given.

    Parameters
    ----------
    histories : dict of str to dict
        Label -> :func:`fit` history.
    path : str, optional
        Save a PNG there (atomically).
    ax : matplotlib.axes.Axes, optional
        Draw the error panel only, into it, instead of a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The error panel.
    """
    import matplotlib
    if ax is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = loss_ax = None
    with_loss = any(r.get(f"{s}_loss") is not None for h in histories.values()
                    for r in h["epochs"] for s in ("val", "test"))
    if ax is None and with_loss:
        fig, (ax, loss_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    elif ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [r["epoch"] for r in h["epochs"]]
        for panel, key in ((ax, "error_pct"), (loss_ax, "loss")):
            if panel is None:
                continue
            panel.plot(epochs, [r[f"train_{key}"] for r in h["epochs"]], "--", color=color,
                       lw=1, label=f"{label} train")
            for split, style in (("test", "-"), ("val", ":")):
                values = [r.get(f"{split}_{key}") for r in h["epochs"]]
                if values and values[0] is not None:
                    panel.plot(epochs, values, style, color=color, lw=2,
                               label=f"{label} {split}")
    for panel, ylabel in ((ax, "error (%)"), (loss_ax, "loss")):
        if panel is not None:
            panel.set_xlabel("epoch")
            panel.set_ylabel(ylabel)
            panel.grid(alpha=0.3)
            panel.legend(fontsize=8)
    if fig is not None:
        fig.tight_layout()
        if path:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return ax


def _epoch_line(r, n_epochs):
    parts = [f"epoch {r['epoch']}/{n_epochs}", f"loss {r['train_loss']:.3f}",
             f"train err {r['train_error_pct']:.2f}%"]
    parts += [f"{s} err {r[f'{s}_error_pct']:.2f}%"
              + (f" (loss {r[f'{s}_loss']:.3f})" if r.get(f"{s}_loss") is not None else "")
              for s in ("val", "test") if f"{s}_error_pct" in r]
    parts += [f"lr {r['lr']:g}", f"{r['seconds']:.0f}s", f"{r['img_s']:.0f} img/s"]
    return "  ".join(parts)


def _printer(enabled):
    def say(message):
        if enabled:
            print(message, file=sys.stderr, flush=True)
    return say
