"""``gluonres evaluate``: accuracy, per-class accuracy and confusion matrix of weights."""
from gluonres.cli._common import (add_command, add_model_options, add_normalisation_options,
                                  add_size_option, count_or_fraction, emit, model_kwargs)


def add_parsers(sub):
    p = add_command(sub, "evaluate", cmd_evaluate,
                    "accuracy, per-class accuracy and confusion matrix of weights")
    add_model_options(p)
    add_size_option(p, "the size the weights record, else the model's")
    p.add_argument("--weights", required=True,
                   help="gluonres .params, exported NAME-0000.params or reference .npz")
    p.add_argument("--data", required=True,
                   help="as for train; its test split (or every image of a single-split folder)")
    p.add_argument("--val-split", type=count_or_fraction,
                   help="score only the validation split `train --val-split` held out of "
                   "--data (with the run's --seed): the images the run did not train on")
    p.add_argument("--seed", type=int, default=0,
                   help="the training run's seed, which drew --val-split (default 0)")
    add_normalisation_options(p)
    p.add_argument("--batch-size", type=int,
                   help="images per forward pass (default: 256, or fewer where the model's "
                   "activations at that size would not fit a quarter of the free memory)")
    p.add_argument("--out", help="folder for confusion.png")


def cmd_evaluate(args):
    from gluonres.measure.accuracy import evaluate_weights

    record = evaluate_weights(args.model, args.weights, args.data, out=args.out, mean=args.mean,
                              std=args.std, batch_size=args.batch_size, progress=not args.json,
                              size=args.size, val_split=args.val_split, seed=args.seed,
                              **model_kwargs(args))
    split = record["split"]
    if split == "validation":
        held = (f"{100 * args.val_split:g}%" if isinstance(args.val_split, float)
                else args.val_split)
        split = f"the validation split held out by --val-split {held} --seed {args.seed}"
    size = record["input_size"]
    lines = [f"{args.model} on {args.data} ({split}, {size}x{size}): accuracy "
             f"{100 * record['accuracy']:.2f}% (error {record['error_pct']:.2f}%, "
             f"{record['samples']} images"
             + (f", batches of {record['batch_size']}" if record["batch_size"] < 256 else "")
             + ")"]
    lines += [f"  {c:<12} {100 * a:6.2f}%" for c, a in record["per_class"].items()]
    if "note" in record:
        lines.append(f"  note: {record['note']}")
    if args.out:
        lines.append(f"  confusion matrix: {record['confusion_png']}")
    emit(args, record, "\n".join(lines))
