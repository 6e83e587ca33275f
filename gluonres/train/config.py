"""Training settings: :class:`TrainConfig` (the 2015 paper's CIFAR recipe by default),
:func:`recipe` (a model's paper settings) and :class:`Schedule` (step or cosine decay,
error-driven or fixed warm-up).
"""
import dataclasses
import math
import numbers
from collections import deque

import mxnet as mx
import numpy as np

from gluonres.errors import GluonresError, UnknownModelError
from gluonres.train.distributed import KVSTORES


#: Batches whose mean error decides when the error-driven warm-up ends.
WARMUP_WINDOW = 10


#: Largest ``seed``: MXNet's generator takes a C int.
MAX_SEED = 2 ** 31 - 1


#: Settings that `gluonres train` takes as options of the same name.
_CLI_SETTINGS = ("batch-size", "lr", "momentum", "wd", "epochs", "iterations", "schedule",
                 "warmup", "normalize", "pad", "seed", "kvstore", "optimizer", "label-smoothing")
_FLOAT_SETTINGS = ("lr", "momentum", "wd", "factor", "warmup_lr", "warmup_error",
                   "label_smoothing", "warmup_fraction")

#: Learning-rate schedules and warm-ups (see :class:`TrainConfig`).
SCHEDULES = ("step", "cosine", "linear")
WARMUPS = ("none", "error", "fixed", "linear")

#: Optimizers: ``gluon.Trainer`` names. ``nag`` is SGD with Nesterov momentum.
OPTIMIZERS = ("sgd", "nag", "adam")


@dataclasses.dataclass
class TrainConfig:
    """Hyperparameters of one training run; JSON-able through :meth:`to_dict`.

    The defaults are the 2015 paper's CIFAR recipe (Sec. 4.2). Use :func:`recipe` for a
    model's paper settings (its warm-up).

    Parameters
    ----------
    batch_size : int, default 128
    lr : float, default 0.1
    momentum : float, default 0.9
    wd : float, default 1e-4
        Weight decay, on every parameter.
    iterations : int, default 64000
        Total updates; ignored when ``epochs`` is set.
    epochs : int, optional
        Train for whole epochs instead, compressing the schedule proportionally.
    schedule : {'step', 'cosine', 'linear'}, default 'step'
        ``'step'`` multiplies the rate by ``factor`` at each milestone; ``'cosine'``
        anneals it to zero over the run, ``'linear'`` decays it linearly to zero.
    milestones : tuple of float, default (0.5, 0.75)
        Fractions of the run: the paper's 32k and 48k of 64k iterations.
    factor : float, default 0.1
    warmup : {'none', 'error', 'fixed'}, default 'none'
        ``'error'``: ``warmup_lr`` until the mean training error of the last
        :data:`WARMUP_WINDOW` batches is below ``warmup_error`` (2015, ResNet-110/1202);
        ``'fixed'``: ``warmup_lr`` for ``warmup_iterations`` updates (2016); ``'linear'``:
        from ``warmup_lr`` up to ``lr`` over ``warmup_iterations`` updates (Goyal et al.
        2017). Warm-up lengths are not compressed.
    warmup_lr : float, default 0.01
    warmup_error : float, default 0.8
    warmup_iterations : int, default 400
    warmup_fraction : float, optional
        The timed warm-up's length as a fraction of the run instead (compressed with it).
    pad : int, default 4
        Padding before the random crop; 0 turns cropping off.
    flip : bool, default True
        Random horizontal flips.
    normalize : {'pixel', 'channel'}, default 'pixel'
        Per-pixel mean subtraction (the paper) or per-channel mean/std.
    seed : int, default 0
        Initial weights, data order and augmentation.
    kvstore : {'local', 'device', 'dist_sync', 'dist_async'}, default 'local'
        ``dist_*``: one worker of a parameter-server run (``gluonres launch``); each
        worker trains on its slice of every batch of ``batch_size``.
    optimizer : {'sgd', 'nag', 'adam'}, default 'sgd'
        ``'nag'``: SGD with Nesterov momentum; ``'adam'`` ignores ``momentum``.
    label_smoothing : float, default 0
        Weight of the uniform distribution mixed into the one-hot targets (Szegedy et al.
        2016); 0 is plain cross-entropy.
    """

    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    wd: float = 1e-4
    iterations: int = 64000
    epochs: int = None
    schedule: str = "step"
    milestones: tuple = (0.5, 0.75)
    factor: float = 0.1
    warmup: str = "none"
    warmup_lr: float = 0.01
    warmup_error: float = 0.8
    warmup_iterations: int = 400
    warmup_fraction: float = None
    pad: int = 4
    flip: bool = True
    normalize: str = "pixel"
    seed: int = 0
    kvstore: str = "local"
    optimizer: str = "sgd"
    label_smoothing: float = 0.0

    def __post_init__(self):
        self.milestones = tuple(self.milestones)
        m = self.milestones
        for name in _FLOAT_SETTINGS:  # inf passes every range check below; nan fails them
            value = getattr(self, name)
            if isinstance(value, numbers.Real) and not math.isfinite(value):
                self._refuse(name, "a finite number")
        checks = [  # (valid, setting, allowed values)
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.lr > 0, "lr", "positive"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.wd >= 0, "wd", "0 or more"),
            (0 < self.factor <= 1, "factor", "in (0, 1]"),
            (self.epochs is None or self.epochs >= 1, "epochs", "at least 1"),
            (self.epochs is not None or self.iterations >= 1, "iterations", "at least 1"),
            (self.schedule in SCHEDULES, "schedule", "'step', 'cosine' or 'linear'"),
            (all(0 < x < 1 for x in m) and list(m) == sorted(set(m)), "milestones",
             "increasing fractions of the run in (0, 1)"),
            (self.warmup in WARMUPS, "warmup", "'none', 'error', 'fixed' or 'linear'"),
            (self.warmup == "none" or 0 < self.warmup_lr <= self.lr, "warmup_lr",
             f"positive and at most lr ({self.lr:g})"),
            (0 < self.warmup_error <= 1, "warmup_error", "in (0, 1]"),
            (self.warmup_iterations >= 1, "warmup_iterations", "at least 1"),
            (self.warmup_fraction is None or 0 < self.warmup_fraction < 1, "warmup_fraction",
             "a fraction of the run in (0, 1)"),
            (self.normalize in ("pixel", "channel"), "normalize", "'pixel' or 'channel'"),
            (self.pad >= 0, "pad", "0 or more"),
            (0 <= self.seed <= MAX_SEED, "seed", f"in [0, {MAX_SEED}]"),
            (self.kvstore in KVSTORES, "kvstore", ", ".join(KVSTORES)),
            (self.optimizer in OPTIMIZERS, "optimizer", ", ".join(OPTIMIZERS)),
            (0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                self._refuse(name, allowed)

    def _refuse(self, name, allowed):
        flag = name.replace("_", "-")
        where = f" (--{flag})" if flag in _CLI_SETTINGS else ""
        raise GluonresError(f"bad training setting {name}={getattr(self, name)!r}: "
                            f"it must be {allowed}; pass a value in range{where}")

    def check_image_size(self, height, width):
        """Refuse settings that do not fit images of ``height`` x ``width`` pixels: a crop
        padding of a whole side or more (the crop could hold no pixel of the image).

        Raises
        ------
        GluonresError
            Naming the setting, the image size and the range.
        """
        if self.pad >= min(height, width):
            self._refuse("pad", f"less than the side of the {height}x{width} training images "
                         f"(at most {min(height, width) - 1}; the paper pads 32x32 by 4)")

    def describe(self):
        """One line naming the run length, schedule and warm-up."""
        length = f"{self.epochs} epochs" if self.epochs else f"{self.iterations} iterations"
        sched = (f"step x{self.factor} at {', '.join(f'{m:g}' for m in self.milestones)}"
                 if self.schedule == "step" else self.schedule)
        smoothing = (f", label smoothing {self.label_smoothing:g}" if self.label_smoothing
                     else "")
        return (f"{length}, batch {self.batch_size}, {self.optimizer} lr {self.lr:g} {sched}, "
                f"warm-up {self.warmup}, momentum {self.momentum:g}, wd {self.wd:g}{smoothing}")

    def to_dict(self):
        """JSON-ready dict (milestones as a list)."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise GluonresError(f"unknown training settings {unknown}; known: {sorted(names)}")
        return cls(**d)

    def total_iterations(self, iterations_per_epoch):
        """Updates in the whole run, given the updates in one epoch."""
        return self.epochs * iterations_per_epoch if self.epochs else self.iterations


#: Named recipes: :class:`TrainConfig` settings over the defaults. ``fast`` reaches the
#: paper recipe's accuracy in fewer epochs (docs/training.md, results/ for the measurement):
#: Nesterov momentum, a linear warm-up over the first 10% and a linear decay to
#: zero (the schedule "budgeted training", Li et al. 2020, found best for short runs),
#: weight decay 5e-4 and label smoothing 0.1.
RECIPES = {
    "paper": {},
    "fast": dict(epochs=20, optimizer="nag", lr=0.1, wd=5e-4, schedule="linear",
                 warmup="linear", warmup_lr=0.01, warmup_fraction=0.1, label_smoothing=0.1),
}


#: The paper's 64,000 iterations are 164 epochs of CIFAR-10's 50,000 training images; on a
#: dataset where they would mean more epochs than this, and no length is given, a run
#: trains :data:`OTHER_DATA_EPOCHS` epochs instead (a 160-image folder: 64,000 epochs).
PAPER_LENGTH_MAX_EPOCHS = 200
#: Epochs of a run on such other data when neither ``--epochs`` nor ``--iterations`` is set.
OTHER_DATA_EPOCHS = 30


def default_length(config, train_images):
    """``config`` with a run length that suits ``train_images`` images, and what to say.

    Parameters
    ----------
    config : TrainConfig
        Its ``epochs`` and ``iterations`` as the recipe left them (nothing given by the
        user).
    train_images : int

    Returns
    -------
    config : TrainConfig
        Unchanged, or with ``epochs`` = :data:`OTHER_DATA_EPOCHS` when the recipe's
        iterations would be more than :data:`PAPER_LENGTH_MAX_EPOCHS` epochs.
    message : str or None
        Says the change and how to choose, when there is one.
    """
    per_epoch = max(1, train_images // config.batch_size)
    if config.epochs is not None or config.iterations / per_epoch <= PAPER_LENGTH_MAX_EPOCHS:
        return config, None
    paper = math.ceil(config.iterations / per_epoch)
    return (dataclasses.replace(config, epochs=OTHER_DATA_EPOCHS),
            f"no --epochs or --iterations given: training {OTHER_DATA_EPOCHS} epochs (the "
            f"recipe's {config.iterations} iterations, made for CIFAR-10's 50,000 images, "
            f"would be {paper} epochs of these {train_images}); pass --epochs N to choose")


def recipe(model_name, name="paper", **overrides):
    """The training settings of a named recipe for a registered model, with ``overrides``.

    ``'paper'``: the 2015 paper's CIFAR recipe, with the warm-up the model is registered
    with (:attr:`~gluonres.models.ModelSpec.warmup`): ResNet-110 and ResNet-1202 (2015)
    warm up until the training error is below 80%; the 2016 pre-activation CIFAR networks
    warm up for 400 iterations; the others, and models the registry does not know, start
    at 0.1. Other names: :data:`RECIPES`.

    Raises
    ------
    GluonresError
        For a recipe name not in :data:`RECIPES`.
    """
    if name not in RECIPES:
        raise GluonresError(f"unknown recipe {name!r}; pass one of: {', '.join(RECIPES)}")
    settings = dict(RECIPES[name])
    if name == "paper":
        # imported here: `gluonres predict` builds this module's CLI options and must run
        # an export without model code (tests/deploy/test_deploy.py)
        from gluonres.models import model_spec

        try:
            settings["warmup"] = model_spec(model_name).warmup  # registered with the model
        except UnknownModelError:
            settings["warmup"] = "none"
    return TrainConfig(**{**settings, **overrides})


class Schedule:
    """Learning rate per update: an ``mx.lr_scheduler`` plus the error-driven warm-up.

    Call it with the number of updates done so far, in non-decreasing order (the MXNet
    schedulers keep state); report each batch's training error with :meth:`observe`.

    Parameters
    ----------
    config : TrainConfig
    total : int
        Updates in the run.
    """

    def __init__(self, config, total):
        self.config = config
        self.total = total
        self.warmup_iterations = (max(1, round(config.warmup_fraction * total))
                                  if config.warmup_fraction else config.warmup_iterations)
        if config.warmup in ("fixed", "linear") and total <= self.warmup_iterations:
            raise GluonresError(f"a run of {total} iterations is shorter than its "
                                f"{self.warmup_iterations}-iteration warm-up; train longer "
                                "or choose another warm-up")
        self.milestones = []
        if config.schedule == "step":
            steps = [round(m * total) for m in config.milestones]
            if steps[0] < 1 or len(set(steps)) < len(steps):
                raise GluonresError(f"a run of {total} iterations is too short for the step "
                                    f"schedule's {len(steps)} milestones; train longer or use "
                                    "the cosine schedule")
            self.milestones = steps
        self._base = self.mx_scheduler()
        self.warmup_done = config.warmup != "error"
        self.warmup_end = None
        self._errors = deque(maxlen=WARMUP_WINDOW)

    def mx_scheduler(self, scale=1):
        """The ``mx.lr_scheduler`` of this schedule (without the error-driven warm-up).

        ``scale`` multiplies every length: a ``dist_async`` server counts each worker's
        update, ``scale`` per iteration.
        """
        config = self.config
        # mx.lr_scheduler counts updates from 1 and warms up while num_update < warmup_steps
        timed = config.warmup in ("fixed", "linear")
        common = dict(base_lr=config.lr,
                      warmup_mode="linear" if config.warmup == "linear" else "constant",
                      warmup_steps=self.warmup_iterations * scale + 1 if timed else 0,
                      warmup_begin_lr=config.warmup_lr if timed else 0.0)
        if config.schedule == "step":
            return mx.lr_scheduler.MultiFactorScheduler([m * scale for m in self.milestones],
                                                        config.factor, **common)
        if config.schedule == "linear":
            return mx.lr_scheduler.PolyScheduler(self.total * scale, pwr=1, final_lr=0.0,
                                                 **common)
        return mx.lr_scheduler.CosineScheduler(self.total * scale, final_lr=0.0, **common)

    def __call__(self, iteration):
        """The learning rate of update ``iteration + 1``."""
        if not self.warmup_done:
            return self.config.warmup_lr
        return self._base(iteration + 1)

    def observe(self, iteration, error):
        """Record the training error (0-1) of update ``iteration + 1``."""
        if self.warmup_done:
            return
        self._errors.append(error)
        if len(self._errors) == WARMUP_WINDOW and np.mean(self._errors) < self.config.warmup_error:
            self.warmup_done, self.warmup_end = True, iteration + 1

    def state_dict(self):
        """JSON-ready warm-up state (the MXNet scheduler is a function of the update)."""
        return {"warmup_done": self.warmup_done, "warmup_end": self.warmup_end,
                "errors": list(self._errors)}

    def load_state_dict(self, state):
        """Inverse of :meth:`state_dict`."""
        self.warmup_done, self.warmup_end = state["warmup_done"], state["warmup_end"]
        self._errors.extend(state["errors"])
