"""Training: the papers' CIFAR recipe, resumable checkpoints, per-epoch logs and curves.

``config`` holds the settings and the learning-rate schedule; ``step`` the static graph
that runs one update; ``state`` and ``checkpoints`` what a resumed run needs; ``loop``
:func:`fit`; ``run`` :func:`train_model` (``gluonres train``: a model and data by name, new or
resumed); ``logs`` the run's logs and curves; ``distributed`` the workers of a
parameter-server run; ``speed`` the fused graphs for training and inference.

This package imports neither :mod:`gluonres.deploy` nor the experiments: a run's export
is written by its caller (:class:`gluonres.deploy.ExportCallback`). Names are imported on
first use.
"""
from gluonres._lazy import lazy_exports


_EXPORTS = {
    "config": ("WARMUP_WINDOW", "RECIPES", "Schedule", "TrainConfig", "recipe"),
    "logs": ("epochs_csv", "plot_curves", "write_logs"),
    "distributed": ("weights_digest",),
    "finetune": ("Init", "freeze", "freeze_parts", "init_weights", "retarget"),
    "loop": ("Callback", "TrainState", "error_pct", "fit"),
    "run": ("TrainRun", "default_out_dir", "resume_settings", "train_model"),
    "state": ("CHECKPOINT", "CHECKPOINT_FORMAT", "check_checkpoint_model", "check_new_run",
              "checkpoint_meta", "load_optimizer_states", "optimizer_states"),
    "step": ("input_stream", "prepare", "to_input", "train_step"),
}
__getattr__ = lazy_exports(__name__, {n: m for m, names in _EXPORTS.items() for n in names})
__all__ = sorted(n for names in _EXPORTS.values() for n in names)
