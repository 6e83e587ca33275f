"""``gluonres evaluate``: accuracy, per-class accuracy and confusion matrix of weights."""
import os

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
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", help="folder for confusion.png")


def cmd_evaluate(args):
    import mxnet as mx

    import gluonres
    from gluonres import data, io
    from gluonres.analysis import evaluation
    from gluonres.deploy.exporter import weights_preprocess
    from gluonres.errors import DataError

    meta = io.read_weights(args.weights)[1]
    kwargs = model_kwargs(args)
    if "classes" in meta:
        kwargs.setdefault("classes", len(meta["classes"]))
    net = gluonres.get_model(args.model, **kwargs)
    io.load_weights(net, args.weights)
    preprocess = weights_preprocess(meta, args.weights, args.mean, args.std)
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
