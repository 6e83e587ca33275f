"""``gluonres train``, ``launch`` and ``record``: training runs, parameter-server workers
and results records."""
import argparse
import os
import shlex

from gluonres.cli._common import (add_command, add_model_options, add_size_option,
                                  count_or_fraction, emit, log, model_kwargs, stopped)


# TrainConfig fields that `gluonres train` takes as options of the same name
_SETTINGS = ("batch_size", "lr", "momentum", "wd", "schedule", "warmup", "normalize", "seed",
             "kvstore", "flip", "pad", "epochs", "iterations", "optimizer", "label_smoothing")


def add_parsers(sub):
    from gluonres.train import config, distributed

    p = add_command(sub, "train", cmd_train,
                    "train a model with the papers' recipe (checkpoints, logs, export)")
    add_model_options(p)
    add_size_option(p, "the model's input size (a resumed run: its own); recorded with the "
                    "weights, so evaluate and export need not repeat it")
    p.add_argument("--init-weights", metavar="WEIGHTS",
                   help="start from trained weights (fine-tuning): a .params/.npz file, "
                   "'pretrained' (the weights shipped with gluonres: `gluonres list "
                   "--pretrained`) or gluoncv:NAME[=FILE] (e.g. gluoncv:resnet50_v1b); a "
                   "classifier for other classes is re-initialised; their normalisation is kept")
    p.add_argument("--freeze", metavar="PART",
                   help="do not train the network up to PART: stem, stage1, stage2 ... (ResNets) "
                   "or features (everything but the classifier); docs/finetuning.md")
    p.add_argument("--recipe", choices=list(config.RECIPES),
                   help="paper: the 2015 paper's CIFAR recipe (default); fast: 20 epochs of "
                   "Nesterov SGD, linear warm-up and decay, wd 5e-4, label smoothing 0.1 "
                   "(docs/training.md); the options below override either")
    p.add_argument("--data", help="'digits' (embedded, offline), 'cifar10' (gluon, downloads), "
                   "an image-folder root or .tar.gz, a folder of class folders, or RecordIO")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int,
                        help="train whole epochs, compressing the schedule proportionally")
    length.add_argument("--iterations", type=int, help="total updates (default: 64000)")
    p.add_argument("--batch-size", type=int, help="default 128")
    p.add_argument("--eval-batch-size", type=int, metavar="N",
                   help="images per forward pass of the per-epoch evaluation (default: 256, or "
                   "fewer where the model's activations would not fit a quarter of the free "
                   "memory); does not change the training")
    p.add_argument("--lr", type=float, help="initial learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, help="default 0.9")
    p.add_argument("--wd", type=float, help="weight decay (default 1e-4)")
    p.add_argument("--optimizer", choices=config.OPTIMIZERS,
                   help="sgd (default), nag (Nesterov momentum) or adam")
    p.add_argument("--label-smoothing", type=float, metavar="EPS",
                   help="mix EPS of the uniform distribution into the targets (default 0)")
    p.add_argument("--schedule", choices=config.SCHEDULES,
                   help="step: /10 at 50%% and 75%% of the run (the paper); cosine: anneal to "
                   "0; linear: decay linearly to 0")
    p.add_argument("--warmup", choices=config.WARMUPS,
                   help="lr 0.01 until training error < 80%% (error), for 400 iterations "
                   "(fixed), or rising linearly to --lr (linear); default: the recipe's, for "
                   "paper the paper's choice for the model")
    p.add_argument("--normalize", choices=["pixel", "channel"],
                   help="per-pixel mean (the paper, default) or per-channel mean/std")
    p.add_argument("--pad", type=int, help="padding before the random crop (default 4)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips (default: on, off for digits)")
    p.add_argument("--val-split", type=count_or_fraction,
                   help="hold out N training images (or a fraction) to select the best epoch, "
                   "e.g. 5000 for the paper's 45k/5k split")
    p.add_argument("--seed", type=int, help="weights, data order, augmentation (default 0)")
    p.add_argument("--kvstore", choices=distributed.KVSTORES,
                   help="local (default; device is the same on one CPU), or dist_sync / "
                   "dist_async as a worker of `gluonres launch` (MXNet's parameter server)")
    p.add_argument("--out", help="run folder (default runs/MODEL-DATA-TIME)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or epoch lines")

    p = add_command(sub, "launch", cmd_launch,
                    "run a command as parameter-server workers on 127.0.0.1")
    p.add_argument("-n", "--workers", type=int, required=True, help="worker processes")
    p.add_argument("-s", "--servers", type=int, default=1, help="server processes (default 1)")
    p.add_argument("--port", type=int, help="scheduler port (default: a free one)")
    p.add_argument("--timeout", type=float, help="stop everything after SECONDS")
    p.add_argument("--stall-timeout", type=float, metavar="SECONDS",
                   help="stop everything when no worker reported progress for SECONDS (0: "
                   f"never; default {distributed.STALL_FLOOR_S:.0f}, or "
                   f"{distributed.STALL_SCALE}x the longest wait between two steps if longer)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="after --: the worker command, e.g. gluonres train resnet20_cifar "
                   "--data digits --kvstore dist_sync")

    p = add_command(sub, "record", cmd_record,
                    "turn a finished run folder into a results/ record")
    p.add_argument("run_dir", metavar="RUN", help="the run folder (train --out)")
    p.add_argument("--name", required=True, help="record name, e.g. resnet20_cifar-cifar10jpg")
    p.add_argument("--results", default="results", help="results folder (default results)")
    p.add_argument("--bench", help="JSON output of `gluonres data bench --json` to include")
    p.add_argument("--force", action="store_true", help="replace an existing record")


def cmd_train(args):
    from gluonres._files import stop_on_signals
    from gluonres.deploy.exporter import ExportCallback
    from gluonres.train.run import default_out_dir, train_model

    out_dir = args.out
    if not out_dir and not args.resume and args.data:  # named here for the message on a stop
        out_dir = default_out_dir(args.model, args.data)
    try:
        with stop_on_signals():
            out, spec, history = train_model(
                args.model, args.data, out_dir, resume=args.resume, val_split=args.val_split,
                recipe=args.recipe,
                model_kwargs=model_kwargs(args),
                info={"command": shlex.join(["gluonres", *args.argv])},
                progress=not args.no_progress, callbacks=[ExportCallback()],
                eval_batch_size=args.eval_batch_size, size=args.size,
                init_weights=args.init_weights, freeze=args.freeze,
                **{k: getattr(args, k) for k in _SETTINGS})
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: not bad input, not a bug
        return stopped(err, _kept(args, out_dir))
    acc = history["test_accuracy"]
    record = {"out": out, "model": args.model, "data": spec,
              "epochs": len(history["epochs"]), "iterations": history["total_iterations"],
              "test_accuracy": acc, "val_accuracy": history["val_accuracy"],
              "selected_epoch": history["selected_epoch"],
              "train_img_s": history["train_img_s"], "wall_s": history["wall_s"],
              "files": history["files"], "weights_sha256": history["weights_sha256"],
              "workers": history["workers"]}
    scores = [f"{name} accuracy {100 * value:.2f}%" for name, value in
              (("test", acc), ("validation", history["val_accuracy"])) if value is not None]
    head = (f"{args.model} on {spec}: " + "".join(f"{s}, " for s in scores)
            + f"after {record['epochs']} epochs ({history['selection']}: epoch "
            f"{history['selected_epoch']}), {history['wall_s'] / 60:.1f} min, "
            f"{history['train_img_s']:.0f} img/s training")
    lines = [head, f"  {'run folder':<14} {out}" + ("" if history["files"] else
                                                    " (written by the worker of rank 0)")]
    lines += [f"  {k:<14} {v}" for k, v in history["files"].items()]
    emit(args, record, "\n".join(lines))


def _kept(args, out_dir):
    """What a stopped run leaves, and how to continue it."""
    from gluonres.train.checkpoints import CheckpointStore

    newest = CheckpointStore(out_dir).newest() if out_dir else None
    if newest is None:
        return "no epoch had finished, so there is no checkpoint: run the command again"
    path = os.path.join(out_dir, newest["file"])
    return (f"the last checkpoint {path!r} (epoch {newest['epoch']}) is kept; continue with "
            f"`gluonres train {args.model} --resume --out {shlex.quote(out_dir)}`")


def cmd_launch(args):
    from gluonres.train import distributed

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        record, lines = distributed.launch(command, args.workers, args.servers, port=args.port,
                                           timeout=args.timeout,
                                           stall_timeout=args.stall_timeout)
    except distributed.LaunchFailed as err:  # not bad input: the failed process's exit code
        log(f"gluonres: error: {err}")
        return err.exit_code
    emit(args, record, "\n".join(f"{name}: {line}" for name, line in lines.items()))


def cmd_record(args):
    from gluonres.measure import records as results
    paths = results.record_run(args.run_dir, args.name, args.results, bench=args.bench,
                               force=args.force)
    emit(args, paths, "\n".join(f"{k:<8} {v}" for k, v in paths.items()))
