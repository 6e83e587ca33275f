"""What every command group shares: output (``emit``, ``log``), the ``--json`` option and
the options of several commands."""
import argparse
import json
import math
import shlex
import signal
import sys


# the parent parser of every command
_JSON = argparse.ArgumentParser(add_help=False)
_JSON.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line of standard output")


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


def stopped(err, kept):
    """Say in one line that Ctrl-C or SIGTERM (``err``, a KeyboardInterrupt, maybe with the
    ``signum`` of :class:`gluonres._files.Stopped`) stopped the command and what ``kept``
    is left; return the shell's exit code for it, 128 + the signal."""
    signum = getattr(err, "signum", signal.SIGINT)
    log(f"gluonres: stopped by {signal.Signals(signum).name}; {kept}")
    return 128 + signum


def add_command(sub, name, run, help):
    """A subcommand ``name`` (with ``--json``) of ``sub`` that runs ``run(args)``."""
    p = sub.add_parser(name, parents=[_JSON], help=help)
    p.set_defaults(run=run)
    return p


def command_line(args):
    """The command as typed, without ``--json``: what a record keeps."""
    return shlex.join(["gluonres", *[a for a in args.argv if a != "--json"]])


def model_kwargs(args):
    """The builder options given on the command line."""
    kwargs = {}
    for key in ("classes", "shortcut", "in_channels"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def count_or_fraction(text):
    """An argparse type: a count of images (5000), a fraction of them (0.1) or a
    percentage (20%)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = float("nan")
    if (not (math.isfinite(value) and value > 0)
            or (value >= 1 and (text.endswith("%") or value != int(value)))):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a count (5000), a fraction "
                                         "in (0, 1) (0.1) nor a percentage (20%)")
    return value if value < 1 else int(value)


def add_model_options(p):
    p.add_argument("model", help="registered model name (see `gluonres list`)")
    p.add_argument("--classes", type=int, help="output classes (default: the model's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"],
                   help="shortcut option (default: the family's)")
    # an int checked by the library, whose refusal is one line (argparse's is two)
    p.add_argument("--in-channels", type=int, metavar="{1,3}",
                   help="input channels: 1 to train on (or run) grey images, 3 for RGB "
                   "(default: the model's, or what its --weights record)")


def add_size_option(p, default):
    """``--size N``: the input size, one setting from the data to the export."""
    p.add_argument("--size", type=int, metavar="N",
                   help=f"images of N x N pixels (shorter side resized to N, centre crop) and "
                   f"the network run at that size; default: {default}")


def add_normalisation_options(p):
    p.add_argument("--mean", type=float, nargs="+", metavar="M",
                   help="override the per-channel mean (pixels in [0, 1]; 3 values R G B, "
                   "1 for a grey model)")
    p.add_argument("--std", type=float, nargs="+", metavar="S",
                   help="override the per-channel std (one value per channel)")


def add_calibration_options(p):
    from gluonres.deploy.quantize import CALIB_IMAGES, CALIB_MODE, CALIB_SEED

    p.add_argument("--calib-images", type=int, default=CALIB_IMAGES,
                   help=f"calibration images, picked at random (default {CALIB_IMAGES})")
    p.add_argument("--calib-seed", type=int, default=CALIB_SEED,
                   help=f"seed of that pick (default {CALIB_SEED})")
    p.add_argument("--calib-mode", choices=["naive", "entropy"], default=CALIB_MODE,
                   help="int8 ranges from min/max (naive) or minimal KL divergence (entropy)")


def calibration_kwargs(args):
    """The calibration options as keyword arguments of the library."""
    return {"calib_images": args.calib_images, "calib_seed": args.calib_seed,
            "calib_mode": args.calib_mode}
