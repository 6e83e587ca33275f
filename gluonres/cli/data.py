"""``gluonres data pack``, ``info`` and ``bench``: datasets."""
from gluonres.cli._common import (add_command, add_model_options, count_or_fraction, emit,
                                  model_kwargs)


def add_parsers(sub):
    p = sub.add_parser("data", help="pack, inspect and benchmark datasets")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = add_command(actions, "pack", cmd_data_pack,
                    "convert an image folder to RecordIO (.rec/.idx per split)")
    q.add_argument("source", help="image-folder root (or .tar.gz) or folder of class folders")
    q.add_argument("--out", required=True, help="new or empty output folder")

    q = add_command(actions, "info", cmd_data_info, "splits, classes, images per class")
    q.add_argument("data", help="as for train --data")
    q.add_argument("--size", type=int, help="bring images to SIZE x SIZE")
    q.add_argument("--val-split", type=count_or_fraction)

    q = add_command(actions, "bench", cmd_data_bench,
                    "training img/s with real data against synthetic input")
    add_model_options(q)
    q.add_argument("--data", required=True, help="as for train --data")
    q.add_argument("--batch-size", type=int, default=128)
    q.add_argument("--iterations", type=int, default=5, help="steps per block")
    q.add_argument("--rounds", type=int, default=12,
                   help="rounds of one real and one synthetic block")


def cmd_data_pack(args):
    from gluonres import data
    result = data.pack_recordio(args.source, args.out, progress=not args.json)
    emit(args, result, "\n".join([f"packed {args.source} into {args.out}: "
                                  + ", ".join(f"{k} {v} images" for k, v in
                                              result["splits"].items())]
                                 + [f"  {f}" for f in result["files"]]))


def cmd_data_info(args):
    from gluonres import data
    from gluonres._untrusted import printable

    info = data.load(args.data, size=args.size, val_size=args.val_split or 0,
                     progress=not args.json).describe(per_class=True)
    counts, classes = info["per_class"], info["classes"]
    # folder and class names come from the file system: escaped before they reach a terminal
    lines = [f"{printable(info['name'])}: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items())
             + f" images of {'x'.join(map(str, info['image_shape']))}, "
             f"{len(classes)} classes"]
    lines += [f"  {printable(c):<14} " + "  ".join(f"{k} {v[i]}" for k, v in counts.items())
              for i, c in enumerate(classes)]
    if "note" in info:
        lines.append(f"  note: {info['note']}")
    emit(args, info, "\n".join(lines))


def cmd_data_bench(args):
    from gluonres.measure.timing import data_bench

    result = data_bench(args.model, args.data, batch_size=args.batch_size,
                        iterations=args.iterations, rounds=args.rounds, progress=not args.json,
                        **model_kwargs(args))
    emit(args, result,
         f"{args.model} training, batch {args.batch_size}, {args.rounds} alternating rounds "
         f"of {args.iterations} real and {args.iterations} synthetic iterations:\n"
         f"  real data ({result['data']}, augmented)  {result['real_img_s']:.0f} img/s\n"
         f"  synthetic input                  {result['synthetic_img_s']:.0f} img/s\n"
         f"  ratio real/synthetic             {result['ratio']:.3f}")
