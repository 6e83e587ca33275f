"""Test driver (issue 20, item 5): ``gluonres train`` as a worker of ``gluonres launch``,
except that every worker adds an amount of its own to one weight after each step, so the
workers' weights drift apart as they did under ``MXNET_ENGINE_TYPE=ThreadedEnginePerDevice``.

Run as ``python tests/train/diverge_driver.py TRAIN-ARGUMENTS...``; only tests use it.
"""
import os
import sys

from gluonres.cli import main
from gluonres.train import loop


_train_step = loop.train_step


def _drifting_step(step, trainer, *args, **kwargs):
    out = _train_step(step, trainer, *args, **kwargs)
    weight = trainer._params[0]
    weight.set_data(weight.data() + 1e-4 * (os.getpid() % 1000 + 1))  # differs per process
    return out


loop.train_step = _drifting_step
sys.exit(main(["train", *sys.argv[1:]]))
