"""``gluonres bench``: every way to run a model, side by side; with ``--export DIR``, one
export on every inference engine."""
import json
import os

from gluonres.cli._common import add_command, command_line, emit, log
from gluonres.cli.deploy import ENGINES


def add_parsers(sub):
    p = add_command(sub, "bench", cmd_bench,
                    "side-by-side speed: hybridized, imperative, GluonCV, ONNX Runtime, INT8, "
                    "OpenVINO, PyTorch")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registered models (default: resnet56_cifar)")
    p.add_argument("--batch", type=int, default=128, help="throughput batch size")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per variant")
    p.add_argument("--iters", type=int, default=2, help="fewest calls per timed sample (the bench makes each "
                   "sample last at least 0.5 s)")
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
    p.add_argument("--export", metavar="DIR",
                   help="instead of MODELs: this export folder on every installed engine "
                        "(mxnet, ONNX Runtime, OpenVINO), outputs checked against mxnet "
                        "within 1e-4, and which is fastest here")
    p.add_argument("--engine", nargs="+", choices=ENGINES, metavar="ENGINE",
                   help=f"with --export: the engines to compare ({', '.join(ENGINES)}; "
                        "default: every installed one; mxnet is always the reference)")


def cmd_bench(args):
    if args.export:
        return _engines(args)
    if args.engine:
        from gluonres.errors import GluonresError
        raise GluonresError("--engine compares the engines on one export; add --export DIR "
                            "(a folder written by `gluonres export --onnx`)")
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
    _write(args, record, text)


def _engines(args):
    """``bench --export DIR``: :func:`gluonres.measure.engines.compare` and its table."""
    from gluonres.errors import GluonresError
    from gluonres.measure import engines

    others = [flag for flag, on in (("MODEL", args.models), ("--memory", args.memory),
                                    ("--real-data", args.real_data),
                                    ("--peers-python", args.peers_python)) if on]
    if others:
        raise GluonresError(f"--export compares engines on one export; {others[0]} belongs "
                            "to the model benchmark: drop one of the two")
    record = engines.compare(args.export, args.engine, batch=args.batch, repeats=args.repeats,
                             warmup=args.warmup, iters=args.iters,
                             progress=lambda phase, r, n: log(f"{phase}: round {r}/{n}"))
    text = engines.table(record)
    for name in record["failed_check"]:  # loudly: such an engine is not counted as fastest
        log(f"gluonres: warning: {name}'s logits differ from mxnet's by up to "
            f"{record['engines'][name]['max_abs_diff']:.2e} (tolerance "
            f"{record['tolerance']:g}; mxnet's logits reach {record['max_abs_logit']:.3g}): "
            f"{name} fails the check and is not counted")
    _write(args, record, text)
    return 1 if record["failed_check"] else 0


def _write(args, record, text):
    """Print ``record`` (and write it with its table to ``--out``, if given)."""
    from gluonres._files import json_default, write_text

    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        record["command"] = command_line(args)
        write_text(args.out, json.dumps(record, indent=1, default=json_default) + "\n")
        write_text(os.path.splitext(args.out)[0] + ".md", text + "\n")
        log(f"wrote {args.out} and its .md table")
    emit(args, record, text)

