"""``gluonres evaluate``: accuracy, per-class accuracy and confusion matrix of weights."""
from gluonres.cli._common import (add_command, add_model_options, add_normalisation_options, emit,
                                  model_kwargs)


def add_parsers(sub):
    p = add_command(sub, "evaluate", cmd_evaluate,
                    "accuracy, per-class accuracy and confusion matrix of weights")
    add_model_options(p)
    p.add_argument("--weights", required=True,
                   help="gluonres .params, exported NAME-0000.params or reference .npz")
    p.add_argument("--data", required=True,
                   help="as for train; its test split (or every image of a single-split folder)")
    add_normalisation_options(p)
    p.add_argument("--batch-size", type=int,
                   help="images per forward pass (default: 256, or fewer where the model's "
                   "activations at that size would not fit a quarter of the free memory)")
    p.add_argument("--out", help="folder for confusion.png")


def cmd_evaluate(args):
    from gluonres.measure.accuracy import evaluate_weights

    record = evaluate_weights(args.model, args.weights, args.data, out=args.out, mean=args.mean,
                              std=args.std, batch_size=args.batch_size, progress=not args.json,
                              **model_kwargs(args))
    lines = [f"{args.model} on {args.data} ({record['split']}): accuracy "
             f"{100 * record['accuracy']:.2f}% (error {record['error_pct']:.2f}%, "
             f"{record['samples']} images"
             + (f", batches of {record['batch_size']}" if record["batch_size"] < 256 else "")
             + ")"]
    lines += [f"  {c:<12} {100 * a:6.2f}%" for c, a in record["per_class"].items()]
    if args.out:
        lines.append(f"  confusion matrix: {record['confusion_png']}")
    emit(args, record, "\n".join(lines))
