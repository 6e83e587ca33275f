"""``gluonres train`` for Python: a registered model trained on a dataset given by name or
path, in a run folder that can be continued from its checkpoint.

:func:`~gluonres.train.fit` trains a network on data already loaded; :func:`train_model`
starts from the names and keeps them with the run (its ``info`` records ``data`` and
``val_split``), so that a resumed run rebuilds the same data and settings from the
checkpoint alone (:func:`resume_settings`). The run's export is its caller's: pass
``callbacks=[gluonres.deploy.ExportCallback()]`` for ``OUT/export``, as ``gluonres train``
does.
"""
import contextlib
import dataclasses
import os
import sys
import time
from typing import NamedTuple

from gluonres import data as datasets
from gluonres import io
from gluonres._files import check_writable
from gluonres.analysis.footprint import check_batch_size
from gluonres.errors import GluonresError
from gluonres.models import model_info
from gluonres.train import distributed, finetune
from gluonres.train.checkpoints import run_lock
from gluonres.train.config import TrainConfig, default_length, recipe
from gluonres.train.loop import fit
from gluonres.train.state import CHECKPOINT, check_checkpoint_model, check_new_run, checkpoint_meta


class TrainRun(NamedTuple):
    """What :func:`train_model` did: the run folder, the dataset and :func:`fit`'s history."""

    out_dir: str
    data: str
    history: dict


def default_out_dir(model, data):
    """``runs/MODEL-DATA-TIME``: the run folder of ``gluonres train`` without ``--out``."""
    base = os.path.basename(os.path.normpath(data))
    for ext in (".tar.gz", ".tgz", ".tar", ".rec"):
        base = base[:-len(ext)] if base.endswith(ext) else base
    return os.path.join("runs", f"{model}-{base or 'data'}-{time.strftime('%Y%m%d-%H%M%S')}")


def resume_settings(out_dir, model=None):
    """The settings the run in ``out_dir`` was started with, read from its checkpoint.

    Parameters
    ----------
    out_dir : str
        Run folder holding a checkpoint.
    model : str, optional
        Refuse a checkpoint of another model.

    Returns
    -------
    dict
        ``config`` (:class:`TrainConfig`), ``data`` (the dataset the run was started on;
        ``None`` for a run started by :func:`fit` itself), ``val_split``, ``freeze`` (the
        part kept frozen, or ``None``) and ``network``, what the checkpoint records of
        the network (``input_size``, ``in_channels``, ``classes``, ``model_options``,
        where recorded: :func:`gluonres.io.recorded_options` reads it).

    Raises
    ------
    GluonresError
        If no checkpoint passes its checks, or it is another model's.
    """
    saved = checkpoint_meta(out_dir)
    if model is not None:
        check_checkpoint_model(saved, model, os.path.join(out_dir, CHECKPOINT))
    first = saved["history"]["info"]
    return {"config": TrainConfig.from_dict(saved["config"]), "data": first.get("data"),
            "val_split": first.get("val_split", 0), "freeze": first.get("freeze"),
            "network": {k: saved[k] for k in ("input_size", "in_channels", "classes",
                                              "model_options") if k in saved}}


def train_model(model, data=None, out_dir=None, *, resume=False, val_split=None, recipe=None,
                model_kwargs=None, info=None, progress=True, callbacks=(), eval_batch_size=None,
                size=None, init_weights=None, freeze=None, **settings):
    """Train a registered model with a named recipe on a dataset, in a run folder.

    Every check that needs no data (settings, run folder, parameter-server environment)
    runs before the data is decoded.

    Parameters
    ----------
    model : str
        Registered name, e.g. ``'resnet20_cifar'``.
    data : str, optional
        ``'digits'``, ``'cifar10'`` or a path (:func:`gluonres.data.load`), loaded at the
        input size (``size``) and the model's input channels (grey for
        ``in_channels=1``). Required for a new run; a resumed run defaults to its own.
    out_dir : str, optional
        Run folder; a new run defaults to :func:`default_out_dir`. Required to resume.
    resume : bool, default False
        Continue the run in ``out_dir`` from its last checkpoint, with its settings, data
        and validation split (:func:`resume_settings`); ``settings`` given here override
        them (and must match the checkpoint where :func:`fit` requires it).
    val_split : int or float, optional
        Training images (a count, or a fraction) held out to select the best epoch;
        default none for a new run.
    recipe : str, optional
        A new run's recipe (:data:`~gluonres.train.config.RECIPES`), default ``'paper'``;
        a resumed run keeps its own and refuses this.
    model_kwargs : dict, optional
        Builder options (``shortcut``, ``in_channels`` ...); ``classes`` defaults to the
        data's.
    info : dict, optional
        JSON-able facts kept with the run (e.g. ``command``); ``data`` and ``val_split``
        are added.
    progress : bool, default True
        Progress bars and per-epoch lines on standard error.
    callbacks : sequence of Callback
        E.g. :class:`gluonres.deploy.ExportCallback`.
    eval_batch_size : int, optional
        Batch of the per-epoch evaluation, passed to :func:`~gluonres.train.fit` (not a
        setting of the run: it does not change the training); default derived there.
    size : int, optional
        Train on ``size`` x ``size`` images (shorter side resized, centre crop) with the
        network built for that size (:func:`gluonres.io.sized_model`); recorded with the
        weights. Default: the model's input size (a resumed run: its own).
    init_weights : str, optional
        Start a new run from trained weights instead of a fresh initialisation: a
        weights file, ``'pretrained'`` or ``'gluoncv:NAME'``
        (:func:`~gluonres.train.finetune.init_weights`; a classifier for other classes
        is re-initialised, and said so). The run keeps their input normalisation.
    freeze : str, optional
        Do not train the network up to this part (``'stem'``, ``'stage1'`` ...,
        ``'features'``: :func:`~gluonres.train.finetune.freeze`); a resumed run keeps
        its own.
    **settings
        :class:`TrainConfig` fields overriding the model's recipe (or the checkpoint's);
        ``None`` values are ignored. ``iterations`` without ``epochs`` trains that many
        updates even where the recipe counts epochs.

    Returns
    -------
    TrainRun
        ``out_dir``, ``data`` and the :func:`fit` history.

    Raises
    ------
    GluonresError
        For bad settings, data or run folders, naming the fix; a size the model cannot
        take; a run folder in use by another process (``... is in use by another gluonres
        train (pid N)``).
    """
    if resume and not out_dir:
        raise GluonresError("--resume needs --out, the folder of the run to continue")
    if resume and recipe:
        raise GluonresError("a resumed run keeps the recipe it started with; drop --recipe")
    check_batch_size(eval_batch_size, "--eval-batch-size", "eval batch size")
    if not resume:
        if not data:
            raise GluonresError("--data is required: 'digits', 'cifar10' or a path")
        out_dir = out_dir or default_out_dir(model, data)
    # held from before the folder is read to the end; the workers of a distributed run
    # are told apart only once connected, so there fit locks for the writer alone
    with contextlib.ExitStack() as locks:
        if "DMLC_ROLE" not in os.environ:
            locks.enter_context(run_lock(out_dir))
        return _train_model(model, data, out_dir, resume, val_split, recipe, model_kwargs,
                            info, progress, callbacks, settings, eval_batch_size, size,
                            init_weights, freeze)


def _train_model(model, data, out_dir, resume, val_split, recipe_name, model_kwargs, info,
                 progress, callbacks, settings, eval_batch_size, size, init_from, freeze):
    model_kwargs = dict(model_kwargs or {})
    if size is None:  # the builder option, as callers passed it before there was a size
        size = model_kwargs.pop("input_size", None)
    if resume:
        saved = resume_settings(out_dir, model)
        config, data = saved["config"], data or saved["data"]
        val_split = saved["val_split"] if val_split is None else val_split
        options = io.recorded_options(model, saved["network"])
        trained = options.pop("size", None)
        if size is not None and trained and size != trained:
            raise GluonresError(f"the run in {out_dir!r} trains on {trained}x{trained} images, "
                                f"not {size}x{size}; resume without --size, or start a new "
                                "output folder")
        size = trained if size is None else size
        model_kwargs = {**options, **model_kwargs}
        if init_from:
            raise GluonresError("a resumed run continues from its checkpoint; drop "
                                "--init-weights")
        if freeze and freeze != saved["freeze"]:
            started = (f"with --freeze {saved['freeze']}" if saved["freeze"]
                       else "without --freeze")
            raise GluonresError(f"the run in {out_dir!r} was started {started}; resume it "
                                "without --freeze")
        freeze = saved["freeze"]
    else:
        config, val_split = recipe(model, recipe_name or "paper"), val_split or 0
        check_new_run(out_dir)  # before minutes of data loading
        check_writable(out_dir)
    if not data:
        raise GluonresError("--data is required: 'digits', 'cifar10' or a path")
    settings = {k: v for k, v in settings.items() if v is not None}
    distributed.check_environment(settings.get("kvstore") or config.kvstore)
    if "iterations" in settings and "epochs" not in settings:
        settings["epochs"] = None  # an epoch count would win over the iterations
    config = dataclasses.replace(config, **settings)
    # the network as it will be built (its classes aside), before the data is decoded:
    # a size or channel count it cannot take, or a part it lacks, is refused now; weights
    # to start from are read once, here, and bring the size, channels and options they
    # record
    made = None
    if init_from:
        made = finetune.init_weights(model, init_from, size=size, **{
            k: v for k, v in model_kwargs.items() if k != "classes"})
        net = made.net
    else:
        net = io.sized_model(model, size, **model_kwargs)
    if freeze:
        finetune.freeze(net, freeze)
    built = model_info(net)
    chosen, size = size, built.input_size
    config.check_image_size(size, size)  # the data is loaded at that size
    dataset = datasets.load(data, size=size, val_size=val_split, seed=config.seed,
                            progress=progress, channels=built.in_channels)
    if not resume and "flip" not in settings and not dataset.hflip:
        print(f"{dataset.name}: horizontal flips change its labels, so they are off",
              file=sys.stderr, flush=True)
        config = dataclasses.replace(config, flip=False)
    if not resume:
        _warn_nothing_held_out(dataset)
        if chosen is None and dataset.resize and not made:
            print(f"gluonres: {dataset.name}: images resized to {size}x{size}, {model}'s "
                  "input size (shorter side, centre crop); pass --size N to train at "
                  "another size, e.g. the images' own", file=sys.stderr, flush=True)
        if not ("epochs" in settings or "iterations" in settings):
            config, said = default_length(config, len(dataset.train))
            if said:
                print(f"{dataset.name}: {said}", file=sys.stderr, flush=True)
    classes = model_kwargs.get("classes", len(dataset.classes))
    preprocess = None
    if made:
        made = finetune.retarget(made, classes)
        net, preprocess = made.net, made.preprocess
        print(f"gluonres: starting from {init_from}" + (f"; {made.note}" if made.note else ""),
              file=sys.stderr, flush=True)
    elif classes != built.classes:
        net = io.sized_model(model, size, **{**model_kwargs, "classes": classes})
        if freeze:
            finetune.freeze(net, freeze)
    history = fit(net, dataset, config, out_dir=out_dir, resume=resume, progress=progress,
                  callbacks=callbacks, eval_batch_size=eval_batch_size, preprocess=preprocess,
                  info={**(info or {}), "data": data, "val_split": val_split,
                        "init_weights": init_from, "freeze": freeze})
    return TrainRun(out_dir, data, history)


def _warn_nothing_held_out(dataset):
    """Warn when no image is held out: the run then reports no accuracy but training's."""
    if dataset.val is None and dataset.test is None:
        print(f"gluonres: warning: {dataset.name} has no test split and --val-split is not "
              "set, so no image is held out and the run reports only its training error; "
              "pass e.g. --val-split 20%", file=sys.stderr, flush=True)
