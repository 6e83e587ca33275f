"""``gluonres backbones``, ``reproduce`` and ``report``: the papers' experiments and the
results page."""
from gluonres.cli._common import add_command, command_line, emit, stopped


def add_parsers(sub):
    p = add_command(sub, "backbones", cmd_backbones,
                    "classic backbones vs ResNets: shapes, params, mult-adds, speed")
    p.add_argument("models", nargs="*",
                   help="registered names (default: LeNet-5 ... EfficientNet-B1 and two "
                   "ResNets; with --train the nine of the training comparison)")
    p.add_argument("--no-throughput", action="store_true",
                   help="skip the CPU forward timing (counts only, seconds instead of minutes)")
    p.add_argument("--batch-size", type=int, default=8, help="batch of the timed passes")
    p.add_argument("--warmup", type=int, default=2, help="untimed passes before timing")
    p.add_argument("--repeats", type=int, default=5, help="timed passes (median reported)")
    p.add_argument("--train", action="store_true",
                   help="instead: train the backbones with one budget on real data and write "
                   "results/backbones-SCALE.json (with the table; timed at scale cpu)")
    p.add_argument("--scale", choices=["smoke", "cpu"], default="smoke",
                   help="with --train: smoke (seconds, digits) or cpu (about 45 min on 2 "
                   "cores; needs --data)")
    p.add_argument("--data", help="with --train: dataset, e.g. "
                   "../shared/data/cifar10-jpg.tar.gz (default at scale smoke: digits)")
    p.add_argument("--out", default="results", help="with --train: records folder")
    p.add_argument("--force", action="store_true",
                   help="with --train: replace an existing record")

    p = add_command(sub, "reproduce", cmd_reproduce,
                    "re-make a paper section's experiment; writes results/NAME-SCALE.json")
    from gluonres.experiments import EXPERIMENTS
    p.add_argument("names", nargs="+", choices=[*EXPERIMENTS, "all"], metavar="NAME",
                   help="experiments, run one after another in one process (the data is "
                   "decoded once): " + ", ".join(EXPERIMENTS) + ", or all")
    p.add_argument("--scale", choices=["smoke", "cpu", "paper"], default="smoke",
                   help="smoke: seconds, proves the pipeline (default); cpu: real CIFAR-10 "
                   "runs sized for 2 cores; paper: the papers' full recipe")
    p.add_argument("--data", help="training data (required for cpu and paper): the CIFAR-10 "
                   "image folder or .tar.gz, or 'cifar10'; smoke defaults to 'digits'")
    p.add_argument("--out", default="results",
                   help="results folder; finished runs are kept in OUT/runs/SCALE/")
    p.add_argument("--work", help="run folders with checkpoints (default runs/reproduce); "
                   "an interrupted run resumes from there")
    p.add_argument("--force", action="store_true",
                   help="replace an existing record (finished runs are reused)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                   help="train the comparison runs (degradation's ResNet-18 pair, shortcuts, "
                   "identity) once per seed; the record gives per-seed values, mean and sd "
                   "(default: 0; the data subset stays the same)")
    # not choices=runs.BUDGETS: that module loads MXNet, and parsing stays light; the
    # runner refuses other values, naming these
    p.add_argument("--budget", default="quick",
                   help="length of the comparison runs: quick (the scale's quick runs; cpu: "
                   "3 epochs, 117 updates, the default) or full (the scale's length; cpu: 10 "
                   "epochs, 390 updates)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or epoch lines")

    p = add_command(sub, "report", cmd_report,
                    "the results page (markdown) from the records in results/")
    p.add_argument("--results", default="results", help="records folder (default results)")
    p.add_argument("--out", help="write the page here (e.g. docs/results.md) instead of "
                   "printing it")


def cmd_backbones(args):
    from gluonres.experiments import backbones

    if args.train:
        record = backbones.run(args.scale, data=args.data, out=args.out,
                               models=args.models or backbones.TRAIN_MODELS, force=args.force,
                               command=command_line(args), progress=not args.json)
        path = backbones.record_path(args.scale, args.out)
        text = backbones.format_comparison(record)
        if record["table"]["settings"]["throughput"]:
            text += "\n\n" + backbones.format_table(record["table"])
        emit(args, {"record": path, "scale": args.scale, "wall_s": record["wall_s"],
                    "models": [{k: r.get(k) for k in ("model", "input_size", "params",
                                                      "test_accuracy", "train_img_s")}
                               for r in record["models"]]},
             f"{text}\nrecord: {path} ({record['wall_s'] / 60:.1f} min)")
        return
    models = args.models or backbones.DEFAULT_MODELS
    record = backbones.backbone_table(models, throughput=not args.no_throughput,
                                      batch_size=args.batch_size, warmup=args.warmup,
                                      repeats=args.repeats, progress=not args.json)
    emit(args, record, backbones.format_table(record))


def cmd_reproduce(args):
    from gluonres._files import stop_on_signals
    from gluonres.experiments import reproduce_many

    try:
        with stop_on_signals():
            done, texts = reproduce_many(args.names, args.scale, data=args.data, out=args.out,
                                         work=args.work, progress=not args.no_progress,
                                         force=args.force, command=command_line(args),
                                         seeds=args.seeds, budget=args.budget)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: not bad input, not a bug
        return stopped(err, _reproduce_kept(args))
    emit(args, {"experiments": done}, "\n\n".join(texts))


def _reproduce_kept(args):
    """What a stopped ``reproduce`` leaves, and how to continue it."""
    from gluonres.experiments.runs import checkpoint_dir, finished_dir
    from gluonres.experiments.scales import get_scale

    if not get_scale(args.scale).checkpoints:
        where = f"{args.scale} scale keeps no checkpoints, so an unfinished run starts over"
    else:
        where = ("an unfinished run resumes from its last checkpoint under "
                 f"{checkpoint_dir(args.work, args.scale)}")
    return (f"finished runs are kept in {finished_dir(args.out, args.scale)} and reused, "
            f"{where}; continue with `{command_line(args)}`")


def cmd_report(args):
    import os

    from gluonres._files import check_writable, write_text
    from gluonres.errors import GluonresError
    from gluonres.experiments.report import results_page

    folder = os.path.dirname(os.path.abspath(args.out)) if args.out else None
    if args.out:  # checked before the page is built
        if os.path.isdir(args.out):
            raise GluonresError(f"cannot write to --out {args.out!r} (it is a folder); pass "
                                "the page's file name, e.g. docs/results.md")
        check_writable(folder)
    page = results_page(args.results)
    if args.out:
        os.makedirs(folder, exist_ok=True)
        write_text(args.out, page)
    emit(args, {"out": args.out, "chars": len(page)},
         f"wrote {args.out}" if args.out else page)
