"""Formatting shared by the experiments' tables and notebook text.
"""
import math

from gluonres.experiments.records import other_runs


# ---------------------------------------------------------------------------- records
def summarize(run, fields=("final_train_error", "final_train_error_eval", "final_test_error",
                           "params", "train_img_s", "wall_s")):
    """A run's headline numbers and curves, for embedding in an experiment record."""
    out = {k: run[k] for k in fields if k in run}
    out.update(label=run["label"], model=run["model"], options=run["options"],
               key=run.get("key"), iterations=run["iterations"],
               train_images=run["data"]["train_images"],
               curve={k: [r.get(k) for r in run["epochs"]]
                      for k in ("epoch", "train_error_pct", "test_error_pct", "lr")})
    return out


def history_of(summary):
    """A :func:`summarize` curve as the history :func:`~gluonres.train.plot_curves`
    draws."""
    c = summary["curve"]
    return {"epochs": [{"epoch": e, "train_error_pct": tr, "test_error_pct": te}
                       for e, tr, te in zip(c["epoch"], c["train_error_pct"],
                                            c["test_error_pct"])]}


def data_line(record):
    """One line saying what a record was measured on (for figure titles)."""
    d = record.get("data") or {}

    def count(key):
        n = d.get(key)
        return f"{n:,}" if isinstance(n, int) else "?"

    line = (f"{record['scale']} scale: {count('train_images')} training images"
            f"{other_runs(d)} of {d.get('name', '?')}, curves on "
            f"{count('curve_test_images')} test images")
    return line + (" (JPEG CIFAR-10: see the caveat)" if d.get("note") else "")


def fmt_pct(value, digits=2):
    """``'12.34'`` or an en dash for a missing value."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"
