"""Shared fixtures: the ../shared data and reference weights CI places beside the repo."""
import os
import pathlib

import pytest

SHARED = pathlib.Path(os.environ.get(
    "GLUONRES_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared"))


def shared_path(*parts):
    """A path under ../shared, or a skip naming what is missing (CI always provides it)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (CI places ../shared beside the repository)")
    return path


@pytest.fixture(scope="session")
def cifar_root():
    """The shared JPEG CIFAR-10, extracted once into the gluonres cache."""
    from gluonres.data.sources import resolve_root
    return resolve_root(str(shared_path("data", "cifar10-jpg.tar.gz")))
