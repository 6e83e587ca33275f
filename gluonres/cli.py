"""The ``gluonres`` command line: subcommands that parse arguments and call the library.

Contract: with ``--json`` a subcommand prints exactly one JSON object as the last line
of standard output (progress and logs go to standard error); bad input prints one
message and exits with code 2.
"""
import argparse
import json
import os
import sys


def _json_default(obj):
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def emit(args, record, text=None):
    """Print ``text`` for people, or ``record`` as the last stdout line with ``--json``."""
    if args.json:
        sys.stdout.write(json.dumps(record, default=_json_default) + "\n")
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


def cmd_evaluate(args):
    import mxnet as mx

    import gluonres
    from gluonres import data, evaluation, io
    from gluonres.preprocess import Preprocess

    net = gluonres.get_model(args.model, **_model_kwargs(args))
    meta = io.load_weights(net, args.weights)
    preprocess = io.preprocess_of(meta)
    if args.mean is not None or args.std is not None:
        preprocess = Preprocess(mean=args.mean, std=args.std)
    if preprocess is None:
        from gluonres.errors import GluonresError
        raise GluonresError(f"{args.weights!r} does not record its input normalisation; pass "
                            "--mean R G B and --std R G B (in [0, 1] pixel units)")
    dataset = data.image_folder(args.data, "test")
    net.hybridize(static_alloc=True, static_shape=True)
    result = evaluation.evaluate(net, dataset, preprocess, class_names=dataset.synsets,
                                 batch_size=args.batch_size, ctx=mx.cpu(),
                                 progress=not args.json)
    result.pop("predictions")
    record = {"model": args.model, "weights": args.weights, "data": args.data, **result}
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        record["confusion_png"] = os.path.join(args.out, "confusion.png")
        evaluation.plot_confusion(result["confusion"], dataset.synsets, record["confusion_png"],
                                  title=f"{args.model}: {100 * result['accuracy']:.2f}% correct")
    lines = [f"{args.model} on {args.data}/test: accuracy {100 * result['accuracy']:.2f}% "
             f"(error {result['error_pct']:.2f}%, {result['samples']} images)"]
    lines += [f"  {c:<12} {100 * a:6.2f}%" for c, a in result["per_class"].items()]
    emit(args, record, "\n".join(lines))


def cmd_export(args):
    import mxnet as mx

    import gluonres
    from gluonres import deploy, io

    net = gluonres.get_model(args.model, **_model_kwargs(args))
    if args.weights:
        io.load_weights(net, args.weights)
    else:
        log(f"no --weights given: exporting {args.model} with fresh He-initialised weights "
            f"(seed {args.seed})")
        mx.random.seed(args.seed)
        net.initialize(mx.init.MSRAPrelu(slope=0))
    shape = (args.batch, 3, net.input_size, net.input_size)
    paths = deploy.export(net, args.out, args.model, shape)
    emit(args, {"model": args.model, **paths},
         "\n".join(f"{k:<7} {v}" for k, v in paths.items()))


def cmd_bench(args):
    from gluonres import bench
    from gluonres._atomic import write_text

    models = args.models or ["resnet56_cifar"]
    record = bench.run(models, batch=args.batch, repeats=args.repeats, warmup=args.warmup,
                       iters=args.iters, peers_python=args.peers_python,
                       real_data=args.real_data,
                       progress=lambda name, r, n: log(f"{name}: repeat {r}/{n}"))
    if args.memory:
        mbatch = args.memory_batch or args.batch
        log(f"memory: {args.memory} at batch {mbatch}, ordinary vs checkpointed step")
        record["memory"] = bench.memory(args.memory, mbatch, args.memory_steps)
    text = bench.table(record)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        record["command"] = "gluonres bench " + " ".join(sys.argv[2:])
        write_text(args.out, json.dumps(record, indent=1, default=_json_default) + "\n")
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


def _add_model_options(p):
    p.add_argument("model", help="registered model name (see `gluonres list`)")
    p.add_argument("--classes", type=int, help="output classes (default: the model's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"],
                   help="shortcut option (default: the family's)")


def build_parser():
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
    p.add_argument("--size", type=int, help="input height/width (default: 32 CIFAR, 224 ImageNet)")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("evaluate", parents=[common], help="test accuracy of trained weights")
    _add_model_options(p)
    p.add_argument("--weights", required=True,
                   help="gluonres .params, exported NAME-0000.params or reference .npz")
    p.add_argument("--data", required=True,
                   help="image-folder root with a test/ split (or its .tar.gz)")
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"),
                   help="override the per-channel mean (pixels in [0, 1])")
    p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"),
                   help="override the per-channel std")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", help="folder for confusion.png")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("export", parents=[common], help="export symbol/params for deployment")
    _add_model_options(p)
    p.add_argument("--weights", help="weights to export (default: fresh initialisation)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch", type=int, default=1, help="batch size of the traced graph")
    p.add_argument("--seed", type=int, default=0, help="seed for fresh weights")
    p.set_defaults(run=cmd_export)

    from gluonres.bench import DEFAULT_PEERS_PYTHON
    p = sub.add_parser("bench", parents=[common],
                       help="side-by-side speed: hybridized, imperative, GluonCV, ONNX "
                            "Runtime, INT8, OpenVINO, PyTorch")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registered models (default: resnet56_cifar)")
    p.add_argument("--batch", type=int, default=128, help="throughput batch size")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per variant")
    p.add_argument("--iters", type=int, default=2, help="calls per timed sample")
    p.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON,
                   help="interpreter with torch/openvino for the optional peers "
                        "(`make peers`); a missing one skips them with a note")
    p.add_argument("--real-data", action="store_true",
                   help="also time training fed by gluonres.data's CIFAR-10 pipeline")
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

    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except GluonresError as err:
        print(f"gluonres: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
