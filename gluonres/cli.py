"""The ``gluonres`` command line: subcommands that parse arguments and call the library.

Contract: with ``--json`` a subcommand prints exactly one JSON object as the last line
of standard output (progress and logs go to standard error); bad input prints one
message and exits with code 2.
"""
import argparse
import json
import os
import shlex
import sys


def emit(args, record, text=None):
    """Print ``text`` for people, or ``record`` as the last stdout line with ``--json``."""
    from gluonres._files import json_default
    if args.json:
        sys.stdout.write(json.dumps(record, default=json_default) + "\n")
    elif text is not None:
        sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def log(message):
    """Progress and status for people: always standard error."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- commands
def cmd_list(args):
    import gluonres
    names = gluonres.list_models(args.pattern)
    emit(args, {"models": names}, "\n".join(names))


def cmd_summary(args):
    import gluonres
    net = gluonres.get_model(args.model, **_model_kwargs(args))
    shape = (1, 3, args.size, args.size) if args.size else None
    s = gluonres.summary(net, shape)
    record = {"model": args.model, **s.to_dict()}
    emit(args, record, f"{args.model}  input {s.input_shape}\n{s}")


def _preprocess(args, meta, required=True):
    """--mean/--std if given, else the weights' recorded normalisation."""
    from gluonres import io
    from gluonres.data.preprocess import Preprocess
    from gluonres.errors import GluonresError

    if args.mean is not None or args.std is not None:
        return Preprocess(mean=args.mean, std=args.std)
    preprocess = io.preprocess_of(meta)
    if preprocess is None and required:
        raise GluonresError(f"{args.weights!r} does not record its input normalisation; pass "
                            "--mean R G B and --std R G B (in [0, 1] pixel units)")
    return preprocess


def cmd_train(args):
    import dataclasses

    import gluonres
    from gluonres import data
    from gluonres import train as training
    from gluonres._files import check_writable
    from gluonres.train import distributed

    out = args.out or os.path.join("runs", f"{args.model}-{_data_label(args.data or '')}-"
                                           f"{_stamp()}")
    if args.resume:
        if not args.out:
            raise gluonres.GluonresError("--resume needs --out, the folder of the run to "
                                         "continue")
        saved = training.checkpoint_meta(args.out)
        training.check_checkpoint_model(saved, args.model,
                                        os.path.join(args.out, training.CHECKPOINT))
        config = training.TrainConfig.from_dict(saved["config"])
        first = saved["history"]["info"]
        spec = args.data or first.get("data")
        val_split = args.val_split if args.val_split is not None else first.get("val_split", 0)
    else:
        if not args.data:
            raise gluonres.GluonresError("--data is required: 'digits', 'cifar10' or a path")
        config, spec, val_split = training.recipe(args.model), args.data, args.val_split or 0
        # before minutes of data loading
        training.check_new_run(out)
        check_writable(out)
    distributed.check_environment(args.kvstore or config.kvstore)
    overrides = {k: getattr(args, k) for k in _TRAIN_SETTINGS if getattr(args, k) is not None}
    if args.epochs is not None:
        overrides.update(epochs=args.epochs)
    elif args.iterations is not None:
        overrides.update(iterations=args.iterations, epochs=None)
    config = dataclasses.replace(config, **overrides)
    net_kwargs = _model_kwargs(args)
    size = gluonres.get_model(args.model, **net_kwargs).input_size
    dataset = data.load(spec, size=size, val_size=val_split, seed=config.seed,
                        progress=not args.no_progress)
    if not args.resume and args.flip is None and not dataset.hflip:
        log(f"{dataset.name}: horizontal flips change its labels, so they are off")
        config = dataclasses.replace(config, flip=False)
    net_kwargs.setdefault("classes", len(dataset.classes))
    net = gluonres.get_model(args.model, **net_kwargs)
    info = {"command": shlex.join(["gluonres", *args.argv]), "data": spec,
            "val_split": val_split}
    history = training.fit(net, dataset, config, out_dir=out, resume=args.resume,
                           progress=not args.no_progress, info=info)
    acc = history["test_accuracy"]
    record = {"out": out, "model": args.model, "data": spec,
              "epochs": len(history["epochs"]), "iterations": history["total_iterations"],
              "test_accuracy": acc, "selected_epoch": history["selected_epoch"],
              "train_img_s": history["train_img_s"], "wall_s": history["wall_s"],
              "files": history["files"], "weights_sha256": history["weights_sha256"],
              "workers": history["workers"]}
    head = (f"{args.model} on {spec}: "
            + (f"test accuracy {100 * acc:.2f}% " if acc is not None else "")
            + f"after {record['epochs']} epochs ({history['selection']}: epoch "
            f"{history['selected_epoch']}), {history['wall_s'] / 60:.1f} min, "
            f"{history['train_img_s']:.0f} img/s training")
    lines = [head, f"  {'run folder':<14} {out}" + ("" if history["files"] else
                                                    " (written by the worker of rank 0)")]
    lines += [f"  {k:<14} {v}" for k, v in history["files"].items()]
    emit(args, record, "\n".join(lines))


_TRAIN_SETTINGS = ("batch_size", "lr", "momentum", "wd", "schedule", "warmup", "normalize",
                   "seed", "kvstore", "flip", "pad")


def _data_label(spec):
    base = os.path.basename(os.path.normpath(spec))
    for ext in (".tar.gz", ".tgz", ".tar", ".rec"):
        base = base[:-len(ext)] if base.endswith(ext) else base
    return base or "data"


def _stamp():
    import time
    return time.strftime("%Y%m%d-%H%M%S")


def cmd_launch(args):
    from gluonres.errors import GluonresError
    from gluonres.train import distributed

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    result = distributed.launch(command, args.workers, args.servers, port=args.port,
                                timeout=args.timeout)
    failed, codes = result["failed"], result["exit_codes"]
    if failed:
        code = codes.get(failed)
        what = (f"{failed} exited with code {code}" if failed in codes else failed)
        message = (f"{what}; every other process was stopped (see the [{failed}] lines above "
                   "for its message); fix that and launch again")
        if code == 2:  # a worker refused its input: the launch was given bad input
            raise GluonresError(message)
        # a crash, a signal or the timeout: not bad input, so not exit code 2
        log(f"gluonres: error: {message}")
        return code if code and code > 0 else 1
    records = {}
    for name, line in result["outputs"].items():
        try:
            records[name] = json.loads(line)
        except (TypeError, ValueError):
            records[name] = line
    record = {"workers": args.workers, "servers": args.servers, "port": result["port"],
              "exit_codes": codes, "outputs": records}
    emit(args, record, "\n".join(f"{name}: {line}" for name, line in
                                 result["outputs"].items()))


def cmd_evaluate(args):
    import mxnet as mx

    import gluonres
    from gluonres import data, io
    from gluonres.analysis import evaluation
    from gluonres.errors import DataError

    meta = io.read_weights(args.weights)[1]
    kwargs = _model_kwargs(args)
    if "classes" in meta:
        kwargs.setdefault("classes", len(meta["classes"]))
    net = gluonres.get_model(args.model, **kwargs)
    io.load_weights(net, args.weights)
    preprocess = _preprocess(args, meta)
    dataset = data.load(args.data, size=net.input_size, progress=not args.json)
    split, which = (dataset.test, "test") if dataset.test is not None else (dataset.train,
                                                                            "all images")
    if "classes" in meta and meta["classes"] != split.classes:
        raise DataError(f"{args.weights!r} was trained on classes {meta['classes']}, but "
                        f"{args.data!r} has {split.classes}; evaluate on data with the same "
                        "classes")
    net.hybridize(static_alloc=True, static_shape=True)
    result = evaluation.evaluate(net, split, preprocess, class_names=split.classes,
                                 batch_size=args.batch_size, ctx=mx.cpu(),
                                 progress=not args.json)
    result.pop("predictions")
    record = {"model": args.model, "weights": args.weights, "data": args.data, "split": which,
              **result}
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        record["confusion_png"] = os.path.join(args.out, "confusion.png")
        evaluation.plot_confusion(result["confusion"], split.classes, record["confusion_png"],
                                  title=f"{args.model}: {100 * result['accuracy']:.2f}% correct")
    lines = [f"{args.model} on {args.data} ({which}): accuracy {100 * result['accuracy']:.2f}% "
             f"(error {result['error_pct']:.2f}%, {result['samples']} images)"]
    lines += [f"  {c:<12} {100 * a:6.2f}%" for c, a in result["per_class"].items()]
    if args.out:
        lines.append(f"  confusion matrix: {record['confusion_png']}")
    emit(args, record, "\n".join(lines))


def cmd_data_pack(args):
    from gluonres import data
    result = data.pack_recordio(args.source, args.out, progress=not args.json)
    emit(args, result, "\n".join([f"packed {args.source} into {args.out}: "
                                  + ", ".join(f"{k} {v} images" for k, v in
                                              result["splits"].items())]
                                 + [f"  {f}" for f in result["files"]]))


def cmd_data_info(args):
    import numpy as np

    from gluonres import data
    d = data.load(args.data, size=args.size, val_size=args.val_split or 0,
                  progress=not args.json)
    info = d.describe()
    counts = {name: np.bincount(split.labels, minlength=len(d.classes)).tolist()
              for name, split in (("train", d.train), ("val", d.val), ("test", d.test))
              if split is not None}
    info["per_class"] = counts
    lines = [f"{d.name}: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items())
             + f" images of {'x'.join(map(str, info['image_shape']))}, "
             f"{len(d.classes)} classes"]
    lines += [f"  {c:<14} " + "  ".join(f"{k} {v[i]}" for k, v in counts.items())
              for i, c in enumerate(d.classes)]
    if "note" in info:
        lines.append(f"  note: {info['note']}")
    emit(args, info, "\n".join(lines))


def cmd_data_bench(args):
    import dataclasses

    import gluonres
    from gluonres import data
    from gluonres import train as training
    net = gluonres.get_model(args.model, **_model_kwargs(args))
    dataset = data.load(args.data, size=net.input_size, progress=not args.json)
    config = dataclasses.replace(training.recipe(args.model), batch_size=args.batch_size,
                                 flip=dataset.hflip)
    from gluonres.measure.train_timing import throughput
    result = throughput(net, dataset, config, iterations=args.iterations,
                       rounds=args.rounds, progress=not args.json)
    emit(args, result,
         f"{args.model} training, batch {args.batch_size}, {args.rounds} alternating rounds "
         f"of {args.iterations} real and {args.iterations} synthetic iterations:\n"
         f"  real data ({dataset.name}, augmented)  {result['real_img_s']:.0f} img/s\n"
         f"  synthetic input                  {result['synthetic_img_s']:.0f} img/s\n"
         f"  ratio real/synthetic             {result['ratio']:.3f}")


def cmd_record(args):
    from gluonres.measure import records as results
    paths = results.record_run(args.run_dir, args.name, args.results, bench=args.bench,
                               force=args.force)
    emit(args, paths, "\n".join(f"{k:<8} {v}" for k, v in paths.items()))


def _load_for_export(args):
    """The model with --weights loaded (or freshly initialised), its metadata, provenance."""
    import gluonres
    from gluonres import io
    from gluonres._files import sha256_of
    from gluonres.models.init import he_initialize

    net = gluonres.get_model(args.model, **_model_kwargs(args))
    if not args.weights:
        log(f"no --weights given: exporting {args.model} with fresh He-initialised weights "
            f"(seed {args.seed}); the manifest records no preprocessing")
        he_initialize(net, args.seed)
        return net, {}, {"weights": None, "init": f"He (MSRA, fan-in) normal, seed {args.seed}"}
    meta = io.load_weights(net, args.weights)
    return net, meta, {"weights": os.path.abspath(args.weights),
                       "weights_sha256": sha256_of(args.weights)}


def _calibration(args, root, net):
    from gluonres import deploy
    from gluonres.deploy import quantize

    log(f"picking {args.calib_images} calibration images from {root} (seed {args.calib_seed})")
    return quantize.calibration_images(root, args.calib_images, args.calib_seed,
                                       deploy.image_spec(net.input_size), args.calib_mode)


def cmd_export(args):
    from gluonres import data, deploy
    from gluonres.errors import GluonresError

    calib_root = None
    if args.int8:
        if not args.calib_data:
            raise GluonresError("--int8 needs --calib-data DIR, an image folder (with a train/ "
                                "split) to calibrate the int8 ranges on")
        calib_root = data.resolve_root(args.calib_data)  # a bad path fails before any work
    net, meta, source = _load_for_export(args)
    preprocess = _preprocess(args, meta, required=bool(args.weights))
    calibration = _calibration(args, calib_root, net) if args.int8 else None
    shape = (args.batch, 3, net.input_size, net.input_size)
    paths = deploy.export(net, args.out, args.model, shape, preprocess=preprocess,
                          classes=deploy.default_classes(net, meta), onnx=args.onnx,
                          calibration=calibration, source=source)
    emit(args, {"model": args.model, **paths},
         "\n".join(f"{k:<12} {v}" for k, v in paths.items()))


def cmd_predict(args):
    # the runtime only: an export runs without gluonres's model code
    from gluonres.deploy import runtime

    exported = runtime.load_exported(args.folder, "int8" if args.int8 else "fp32")
    predictions = exported.predict(args.images, top_k=args.top_k)
    record = {"folder": args.folder, "model": exported.manifest["model"],
              "variant": exported.variant, "predictions": predictions}
    lines = []
    for p in predictions:
        best = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in p["top_k"])
        lines.append(f"{p['image']}: {best}")
    emit(args, record, "\n".join(lines))


def cmd_int8_bench(args):
    import tempfile

    from gluonres import data, deploy
    from gluonres.measure import int8

    root = data.resolve_root(args.data)
    if args.docs:
        int8.docs_table_slot(args.docs, args.model)  # fail before minutes of work
    net, meta, source = _load_for_export(args)
    preprocess = _preprocess(args, meta)
    calibration = _calibration(args, root, net)
    with tempfile.TemporaryDirectory(prefix="gluonres-int8-") as tmp:
        folder = args.export_dir or tmp
        log(f"exporting the FP32 and INT8 graphs to {folder}")
        deploy.export(net, folder, args.model, preprocess=preprocess,
                      classes=deploy.default_classes(net, meta), calibration=calibration,
                      source=source)
        log(f"measuring accuracy on {args.data} and throughput at batch {args.batch}")
        record = int8.compare(folder, root, batch_size=args.batch,
                              repeats=args.repeats, progress=not args.json)
    record = {"model": args.model, **source, **record,
              "command": "gluonres " + " ".join(args.argv)}
    record["written"] = int8.write_report(record, args.out, docs=args.docs)
    emit(args, record, int8.report_table(record))


def cmd_backbones(args):
    from gluonres.experiments import backbones

    if args.train:
        command = shlex.join(["gluonres", *[a for a in args.argv if a != "--json"]])
        record = backbones.run(args.scale, data=args.data, out=args.out,
                               models=args.models or backbones.TRAIN_MODELS, force=args.force,
                               command=command, progress=not args.json)
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
    from gluonres import experiments
    from gluonres.experiments import records

    names = list(experiments.EXPERIMENTS) if args.names == ["all"] else args.names
    for name in names:  # every name and record path is checked before anything runs
        experiments.get(name)
    records.check_new_records(names, args.scale, args.out, args.force)
    command = shlex.join(["gluonres", *[a for a in args.argv if a != "--json"]])
    done, text = [], []
    for name in names:
        record = experiments.reproduce(name, args.scale, data=args.data, out=args.out,
                                       work=args.work, progress=not args.no_progress,
                                       force=args.force, command=command)
        path = os.path.join(args.out, f"{name}-{args.scale}.json")
        module = experiments.get(name)
        done.append({"record": path, "experiment": name, "scale": args.scale,
                     "runs": record["runs"], "wall_s": record["wall_s"],
                     "training_s": record["training_s"], "claims": record.get("claims")})
        text.append(f"{module.TITLE} ({args.scale} scale)\n{module.table(record)}\n"
                    f"record: {path}  ({record['wall_s'] / 60:.1f} min)")
        log(f"wrote {path}")
    emit(args, {"experiments": done}, "\n\n".join(text))


def cmd_report(args):
    from gluonres._files import write_text
    from gluonres.experiments.report import results_page

    page = results_page(args.results)
    if args.out:
        write_text(args.out, page)
    emit(args, {"out": args.out, "chars": len(page)},
         f"wrote {args.out}" if args.out else page)


def cmd_bench(args):
    from gluonres._files import json_default, write_text
    from gluonres.measure import bench

    models = args.models or ["resnet56_cifar"]
    record = bench.run(models, batch=args.batch, repeats=args.repeats, warmup=args.warmup,
                       iters=args.iters, peers_python=args.peers_python,
                       real_data=args.real_data,
                       progress=lambda name, r, n: log(f"{name}: repeat {r}/{n}"))
    if args.memory:
        mbatch = args.memory_batch or args.batch
        log(f"memory: {args.memory} at batch {mbatch}, ordinary vs checkpointed step")
        from gluonres.measure.memory import memory
        record["memory"] = memory(args.memory, mbatch, args.memory_steps)
    text = bench.table(record)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        record["command"] = shlex.join(["gluonres", *[a for a in args.argv if a != "--json"]])
        write_text(args.out, json.dumps(record, indent=1, default=json_default) + "\n")
        write_text(os.path.splitext(args.out)[0] + ".md", text + "\n")
        log(f"wrote {args.out} and its .md table")
    emit(args, record, text)


# ---------------------------------------------------------------------------- parser
def _model_kwargs(args):
    kwargs = {}
    for key in ("classes", "shortcut"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def _count_or_fraction(text):
    value = float(text)
    if value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a count (5000) nor a fraction "
                                         "in (0, 1) (0.1)")
    return value if value < 1 else int(value)


def _add_model_options(p):
    p.add_argument("model", help="registered model name (see `gluonres list`)")
    p.add_argument("--classes", type=int, help="output classes (default: the model's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"],
                   help="shortcut option (default: the family's)")


def _add_normalisation_options(p):
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"),
                   help="override the per-channel mean (pixels in [0, 1])")
    p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"),
                   help="override the per-channel std")


def _add_calibration_options(p):
    from gluonres.deploy.quantize import CALIB_IMAGES, CALIB_MODE, CALIB_SEED

    p.add_argument("--calib-images", type=int, default=CALIB_IMAGES,
                   help=f"calibration images, picked at random (default {CALIB_IMAGES})")
    p.add_argument("--calib-seed", type=int, default=CALIB_SEED,
                   help=f"seed of that pick (default {CALIB_SEED})")
    p.add_argument("--calib-mode", choices=["naive", "entropy"], default=CALIB_MODE,
                   help="int8 ranges from min/max (naive) or minimal KL divergence (entropy)")


def build_parser():
    from gluonres.train import distributed

    parser = argparse.ArgumentParser(prog="gluonres", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line of standard output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*_cifar'")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("summary", parents=[common],
                       help="per-stage shapes, parameters and multiply-adds")
    _add_model_options(p)
    p.add_argument("--size", type=int,
                   help="input height/width (default: the model's own, e.g. 32 CIFAR, 224 "
                        "ImageNet, 299 Inception-v3)")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("backbones", parents=[common],
                       help="classic backbones vs ResNets: shapes, params, mult-adds, speed")
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
    p.set_defaults(run=cmd_backbones)

    p = sub.add_parser("reproduce", parents=[common],
                       help="re-make a paper section's experiment; writes results/NAME-SCALE.json")
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
    p.add_argument("--no-progress", action="store_true", help="no progress bars or epoch lines")
    p.set_defaults(run=cmd_reproduce)

    p = sub.add_parser("report", parents=[common],
                       help="the results page (markdown) from the records in results/")
    p.add_argument("--results", default="results", help="records folder (default results)")
    p.add_argument("--out", help="write the page here (e.g. docs/results.md) instead of "
                   "printing it")
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("train", parents=[common],
                       help="train a model with the papers' recipe (checkpoints, logs, export)")
    _add_model_options(p)
    p.add_argument("--data", help="'digits' (embedded, offline), 'cifar10' (gluon, downloads), "
                   "an image-folder root or .tar.gz, a folder of class folders, or RecordIO")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int,
                        help="train whole epochs, compressing the schedule proportionally")
    length.add_argument("--iterations", type=int, help="total updates (default: 64000)")
    p.add_argument("--batch-size", type=int, help="default 128")
    p.add_argument("--lr", type=float, help="initial learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, help="default 0.9")
    p.add_argument("--wd", type=float, help="weight decay (default 1e-4)")
    p.add_argument("--schedule", choices=["step", "cosine"],
                   help="step: /10 at 50%% and 75%% of the run (the paper); cosine: anneal to 0")
    p.add_argument("--warmup", choices=["none", "error", "fixed"],
                   help="lr 0.01 until training error < 80%% (error) or for 400 iterations "
                   "(fixed); default: the paper's choice for the model")
    p.add_argument("--normalize", choices=["pixel", "channel"],
                   help="per-pixel mean (the paper, default) or per-channel mean/std")
    p.add_argument("--pad", type=int, help="padding before the random crop (default 4)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips (default: on, off for digits)")
    p.add_argument("--val-split", type=_count_or_fraction,
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
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("launch", parents=[common],
                       help="run a command as parameter-server workers on 127.0.0.1")
    p.add_argument("-n", "--workers", type=int, required=True, help="worker processes")
    p.add_argument("-s", "--servers", type=int, default=1, help="server processes (default 1)")
    p.add_argument("--port", type=int, help="scheduler port (default: a free one)")
    p.add_argument("--timeout", type=float, help="stop everything after SECONDS")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="after --: the worker command, e.g. gluonres train resnet20_cifar "
                   "--data digits --kvstore dist_sync")
    p.set_defaults(run=cmd_launch)

    p = sub.add_parser("evaluate", parents=[common],
                       help="accuracy, per-class accuracy and confusion matrix of weights")
    _add_model_options(p)
    p.add_argument("--weights", required=True,
                   help="gluonres .params, exported NAME-0000.params or reference .npz")
    p.add_argument("--data", required=True,
                   help="as for train; its test split (or every image of a single-split folder)")
    _add_normalisation_options(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", help="folder for confusion.png")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("data", help="pack, inspect and benchmark datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = data_sub.add_parser("pack", parents=[common],
                            help="convert an image folder to RecordIO (.rec/.idx per split)")
    q.add_argument("source", help="image-folder root (or .tar.gz) or folder of class folders")
    q.add_argument("--out", required=True, help="new or empty output folder")
    q.set_defaults(run=cmd_data_pack)
    q = data_sub.add_parser("info", parents=[common], help="splits, classes, images per class")
    q.add_argument("data", help="as for train --data")
    q.add_argument("--size", type=int, help="bring images to SIZE x SIZE")
    q.add_argument("--val-split", type=_count_or_fraction)
    q.set_defaults(run=cmd_data_info)
    q = data_sub.add_parser("bench", parents=[common],
                            help="training img/s with real data against synthetic input")
    _add_model_options(q)
    q.add_argument("--data", required=True, help="as for train --data")
    q.add_argument("--batch-size", type=int, default=128)
    q.add_argument("--iterations", type=int, default=5, help="steps per block")
    q.add_argument("--rounds", type=int, default=12,
                   help="rounds of one real and one synthetic block")
    q.set_defaults(run=cmd_data_bench)

    p = sub.add_parser("record", parents=[common],
                       help="turn a finished run folder into a results/ record")
    p.add_argument("run_dir", metavar="RUN", help="the run folder (train --out)")
    p.add_argument("--name", required=True, help="record name, e.g. resnet20_cifar-cifar10jpg")
    p.add_argument("--results", default="results", help="results folder (default results)")
    p.add_argument("--bench", help="JSON output of `gluonres data bench --json` to include")
    p.add_argument("--force", action="store_true", help="replace an existing record")
    p.set_defaults(run=cmd_record)

    p = sub.add_parser("export", parents=[common],
                       help="export symbol/params + manifest (and ONNX, INT8) for deployment")
    _add_model_options(p)
    p.add_argument("--weights", help="weights to export (default: fresh initialisation)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch", type=int, default=1, help="batch size of the traced graph")
    p.add_argument("--seed", type=int, default=0, help="seed for fresh weights")
    _add_normalisation_options(p)
    p.add_argument("--onnx", action="store_true", help="also write NAME.onnx (dynamic batch)")
    p.add_argument("--int8", action="store_true",
                   help="also write a oneDNN INT8 graph, calibrated on --calib-data")
    p.add_argument("--calib-data",
                   help="image folder (or .tar.gz) whose train/ split calibrates --int8")
    _add_calibration_options(p)
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("predict", parents=[common],
                       help="classify images with an exported folder only (no model code)")
    p.add_argument("folder", help="folder written by `gluonres export`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image")
    p.add_argument("--int8", action="store_true", help="run the INT8 graph (export --int8)")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("int8-bench", parents=[common],
                       help="FP32 vs INT8: test accuracy and throughput, side by side")
    _add_model_options(p)
    p.add_argument("--weights", required=True, help="trained weights")
    p.add_argument("--data", required=True,
                   help="image-folder root with train/ (calibration) and test/ splits")
    _add_normalisation_options(p)
    _add_calibration_options(p)
    p.add_argument("--batch", type=int, default=64, help="throughput batch size")
    p.add_argument("--repeats", type=int, default=7,
                   help="timed repeats per graph; the median is reported")
    p.add_argument("--out", default="results", help="folder for int8-MODEL.json and .md")
    p.add_argument("--docs", help="markdown file whose int8 table to update in place")
    p.add_argument("--export-dir", help="keep the export here (default: a temporary folder)")
    p.set_defaults(run=cmd_int8_bench)

    p = sub.add_parser("bench", parents=[common],
                       help="side-by-side speed: hybridized, imperative, GluonCV, ONNX "
                            "Runtime, INT8, OpenVINO, PyTorch")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registered models (default: resnet56_cifar)")
    p.add_argument("--batch", type=int, default=128, help="throughput batch size")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per variant")
    p.add_argument("--iters", type=int, default=2, help="calls per timed sample")
    p.add_argument("--peers-python",
                   help="interpreter with torch/openvino for the optional peers (default: "
                        ".venv-peers/bin/python from `make peers`); a missing one skips them "
                        "with a note")
    p.add_argument("--real-data", metavar="DATA",
                   help="also time the training step fed by the training pipeline with DATA "
                        "(cifar10, digits or a path, e.g. ../shared/data/cifar10-jpg.tar.gz)")
    p.add_argument("--memory", metavar="MODEL",
                   help="also measure peak memory of MODEL's training step, ordinary vs "
                        "checkpointed (e.g. resnet1202_cifar; each in its own process)")
    p.add_argument("--memory-batch", type=int, help="batch of the memory runs (default: --batch)")
    p.add_argument("--memory-steps", type=int, default=3, help="steps per memory run")
    p.add_argument("--out", help="write the record (JSON) and its table (.md) here")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv=None):
    from gluonres.errors import GluonresError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args) or 0
    except GluonresError as err:
        print(f"gluonres: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
