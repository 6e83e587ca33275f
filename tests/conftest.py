"""Shared fixtures, and the ``shared`` marker for every test that reads ../shared.

Helpers that are not fixtures live in ``helpers.py`` (on the path through pyproject's
``pythonpath``); tests import them from there, never from each other.
"""
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


def pytest_collection_modifyitems(items):
    # a test that takes the shared data as a fixture needs ../shared, marked or not
    for item in items:
        if "cifar_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)
