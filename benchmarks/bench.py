"""The recorded benchmark: ``gluonres bench`` with the settings the results were taken at.

Run it on a quiet machine (the project's lock keeps other heavy jobs out):

    flock /tmp/gluonres-cpu.lock .venv/bin/python benchmarks/bench.py

It writes results/bench-resnet56_cifar.json and .md (the table quoted in
docs/performance.md). Extra arguments go to ``gluonres bench``.
"""
import os
import sys

from gluonres.cli import main


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.path.join(REPO, "..", "shared", "data", "cifar10-jpg.tar.gz")

if __name__ == "__main__":
    args = sys.argv[1:] or ["resnet56_cifar", "--batch", "128", "--repeats", "7",
                            "--real-data", CIFAR, "--memory", "resnet1202_cifar",
                            "--out", "results/bench-resnet56_cifar.json"]
    sys.exit(main(["bench", *args]))
