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
and both are verified by SHA-256, see :mod:`gluonres.train.checkpoints`), ``log.csv``,
``log.json`` and ``curve.png``; at the end ``weights.params`` (and, with
:class:`gluonres.deploy.ExportCallback`, ``export/``). With ``kvstore='dist_sync'`` it
is one of several workers on MXNet's parameter server (:mod:`gluonres.train.distributed`).
"""
import contextlib
import dataclasses
import math
import os
import sys
import time

import mxnet as mx
import numpy as np
from tqdm import tqdm

from gluonres import io
from gluonres._files import check_writable, deferred_signals, raise_if_stopped
from gluonres.analysis import evaluation
from gluonres.analysis.footprint import (MAX_INFERENCE_BATCH, activation_bytes,
                                         check_batch_size, training_memory_warning)
from gluonres.data.augment import epoch_batches
from gluonres.data.preprocess import Preprocess
from gluonres.errors import GluonresError, TrainingDivergedError
from gluonres.machine import machine, utc_now
from gluonres.models import model_info
from gluonres.models.init import he_initialize
from gluonres.train import checkpoints
from gluonres.train.config import Schedule, TrainConfig, recipe
from gluonres.train.distributed import Workers, weights_digest
from gluonres.train.logs import _epoch_line, _log_paths, _printer, write_logs
from gluonres.train.state import (_CARRIED, CHECKPOINT, _check_resumable, _resumed_best,
                                  _save_checkpoint, check_new_run, load_optimizer_states)
from gluonres.train.step import default_layout, loss_for, prepare, to_input, train_step


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
        """After the final model is chosen and its weights written, before the final logs:
        entries added to ``history["files"]`` are logged with the run."""


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


# ---------------------------------------------------------------------------- fit
def fit(net, data, config=None, out_dir=None, resume=False, progress=True, callbacks=(),
        info=None, ctx=None, eval_batch_size=None, preprocess=None):
    """Train ``net`` on ``data`` with ``config``; return the history.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Parameters not yet initialised get He initialisation (seeded).
    data : gluonres.data.Data
        ``train`` is trained on; ``val`` (when present) selects the best epoch; ``test``
        is evaluated every epoch.
    config : TrainConfig, optional
        Defaults to :func:`recipe` for the model (:func:`~gluonres.models.model_info`).
    out_dir : str, optional
        Run folder for checkpoints, logs, curve and final weights (an export is a
        callback's: :class:`gluonres.deploy.ExportCallback`); without it nothing is
        written. A folder that already holds a checkpoint is only continued with
        ``resume=True``.
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
    eval_batch_size : int, optional
        Images per forward pass of the per-epoch evaluation (it does not change the
        training). Default: derived at the first evaluation, once the training step has
        its memory (:func:`gluonres.analysis.evaluation.eval_batch_size`: 256 where that
        fits, fewer for large models and inputs; said on the progress lines when fewer).
    preprocess : gluonres.data.preprocess.Preprocess, optional
        The input normalisation, e.g. that of the weights a fine-tuned ``net`` starts
        from (:func:`gluonres.train.finetune.init_weights`). Default: fitted to the
        training images (``config.normalize``). A resumed run keeps its own.

    Returns
    -------
    dict
        ``model``, ``config``, ``data``, ``epochs`` (per-epoch records: ``train_loss``,
        ``train_error_pct``, ``val_error_pct``, ``test_error_pct``, ``lr``, ``seconds``,
        ``img_s`` ...), ``selected_epoch``, ``test_accuracy`` (0-1, of the selected
        model, ``None`` without a test split), ``train_img_s``, ``wall_s``, ``files`` (what
        this process wrote: empty without ``out_dir`` and on workers other than rank 0).

    Raises
    ------
    TrainingDivergedError
        When the loss or the weights become NaN/inf; the last good checkpoint stays.
    GluonresError
        For bad settings, a resume that does not match the checkpoint, a run folder in use
        by another process (:func:`~gluonres.train.checkpoints.run_lock`), or a write that
        fails (a full disk: the files written before stay as they were).
    """
    with contextlib.ExitStack() as locks:  # the run folder's lock, held to the end
        return _fit(net, data, config, out_dir, resume, progress, callbacks, info, ctx, locks,
                    eval_batch_size, preprocess)


def _fit(net, data, config, out_dir, resume, progress, callbacks, info, ctx, locks,
         eval_batch_size, given_preprocess):
    check_batch_size(eval_batch_size, "--eval-batch-size", "eval batch size")
    ctx = ctx or mx.cpu()
    built = model_info(net)
    model = built.name
    config = config or recipe(model)
    train = data.train
    outputs = built.classes or len(data.classes)
    if outputs != len(data.classes):
        raise GluonresError(f"{model} has {outputs} outputs but {data.name!r} has "
                            f"{len(data.classes)} classes; build it with "
                            f"classes={len(data.classes)} (--classes {len(data.classes)})")
    config.check_image_size(*train.images.shape[1:3])
    channels = train.images.shape[3]
    if channels != built.in_channels:
        raise GluonresError(f"{model} takes {built.in_channels}-channel input but {data.name!r} "
                            f"was loaded with {channels} channel(s); build it with "
                            f"in_channels={channels} (--in-channels {channels}) or load the "
                            f"data with channels={built.in_channels}")
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
    if resume and not out_dir:
        raise GluonresError("resume needs the output folder of the run to continue")
    distributed = config.kvstore.startswith("dist")
    if out_dir and not distributed:  # a worker's rank is known once it has connected
        locks.enter_context(checkpoints.run_lock(out_dir))
    if out_dir and not resume:
        check_new_run(out_dir)
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
    if writer and distributed:
        locks.enter_context(checkpoints.run_lock(out_dir))

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
                                   "checkpoint": loaded.file,
                                   **({"fallback": loaded.note} if loaded.note else {})})
        best = state_meta["best"]
        best_arrays = _resumed_best(best, state_meta["epoch"], arrays, weights, out_dir)
    else:
        he_initialize(net, config.seed, ctx)
        preprocess = given_preprocess or Preprocess.fit(train.images, config.normalize)
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
        # the run goes on: a killed run's last checkpoint gets its name, its temp files go
        store.tidy()
    # what evaluate, export and predict need to feed the network as training did
    height, width = train.images.shape[1:3]
    weights_meta = {"model": model, "preprocess": preprocess.to_dict(),
                    "classes": data.classes, "data": data.name, "in_channels": channels,
                    **({"input_size": height} if height == width else {}),
                    **({"resize": data.resize} if data.resize else {}),
                    **({"model_options": built.options} if built.options else {})}
    on = f" on {workers.count} workers ({config.kvstore})" if workers.count > 1 else ""
    say(f"{model} on {data.name}{on}: {len(train)} training images, {per_epoch} iterations "
        f"per epoch, {n_epochs} epochs ({total} iterations); {config.describe()}")
    # Linux kills a process out of memory without an error to catch: say it first
    # one image's activations, read from the graph once for the warning and the evaluations
    per_image = activation_bytes(net, train.images.shape[1:3], train.images.shape[3])
    too_big = training_memory_warning(net, shard.stop - shard.start, per_image=per_image)
    if too_big:
        print(f"gluonres: warning: {too_big}", file=sys.stderr, flush=True)
    for cb in callbacks:
        cb.on_train_begin(state)

    loss_fn = loss_for(config)
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
        # the evaluations and callbacks ran inference passes: without this the first NAG
        # updates of the epoch depend on timing (see default_layout)
        default_layout(net)
        try:
            for _ in range(steps):
                raise_if_stopped()  # a Ctrl-C that landed in an array's __del__ was lost
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
                if eval_batch_size is None:  # now that the training step holds its memory
                    eval_batch_size = evaluation.eval_batch_size(net, getattr(data, split),
                                                                 per_image)
                    if eval_batch_size < MAX_INFERENCE_BATCH:
                        say(f"evaluating in batches of {eval_batch_size} (what fits the free "
                            "memory; --eval-batch-size sets it)")
                record[f"{split}_error_pct"], record[f"{split}_loss"] = split_metrics(
                    net, getattr(data, split), preprocess, loss_fn, ctx, eval_batch_size)
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
            with deferred_signals():  # Ctrl-C stops after the epoch's files, not among them
                if improved:
                    with _writing(f"best.params (epoch {state.epoch})", store):
                        io.save_weights(net, os.path.join(out_dir, "best.params"),
                                        {**weights_meta, "epoch": state.epoch})
                with _writing(f"the checkpoint of epoch {state.epoch}", store):
                    _save_checkpoint(store, net, trainer, schedule, weights_meta, config,
                                     data_info, state, best, best_arrays, history, workers)
                with _writing(f"the logs of epoch {state.epoch}", store):
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
    history["val_accuracy"] = (1 - chosen["val_error_pct"] / 100
                               if "val_error_pct" in chosen else None)
    history["train_img_s"] = (sum(r["img_s"] * r["train_s"] for r in history["epochs"])
                              / max(history["train_s"], 1e-9))
    history["finished"] = utc_now()
    history["wall_s"] = wall_before + time.time() - segment_start
    history["weights_sha256"] = weights_digest(net)
    history["files"] = {}
    if writer:
        with _writing("the final weights", store):
            history["files"] = _write_weights(net, out_dir,
                                              {**weights_meta, "epoch": history["selected_epoch"],
                                               "test_accuracy": history["test_accuracy"]})
    with _writing("the run's final files (export, logs)", store if writer else None):
        for cb in callbacks:
            cb.on_train_end(state, history)
        if writer:
            write_logs(history, out_dir)
    return history


@contextlib.contextmanager
def _writing(what, store):
    """A failed write (a full disk, a folder made read-only) as one message that says what
    is kept and how to go on; SIGINT and SIGTERM wait until the writes are done."""
    try:
        with deferred_signals():
            yield
    except OSError as err:
        if store is None:
            raise
        kept = store.newest()
        if kept is None:
            on = "no epoch had finished, so there is no checkpoint: start the run again"
        else:
            on = (f"the checkpoint of epoch {kept['epoch']} ({store.path(kept['file'])!r}) and "
                  "every file written before are kept: continue with --resume --out "
                  f"{store.out_dir}")
        reason = err.strerror or str(err)
        raise GluonresError(f"cannot write {what} in {store.out_dir!r} ({reason}); {on} "
                            "once there is room (or the folder is writable again)") from None


def _complete_shapes(net, image_size, ctx):
    """One forward pass at the data's image size completes deferred shapes; a network
    that cannot take that size is refused here, with the fix, not by an MXNet error."""
    info = model_info(net)
    try:
        net(mx.nd.zeros((1, info.in_channels) + tuple(image_size), ctx=ctx))
    except mx.MXNetError as err:
        size = info.input_size
        fix = (f"load the data at the model's size (--data is resized by gluonres train; "
               f"data.load(..., size={size}))" if size else "resize the images")
        reason = (str(err).strip().splitlines() or ["shape error"])[0][:160]
        raise GluonresError(f"{info.name} cannot take "
                            f"{image_size[0]}x{image_size[1]} images ({reason}); {fix}") \
            from None


def _epoch_seed(seed, epoch):
    return int(np.random.default_rng([seed, epoch, 1]).integers(2 ** 31))


def error_pct(net, split, preprocess, ctx=None, batch_size=None):
    """Top-1 error (%) of ``net`` on an :class:`~gluonres.data.ImageArrays` split, in
    batches of ``batch_size`` (default :func:`~gluonres.analysis.evaluation.eval_batch_size`)."""
    return split_metrics(net, split, preprocess, None, ctx, batch_size)[0]


def split_metrics(net, split, preprocess, loss_fn=None, ctx=None, batch_size=None):
    """Top-1 error (%) and mean loss of ``net`` on a split, as :func:`error_pct`.

    ``loss_fn`` is the training loss (:func:`~gluonres.train.step.loss_for`: label
    smoothing included when the recipe has it), so the held-out loss compares with
    ``train_loss``; without it the loss is ``None``.
    """
    logits, labels = evaluation.predict_dataset(net, split, preprocess, batch_size, ctx,
                                                progress=False)
    error = 100.0 * float((logits.argmax(axis=1) != labels).mean())
    if loss_fn is None:
        return error, None
    loss = loss_fn(mx.nd.array(logits), mx.nd.array(labels)).mean().asscalar()
    return error, float(loss)


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


def _write_weights(net, out_dir, weights_meta):
    """Write the chosen weights; return the run folder's files (the logs are written last,
    after the callbacks)."""
    files = {"weights": os.path.join(out_dir, "weights.params"),
             "checkpoint": os.path.join(out_dir, CHECKPOINT), **_log_paths(out_dir)}
    io.save_weights(net, files["weights"], weights_meta)
    if os.path.exists(os.path.join(out_dir, "best.params")):
        files["best"] = os.path.join(out_dir, "best.params")
    return files
