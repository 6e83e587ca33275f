"""The ``gluonres`` command line: subcommands that parse arguments and call the library.

Contract: with ``--json`` a subcommand prints exactly one JSON object as the last line
of standard output (progress and logs go to standard error); bad input prints one
message and exits with code 2.

One module per command group adds its parsers (``add_parsers``) and holds their
handlers, which parse, call the library and print. Handlers import the library when they
run, so that parsing stays light: ``gluonres predict`` loads no model code.
"""
import argparse
import sys

from gluonres.cli import bench, data, deploy, evaluate, experiments, models, train


# in the order of `gluonres --help`
_GROUPS = (models, experiments, train, evaluate, data, deploy, bench)


def _version():
    """``gluonres X (mxnet Y, numpy Z)``, read from the installed metadata: importing
    mxnet to ask it would cost a second for every ``--help``."""
    from importlib import metadata

    import gluonres

    versions = []
    for package in ("mxnet", "numpy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return f"gluonres {gluonres.__version__} ({', '.join(versions)})"


def build_parser():
    """The ``gluonres`` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="gluonres", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from gluonres.errors import GluonresError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args) or 0
    except GluonresError as err:
        print(f"gluonres: error: {err}", file=sys.stderr)
        return 2
