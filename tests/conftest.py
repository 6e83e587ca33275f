"""Shared fixtures, and the ``shared`` marker for every test that reads ../shared.

Helpers that are not fixtures live in ``helpers.py`` (on the path through pyproject's
``pythonpath``); tests import them from there, never from each other.
"""
import subprocess

import pytest

from helpers import shared_path


@pytest.fixture(scope="session")
def cifar_root():
    """The shared JPEG CIFAR-10, extracted once into the gluonres cache."""
    from gluonres.data.sources import resolve_root
    return resolve_root(str(shared_path("data", "cifar10-jpg.tar.gz")))


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits as 32x32 RGB: offline, decoded once per module."""
    from gluonres import data
    return data.load("digits")


@pytest.fixture
def cli(capfd):
    """``gluonres ARGS`` in this process (bad-input cases need no fresh one; it is faster),
    returning what a subprocess would: exit code, stdout, stderr."""
    from gluonres.cli import main

    def invoke(*args):
        capfd.readouterr()
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return invoke


def pytest_collection_modifyitems(items):
    # a test that takes the shared data as a fixture needs ../shared, marked or not
    for item in items:
        if "cifar_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)
