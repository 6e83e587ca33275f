"""Training: the papers' CIFAR recipe, resumable checkpoints, per-epoch logs and curves.

The recipe (2015 paper, Sec. 4.2): batch 128, SGD with momentum 0.9 and weight decay
1e-4, He initialisation, learning rate 0.1 divided by 10 at 32k and 48k iterations,
stop at 64k; 4-pixel padding, random 32x32 crops and horizontal flips; per-pixel mean
subtraction. ResNet-110/1202 warm up at 0.01 until the training error is below 80%
(about 400 iterations) and then go back to 0.1; the 2016 paper's CIFAR runs warm up for
400 iterations. ``TrainConfig(epochs=N)`` compresses the whole schedule proportionally.

:func:`fit` trains any network on a :class:`~gluonres.data.Data`; with ``out_dir`` it
writes, every epoch and atomically, ``checkpoint.params`` (weights, momentum, step,
schedule and data-order state: everything a resumed run needs; the previous one is kept
and both are verified by SHA-256, see :mod:`gluonres.checkpoints`), ``log.csv``,
``log.json`` and ``curve.png``; at the end ``weights.params`` and ``export/`` (symbol +
params). With ``kvstore='dist_sync'`` it is one of several workers on MXNet's parameter
server (:mod:`gluonres.distributed`).
"""
import csv
import dataclasses
import hashlib
import io as _io
import json
import math
import os
import sys
import time
from collections import deque

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from . import checkpoints, deploy, evaluation, io
from ._files import atomic_path, check_writable, write_text
from .data import epoch_batches
from .distributed import KVSTORES, Workers
from .errors import GluonresError, TrainingDivergedError, WeightsMismatchError
from .machine import machine, utc_now
from .models.init import he_initialize
from .preprocess import Preprocess

#: Batches whose mean error decides when the error-driven warm-up ends.
WARMUP_WINDOW = 10
CHECKPOINT = checkpoints.LATEST
CHECKPOINT_FORMAT = checkpoints.FORMAT
_RUNTIME_FIELDS = ("kvstore",)  # may change when a run is resumed
#: Settings that `gluonres train` takes as options of the same name.
_CLI_SETTINGS = ("batch-size", "lr", "momentum", "wd", "epochs", "iterations", "schedule",
                 "warmup", "normalize", "pad", "kvstore")
_CARRIED = ("epochs", "started", "train_s", "wall_s", "info", "machine", "resumed")


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
    schedule : {'step', 'cosine'}, default 'step'
        ``'step'`` multiplies the rate by ``factor`` at each milestone; ``'cosine'``
        anneals it to zero over the run.
    milestones : tuple of float, default (0.5, 0.75)
        Fractions of the run: the paper's 32k and 48k of 64k iterations.
    factor : float, default 0.1
    warmup : {'none', 'error', 'fixed'}, default 'none'
        ``'error'``: ``warmup_lr`` until the mean training error of the last
        :data:`WARMUP_WINDOW` batches is below ``warmup_error`` (2015, ResNet-110/1202);
        ``'fixed'``: ``warmup_lr`` for ``warmup_iterations`` updates (2016). Warm-up
        lengths are not compressed.
    warmup_lr : float, default 0.01
    warmup_error : float, default 0.8
    warmup_iterations : int, default 400
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
    pad: int = 4
    flip: bool = True
    normalize: str = "pixel"
    seed: int = 0
    kvstore: str = "local"

    def __post_init__(self):
        self.milestones = tuple(self.milestones)
        m = self.milestones
        checks = [  # (valid, setting, allowed values)
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.lr > 0, "lr", "positive"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.wd >= 0, "wd", "0 or more"),
            (0 < self.factor <= 1, "factor", "in (0, 1]"),
            (self.epochs is None or self.epochs >= 1, "epochs", "at least 1"),
            (self.epochs is not None or self.iterations >= 1, "iterations", "at least 1"),
            (self.schedule in ("step", "cosine"), "schedule", "'step' or 'cosine'"),
            (all(0 < x < 1 for x in m) and list(m) == sorted(set(m)), "milestones",
             "increasing fractions of the run in (0, 1)"),
            (self.warmup in ("none", "error", "fixed"), "warmup", "'none', 'error' or 'fixed'"),
            (self.warmup == "none" or 0 < self.warmup_lr <= self.lr, "warmup_lr",
             f"positive and at most lr ({self.lr:g})"),
            (0 < self.warmup_error <= 1, "warmup_error", "in (0, 1]"),
            (self.warmup_iterations >= 1, "warmup_iterations", "at least 1"),
            (self.normalize in ("pixel", "channel"), "normalize", "'pixel' or 'channel'"),
            (self.pad >= 0, "pad", "0 or more"),
            (self.kvstore in KVSTORES, "kvstore", ", ".join(KVSTORES)),
        ]
        for ok, name, allowed in checks:
            if not ok:
                flag = name.replace("_", "-")
                where = f" (--{flag})" if flag in _CLI_SETTINGS else ""
                raise GluonresError(f"bad training setting {name}={getattr(self, name)!r}: "
                                    f"it must be {allowed}; pass a value in range{where}")

    def describe(self):
        """One line naming the run length, schedule and warm-up."""
        length = f"{self.epochs} epochs" if self.epochs else f"{self.iterations} iterations"
        sched = (f"step x{self.factor} at {', '.join(f'{m:g}' for m in self.milestones)}"
                 if self.schedule == "step" else "cosine")
        return (f"{length}, batch {self.batch_size}, lr {self.lr:g} {sched}, warm-up "
                f"{self.warmup}, momentum {self.momentum:g}, wd {self.wd:g}")

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


def recipe(model_name, **overrides):
    """The paper's training settings for a registered model, with ``overrides``.

    ResNet-110 and ResNet-1202 (2015) warm up until the training error is below 80%;
    the 2016 pre-activation CIFAR networks warm up for 400 iterations; the others start
    at 0.1.
    """
    warmup = "none"
    if model_name in ("resnet110_cifar", "resnet1202_cifar"):
        warmup = "error"
    elif model_name.endswith("_cifar_v2"):
        warmup = "fixed"
    return TrainConfig(**{"warmup": warmup, **overrides})


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
        if config.warmup == "fixed" and total <= config.warmup_iterations:
            raise GluonresError(f"a run of {total} iterations is shorter than its "
                                f"{config.warmup_iterations}-iteration warm-up; train longer "
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
        fixed = config.warmup == "fixed"
        common = dict(base_lr=config.lr, warmup_mode="constant",
                      warmup_steps=config.warmup_iterations * scale + 1 if fixed else 0,
                      warmup_begin_lr=config.warmup_lr if fixed else 0.0)
        if config.schedule == "step":
            return mx.lr_scheduler.MultiFactorScheduler([m * scale for m in self.milestones],
                                                        config.factor, **common)
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


class Callback:
    """Hooks into :func:`fit`; override any of them.

    Each receives the :class:`TrainState`. ``on_batch_end`` runs after the optimizer
    step, while every parameter's ``grad()`` still holds that batch's gradient (e.g. to
    record per-layer gradient norms). ``on_epoch_end`` may add JSON-able entries to the
    epoch's ``record``; they are logged and checkpointed with it.
    """

    def on_train_begin(self, state):
        """Before the first batch (also of a resumed run)."""

    def on_batch_end(self, state):
        """After each optimizer step."""

    def on_epoch_end(self, state, record):
        """After each epoch's evaluation, before its checkpoint."""

    def on_train_end(self, state, history):
        """After the final model is chosen (and written)."""


@dataclasses.dataclass
class TrainState:
    """What callbacks see: the live objects and counters of a run."""

    net: object
    trainer: object
    config: TrainConfig
    preprocess: Preprocess
    epoch: int = 0          # epochs completed
    iteration: int = 0      # updates done
    lr: float = None
    loss: float = None      # of the last batch
    error: float = None     # of the last batch, 0-1
    out_dir: str = None
    history: list = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------- the step
def prepare(net, config, ctx=None, workers=None, lr_scheduler=None):
    """The block that runs the training steps of ``net``, and its ``gluon.Trainer`` (SGD).

    The one place that decides how a network executes during training: the static graph
    of :func:`gluonres.speed.for_training` (BatchNorm+ReLU fused; same gradients and
    statistics, measured faster by ``gluonres bench``), whose updates land in ``net``'s
    parameters. ``net`` itself is hybridized for evaluation. Its BatchNorm statistics
    arrive without an engine dependency: call ``mx.nd.waitall()`` before reading them.
    ``workers`` (:class:`~gluonres.distributed.Workers`) connects the trainer to the
    parameter server; ``lr_scheduler`` travels with the optimizer (``dist_async`` servers).

    Returns
    -------
    (mxnet.gluon.HybridBlock, mxnet.gluon.Trainer)
    """
    from . import speed
    step = speed.for_training(net)
    net.hybridize(static_alloc=True, static_shape=True)
    optimizer = {"learning_rate": config.lr, "momentum": config.momentum, "wd": config.wd}
    if lr_scheduler is not None:
        optimizer["lr_scheduler"] = lr_scheduler
    kvstore = workers.trainer_options() if workers else {"kvstore": config.kvstore}
    # BatchNorm's running statistics are not trained: left out, so that no KVStore (nor
    # its first-step broadcast, which lands after the first batch's statistics) touches
    # them
    trained = [p for p in net.collect_params().values() if p.grad_req != "null"]
    return step, gluon.Trainer(trained, "sgd", optimizer, **kvstore)


def train_step(net, trainer, loss_fn, x, y, batch_size=None):
    """One SGD update on a batch; returns an NDArray ``[mean loss, error rate]``.

    The metrics depend on the forward pass only, so reading them does not wait for the
    backward pass and update. ``batch_size`` normalises the gradient (default: the
    batch's; distributed workers pass the whole batch, see
    :meth:`~gluonres.distributed.Workers.step_size`).
    """
    with autograd.record():
        out = net(x)
        loss = loss_fn(out, y)
    loss.backward()
    trainer.step(batch_size or x.shape[0])
    return mx.nd.stack(loss.mean(), (out.argmax(axis=1) != y).mean())


def to_input(images, labels, preprocess, ctx):
    """A uint8 numpy batch and its labels as network input and float labels on ``ctx``."""
    x = preprocess(mx.nd.array(images, ctx=ctx, dtype="uint8"))
    return x, mx.nd.array(labels, ctx=ctx, dtype="float32")


def input_stream(train, config, preprocess, ctx=None):
    """Endless network-ready training batches, epoch after epoch, augmented as ``fit``
    draws them (:func:`gluonres.data.epoch_batches`, then :func:`to_input`)."""
    epoch = 0
    while True:
        for images, labels in epoch_batches(train, config.batch_size, config.seed, epoch,
                                            config.pad, config.flip):
            yield to_input(images, labels, preprocess, ctx or mx.cpu())
        epoch += 1


# ---------------------------------------------------------------------------- checkpoints
def optimizer_states(trainer):
    """The optimizer's per-parameter state (momentum) as ``{'opt:NAME[:i]': NDArray}``.

    Read from the trainer's local updater, never through ``Trainer.save_states``, which
    pickles.
    """
    updater = trainer._updaters[0]
    out = {}
    for name, idx in trainer._param2idx.items():
        for key, arr in _flatten_state(updater.states.get(idx), io.OPTIMIZER_PREFIX + name):
            out[key] = arr.copyto(mx.cpu())
    return out


def load_optimizer_states(trainer, arrays, source):
    """Inverse of :func:`optimizer_states` on a trainer whose parameters are initialised."""
    updater = trainer._updaters[0]
    optimizer = trainer._optimizer
    for name, idx in trainer._param2idx.items():
        param = trainer._params[idx]
        if param.grad_req == "null":  # never updated (BatchNorm running statistics)
            continue
        state = optimizer.create_state_multi_precision(idx, param.data())
        for key, arr in _flatten_state(state, io.OPTIMIZER_PREFIX + name):
            if key not in arrays:
                raise io.CorruptFileError(f"{source} has no optimizer state {key!r}; it is not "
                                          "a complete checkpoint of this run")
            arr[:] = arrays[key]
        updater.states[idx] = state
        updater.states_synced[idx] = True


def _flatten_state(state, key):
    if isinstance(state, mx.nd.NDArray):
        yield key, state
    elif isinstance(state, (tuple, list)):
        for i, part in enumerate(state):
            yield from _flatten_state(part, f"{key}:{i}")


def checkpoint_meta(out_dir):
    """The JSON metadata of ``out_dir``'s newest good checkpoint (config, data, progress).

    Raises
    ------
    GluonresError
        If there is no checkpoint, or none passes its SHA-256 and format checks.
    """
    return checkpoints.CheckpointStore(out_dir).load().meta


def check_new_run(out_dir):
    """Refuse to start a run in a folder that holds one (its checkpoints would be lost).

    Raises
    ------
    GluonresError
        Naming the folder and the two ways on: ``--resume`` or another folder.
    """
    if checkpoints.CheckpointStore(out_dir).exists():
        raise GluonresError(f"{out_dir!r} already holds a run ({CHECKPOINT}); continue it with "
                            "--resume or choose another output folder")


def check_checkpoint_model(meta, model, path):
    """Refuse a checkpoint of another model, naming both."""
    if meta.get("model") != model:
        raise WeightsMismatchError(
            f"{path!r} is a checkpoint of {meta.get('model')}, not {model}; resume it as "
            f"{meta.get('model')} or train {model} in another output folder")


def _check_resumable(meta, net, arrays, config, data_info, path):
    """Refuse a checkpoint of another model, other settings or other data, naming it."""
    check_checkpoint_model(meta, getattr(net, "model_name", None), path)
    if meta["state"].get("optimizer_on_servers"):
        raise GluonresError(f"{path!r} was written by a dist_async run, whose momentum lived "
                            "on the parameter servers and is not in the checkpoint; it cannot "
                            "be resumed exactly: start a new run (dist_sync runs resume)")
    io.check_compatible(net, io.weights_only(arrays), meta, source=repr(path))
    saved = meta["config"]
    for key, value in config.to_dict().items():
        if key not in _RUNTIME_FIELDS and saved.get(key) != value:
            raise GluonresError(f"{path!r} was trained with {key}={saved.get(key)!r}, not "
                                f"{value!r}; resume with the same settings or start a new "
                                "output folder")
    for key in ("splits", "classes"):
        if meta["data"].get(key) != data_info.get(key):
            raise GluonresError(f"{path!r} was trained on data with {key} "
                                f"{meta['data'].get(key)}, not {data_info.get(key)}; resume "
                                "with the same data (and validation split)")


# ---------------------------------------------------------------------------- fit
def fit(net, data, config=None, out_dir=None, resume=False, progress=True, callbacks=(),
        info=None, ctx=None):
    """Train ``net`` on ``data`` with ``config``; return the history.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Parameters not yet initialised get He initialisation (seeded).
    data : gluonres.data.Data
        ``train`` is trained on; ``val`` (when present) selects the best epoch; ``test``
        is evaluated every epoch.
    config : TrainConfig, optional
        Defaults to :func:`recipe` for ``net.model_name``.
    out_dir : str, optional
        Run folder for checkpoints, logs, curve, final weights and export; without it
        nothing is written. A folder that already holds a checkpoint is only continued
        with ``resume=True``.
    resume : bool, default False
        Continue ``out_dir``'s run from its last checkpoint, at the same step, learning
        rate, momentum and data order.
    progress : bool, default True
        Progress bar and per-epoch lines on standard error.
    callbacks : sequence of Callback
    info : dict, optional
        JSON-able facts to keep with the run (e.g. the command line); a resumed run
        keeps the first run's ``info`` and ``machine`` and lists its own (with the epoch
        it resumed at) under ``resumed``.
    ctx : mxnet.Context, optional

    Returns
    -------
    dict
        ``model``, ``config``, ``data``, ``epochs`` (per-epoch records: ``train_loss``,
        ``train_error_pct``, ``val_error_pct``, ``test_error_pct``, ``lr``, ``seconds``,
        ``img_s`` ...), ``selected_epoch``, ``test_accuracy`` (0-1, of the selected
        model, ``None`` without a test split), ``train_img_s``, ``wall_s``, ``files``.

    Raises
    ------
    TrainingDivergedError
        When the loss or the weights become NaN/inf; the last good checkpoint stays.
    GluonresError
        For bad settings, or a resume that does not match the checkpoint.
    """
    ctx = ctx or mx.cpu()
    model = getattr(net, "model_name", type(net).__name__)
    config = config or recipe(model)
    train = data.train
    outputs = getattr(net, "classes", len(data.classes))
    if outputs != len(data.classes):
        raise GluonresError(f"{model} has {outputs} outputs but {data.name!r} has "
                            f"{len(data.classes)} classes; build it with "
                            f"classes={len(data.classes)} (--classes {len(data.classes)})")
    if len(train) < config.batch_size:
        raise GluonresError(f"{data.name!r} has {len(train)} training images, fewer than one "
                            f"batch of {config.batch_size}; pass a batch size of at most "
                            f"{len(train)}")
    per_epoch = len(train) // config.batch_size
    total = config.total_iterations(per_epoch)
    n_epochs = math.ceil(total / per_epoch)
    schedule = Schedule(config, total)
    data_info = data.describe()
    store = checkpoints.CheckpointStore(out_dir) if out_dir else None
    ckpt = store.path() if store else None
    if out_dir and not resume:
        check_new_run(out_dir)
    if resume and not out_dir:
        raise GluonresError("resume needs the output folder of the run to continue")
    if config.kvstore == "dist_async" and config.warmup == "error":
        raise GluonresError("the error-driven warm-up needs every worker's training error "
                            "at every step, which dist_async does not have; use --kvstore "
                            "dist_sync or --warmup fixed")
    if out_dir and not resume:
        check_writable(out_dir)
    workers = Workers(config.kvstore)
    shard = workers.shard(config.batch_size)
    writer = out_dir if workers.writer else None  # only rank 0 writes the run folder
    progress = progress and workers.writer

    history = {"model": model, "config": config.to_dict(), "data": data_info,
               "iterations_per_epoch": per_epoch, "total_iterations": total,
               "milestones": schedule.milestones, "epochs": [], "info": info or {},
               "resumed": [], "machine": machine(), "started": utc_now(),
               "train_s": 0.0, "wall_s": 0.0, "workers": workers.describe()}
    say = _printer(progress)
    best = {"epoch": None, "val_error_pct": None}
    best_arrays = None
    if resume:
        loaded = store.load()
        meta, arrays = loaded.meta, loaded.arrays
        _check_resumable(meta, net, arrays, config, data_info, loaded.path)
        if loaded.note:
            print(f"gluonres: warning: {loaded.note}", file=sys.stderr, flush=True)
        preprocess = Preprocess.from_dict(meta["preprocess"])
        weights = io.weights_only(arrays)
        io.set_weights(net, weights, meta, repr(loaded.path), ctx)
        mx.nd.waitall()  # BatchNorm updates its statistics without a tracked dependency
        state_meta = meta["state"]
        schedule.load_state_dict(state_meta["schedule"])
        history.update({k: meta["history"].get(k, history[k]) for k in _CARRIED})
        history["resumed"].append({"info": info or {}, "machine": machine(),
                                   "at_epoch": state_meta["epoch"], "started": utc_now(),
                                   "checkpoint": os.path.basename(loaded.path),
                                   **({"fallback": loaded.note} if loaded.note else {})})
        best = state_meta["best"]
        best_arrays = _resumed_best(best, state_meta["epoch"], arrays, weights, out_dir)
    else:
        he_initialize(net, config.seed, ctx)
        preprocess = Preprocess.fit(train.images, config.normalize)
    _complete_shapes(net, train.images.shape[1:3], ctx)
    server_schedule = None
    if not workers.synchronous:  # the servers update, so the schedule must travel to them
        server_schedule = schedule.mx_scheduler(scale=workers.count)
    step, trainer = prepare(net, config, ctx, workers, server_schedule)
    if resume:
        load_optimizer_states(trainer, arrays, repr(loaded.path))
    state = TrainState(net, trainer, config, preprocess, out_dir=out_dir,
                       history=history["epochs"])
    if history["epochs"]:
        state.epoch = history["epochs"][-1]["epoch"]
        state.iteration = history["epochs"][-1]["iteration"]
    if writer:
        os.makedirs(out_dir, exist_ok=True)
    weights_meta = {"model": model, "preprocess": preprocess.to_dict(),
                    "classes": data.classes, "data": data.name}
    on = f" on {workers.count} workers ({config.kvstore})" if workers.count > 1 else ""
    say(f"{model} on {data.name}{on}: {len(train)} training images, {per_epoch} iterations "
        f"per epoch, {n_epochs} epochs ({total} iterations); {config.describe()}")
    for cb in callbacks:
        cb.on_train_begin(state)

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    step_size = workers.step_size(config.batch_size)
    segment_start = time.time()
    wall_before = history["wall_s"]
    while state.epoch < n_epochs:
        epoch_start = time.time()
        steps = min(per_epoch, total - state.iteration)
        batches = epoch_batches(train, config.batch_size, config.seed, state.epoch,
                                config.pad, config.flip)
        # layers that draw random numbers (dropout, drop path) see the same ones in a
        # resumed epoch as in an uninterrupted one
        mx.random.seed(_epoch_seed(config.seed, state.epoch))
        bar = tqdm(total=steps, desc=f"epoch {state.epoch + 1}/{n_epochs}", unit="batch",
                   leave=False, disable=not progress, file=sys.stderr,
                   mininterval=0.5 if sys.stderr.isatty() else 30)
        loss_sum = error_sum = 0.0
        try:
            for _ in range(steps):
                images, labels = next(batches)
                state.lr = schedule(state.iteration)
                if server_schedule is None:
                    trainer.set_learning_rate(state.lr)
                x, y = to_input(images[shard], labels[shard], preprocess, ctx)
                metrics = workers.mean("metrics", train_step(step, trainer, loss_fn, x, y,
                                                             step_size))
                state.loss, state.error = (float(v) for v in metrics.asnumpy())
                if not (math.isfinite(state.loss) and math.isfinite(state.error)):
                    raise TrainingDivergedError(_diverged(f"the loss became {state.loss}",
                                                          state, ckpt))
                schedule.observe(state.iteration, state.error)
                state.iteration += 1
                loss_sum += state.loss
                error_sum += state.error
                for cb in callbacks:
                    cb.on_batch_end(state)
                bar.update()
                rate = bar.n * config.batch_size / (time.time() - epoch_start)
                bar.set_postfix(loss=f"{state.loss:.3f}", err=f"{100 * state.error:.1f}%",
                                lr=f"{state.lr:g}", img_s=f"{rate:.0f}", refresh=False)
        finally:
            bar.close()
        # the cached graph writes BatchNorm's running statistics without a dependency
        # the engine tracks: wait for them before they are averaged, evaluated or saved
        mx.nd.waitall()
        workers.average_statistics(net)
        train_s = time.time() - epoch_start
        if not _finite(net):
            raise TrainingDivergedError(_diverged("the weights became NaN/inf", state, ckpt,
                                                  when="by the end of"))
        state.epoch += 1
        record = {"epoch": state.epoch, "iteration": state.iteration, "lr": state.lr,
                  "train_loss": loss_sum / steps, "train_error_pct": 100 * error_sum / steps}
        for split in ("val", "test"):
            if getattr(data, split) is not None:
                record[f"{split}_error_pct"] = error_pct(net, getattr(data, split),
                                                         preprocess, ctx)
        record.update(train_s=train_s, img_s=steps * config.batch_size / train_s,
                      seconds=time.time() - epoch_start)
        if schedule.warmup_end is not None:
            history["warmup_end_iteration"] = schedule.warmup_end
        for cb in callbacks:
            cb.on_epoch_end(state, record)
        history["epochs"].append(record)
        history["train_s"] += train_s
        history["wall_s"] = wall_before + time.time() - segment_start
        improved = data.val is not None and (best["epoch"] is None
                                             or record["val_error_pct"] < best["val_error_pct"])
        if improved:
            best = {"epoch": state.epoch, "val_error_pct": record["val_error_pct"]}
            best_arrays = {n: p.data().copy() for n, p in net.collect_params().items()}
        if writer:
            if improved:
                io.save_weights(net, os.path.join(out_dir, "best.params"),
                                {**weights_meta, "epoch": state.epoch})
            _save_checkpoint(store, net, trainer, schedule, weights_meta, config, data_info,
                             state, best, best_arrays, history, workers)
            write_logs(history, out_dir)
        say(_epoch_line(record, n_epochs))

    history["selected_epoch"] = best["epoch"] or state.epoch
    history["selection"] = "best validation error" if best["epoch"] else "last epoch"
    if best_arrays is not None:
        for name, p in net.collect_params().items():
            p.set_data(best_arrays[name])
    chosen = history["epochs"][history["selected_epoch"] - 1]
    history["test_accuracy"] = (1 - chosen["test_error_pct"] / 100
                                if "test_error_pct" in chosen else None)
    history["train_img_s"] = (sum(r["img_s"] * r["train_s"] for r in history["epochs"])
                              / max(history["train_s"], 1e-9))
    history["finished"] = utc_now()
    history["wall_s"] = wall_before + time.time() - segment_start
    history["weights_sha256"] = weights_digest(net)
    history["files"] = {}
    if writer:
        history["files"] = _write_final(net, out_dir, model, history,
                                        {**weights_meta, "epoch": history["selected_epoch"],
                                         "test_accuracy": history["test_accuracy"]})
    for cb in callbacks:
        cb.on_train_end(state, history)
    return history


def weights_digest(net):
    """SHA-256 over every parameter's name, shape and float bytes, in name order: equal
    digests mean bit-identical weights (e.g. on every worker of a distributed run)."""
    digest = hashlib.sha256()
    for name, p in sorted(net.collect_params().items()):
        value = p.data().asnumpy()
        digest.update(f"{name}:{value.shape}:{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _complete_shapes(net, image_size, ctx):
    """One forward pass at the data's image size completes deferred shapes; a network
    that cannot take that size is refused here, with the fix, not by an MXNet error."""
    try:
        net(mx.nd.zeros((1, 3) + tuple(image_size), ctx=ctx))
    except mx.MXNetError as err:
        size = getattr(net, "input_size", None)
        fix = (f"load the data at the model's size (--data is resized by gluonres train; "
               f"data.load(..., size={size}))" if size else "resize the images")
        reason = (str(err).strip().splitlines() or ["shape error"])[0][:160]
        raise GluonresError(f"{getattr(net, 'model_name', 'the network')} cannot take "
                            f"{image_size[0]}x{image_size[1]} images ({reason}); {fix}") \
            from None


def _epoch_seed(seed, epoch):
    return int(np.random.default_rng([seed, epoch, 1]).integers(2 ** 31))


def _resumed_best(best, epoch, arrays, weights, out_dir):
    """The best epoch's weights of a resumed run (``None`` without a validation split)."""
    if best["epoch"] is None:
        return None
    if best["epoch"] == epoch:
        return {n: v.copy() for n, v in weights.items()}
    kept = {k[len(io.BEST_PREFIX):]: v for k, v in arrays.items()
            if k.startswith(io.BEST_PREFIX)}
    # checkpoints written before the best weights travelled in them
    return kept or io.read_weights(os.path.join(out_dir, "best.params"))[0]


def error_pct(net, split, preprocess, ctx=None, batch_size=256):
    """Top-1 error (%) of ``net`` on an :class:`~gluonres.data.ImageArrays` split."""
    logits, labels = evaluation.predict_dataset(net, split, preprocess, batch_size, ctx,
                                                progress=False)
    return 100.0 * float((logits.argmax(axis=1) != labels).mean())


def _finite(net):
    return all(np.isfinite(p.data().asnumpy()).all() for p in net.collect_params().values())


def _diverged(what, state, ckpt, when="at"):
    """The NaN message; ``when`` is "at" for the failing iteration, "by the end of" for a
    check that runs after the last finished one."""
    iteration = state.iteration + 1 if when == "at" else state.iteration
    where = f"{what} {when} iteration {iteration} (epoch {state.epoch + 1}); training stopped"
    if ckpt and os.path.exists(ckpt):
        kept = f"the last good checkpoint {ckpt!r} (epoch {state.epoch}) is kept"
    elif ckpt:
        kept = "no epoch had finished, so there is no checkpoint"
    else:
        kept = "nothing was saved (no output folder)"
    return (f"{where}; {kept}; fix: lower --lr or warm up (--warmup error) in a new output "
            "folder")


def _save_checkpoint(store, net, trainer, schedule, weights_meta, config, data_info, state,
                     best, best_arrays, history, workers):
    arrays = {n: p.data().copyto(mx.cpu()) for n, p in net.collect_params().items()}
    arrays.update(optimizer_states(trainer))
    if best["epoch"] not in (None, state.epoch):  # else the weights are the best ones
        arrays.update({io.BEST_PREFIX + n: v.copyto(mx.cpu()) for n, v in best_arrays.items()})
    meta = {**weights_meta, "format": CHECKPOINT_FORMAT, "config": config.to_dict(),
            "data": data_info,
            "state": {"epoch": state.epoch, "iteration": state.iteration,
                      "schedule": schedule.state_dict(), "best": best, "seed": config.seed,
                      "optimizer_on_servers": not workers.synchronous},
            "history": {k: history[k] for k in _CARRIED}}
    store.save(arrays, meta)


def _write_final(net, out_dir, model, history, weights_meta):
    files = {"weights": os.path.join(out_dir, "weights.params"),
             "checkpoint": os.path.join(out_dir, CHECKPOINT), **_log_paths(out_dir)}
    io.save_weights(net, files["weights"], weights_meta)
    exported = deploy.export(net, os.path.join(out_dir, "export"), model)
    files.update(export_symbol=exported["symbol"], export_params=exported["params"])
    if os.path.exists(os.path.join(out_dir, "best.params")):
        files["best"] = os.path.join(out_dir, "best.params")
    write_logs({**history, "files": files}, out_dir)
    return files


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
    """Training (dashed) and test (bold) error per epoch, as in the papers' figures.

    Parameters
    ----------
    histories : dict of str to dict
        Label -> :func:`fit` history.
    path : str, optional
        Save a PNG there (atomically).
    ax : matplotlib.axes.Axes, optional
        Draw into it instead of a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib
    if ax is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [r["epoch"] for r in h["epochs"]]
        ax.plot(epochs, [r["train_error_pct"] for r in h["epochs"]], "--", color=color,
                lw=1, label=f"{label} train")
        for split, style in (("test", "-"), ("val", ":")):
            values = [r.get(f"{split}_error_pct") for r in h["epochs"]]
            if values and values[0] is not None:
                ax.plot(epochs, values, style, color=color, lw=2, label=f"{label} {split}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
    parts += [f"{s} err {r[f'{s}_error_pct']:.2f}%" for s in ("val", "test")
              if f"{s}_error_pct" in r]
    parts += [f"lr {r['lr']:g}", f"{r['seconds']:.0f}s", f"{r['img_s']:.0f} img/s"]
    return "  ".join(parts)


def _printer(enabled):
    def say(message):
        if enabled:
            print(message, file=sys.stderr, flush=True)
    return say


# ---------------------------------------------------------------------------- throughput
def throughput(net, data, config=None, iterations=5, rounds=12, ctx=None, progress=True):
    """Training images/s with real batches against synthetic input, side by side.

    Real: a batch drawn, cropped and flipped from the in-memory training images,
    converted and normalised, then one :func:`train_step`. Synthetic: the same step on
    one fixed, already normalised batch. Short blocks of ``iterations`` steps of each
    alternate for ``rounds`` rounds (after a few untimed steps), so that other load on
    the machine hits both alike.

    Returns
    -------
    dict
        ``real_img_s`` and ``synthetic_img_s`` (all timed images over all timed
        seconds), ``ratio`` (real/synthetic), per-block values, ``batch_size``,
        ``iterations``, ``rounds``, ``machine``.
    """
    ctx = ctx or mx.cpu()
    config = config or recipe(getattr(net, "model_name", ""))
    he_initialize(net, config.seed, ctx)
    preprocess = Preprocess.fit(data.train.images, config.normalize)
    net(mx.nd.zeros((1, 3) + data.train.images.shape[1:3], ctx=ctx))
    step, trainer = prepare(net, config, ctx)
    trainer.set_learning_rate(config.lr)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    stream = input_stream(data.train, config, preprocess, ctx)
    fixed = next(stream)

    def timed(real, n):
        start = time.perf_counter()
        for _ in range(n):
            x, y = next(stream) if real else fixed
            train_step(step, trainer, loss_fn, x, y).asnumpy()
        return time.perf_counter() - start

    timed(True, 3), timed(False, 3)
    real, synthetic = [], []
    for _ in tqdm(range(rounds), desc="throughput", unit="round", disable=not progress,
                  leave=False):
        real.append(timed(True, iterations))
        synthetic.append(timed(False, iterations))
    images = iterations * config.batch_size
    real_img_s, synthetic_img_s = images * rounds / sum(real), images * rounds / sum(synthetic)
    return {"model": getattr(net, "model_name", None), "data": data.name,
            "batch_size": config.batch_size, "iterations": iterations, "rounds": rounds,
            "real_img_s": real_img_s, "synthetic_img_s": synthetic_img_s,
            "ratio": real_img_s / synthetic_img_s,
            "real_img_s_blocks": [images / t for t in real],
            "synthetic_img_s_blocks": [images / t for t in synthetic],
            "machine": machine()}
