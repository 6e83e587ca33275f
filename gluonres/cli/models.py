"""``gluonres list`` and ``gluonres summary``: the registered models."""
from gluonres.cli._common import add_command, add_model_options, emit, model_kwargs


def add_parsers(sub):
    p = add_command(sub, "list", cmd_list, "list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*_cifar'")
    p.add_argument("--pretrained", action="store_true",
                   help="only models with shipped weights, with their test accuracy")

    p = add_command(sub, "summary", cmd_summary,
                    "per-stage shapes, parameters and multiply-adds")
    add_model_options(p)
    p.add_argument("--size", type=int,
                   help="input height/width (default: the model's own, e.g. 32 CIFAR, 224 "
                        "ImageNet, 299 Inception-v3)")


def cmd_list(args):
    import gluonres
    names = gluonres.list_models(args.pattern, pretrained=args.pretrained)
    if not args.pretrained:
        emit(args, {"models": names}, "\n".join(names))
        return
    from gluonres import pretrained

    cards = [pretrained.card(n) for n in names]
    emit(args, {"models": names, "cards": cards},
         "\n".join(f"{c['model']:<18} {100 * c['test_accuracy']:.2f}% on {c['data']['name']} "
                   f"(recipe: {c['recipe']})" for c in cards))


def cmd_summary(args):
    import gluonres
    from gluonres.errors import GluonresError

    if args.size is not None and args.size < 1:
        raise GluonresError(f"--size {args.size} is not an image size; pass a whole number "
                            "of pixels of at least 1, or leave --size out for the model's own")
    net = gluonres.get_model(args.model, **model_kwargs(args))
    shape = (1, 3, args.size, args.size) if args.size else None
    s = gluonres.summary(net, shape)
    record = {"model": args.model, **s.to_dict()}
    emit(args, record, f"{args.model}  input {s.input_shape}\n{s}")
