"""What several test modules share: the repository, ../shared, running the command line,
small data and models, snapshots of folders."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from gluonres import data
from gluonres import train as training
from gluonres.models.cifar import cifar_resnet
from gluonres.train.config import TrainConfig


REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("GLUONRES_SHARED", REPO.parent / "shared"))


# gluonres predict must run an export with these unimportable (model code, export side)
BLOCK_MODEL_CODE = textwrap.dedent("""
    import sys
    BLOCKED = ("gluonres.models", "gluonres.blocks", "gluonres.deploy.exporter",
               "gluonres.analysis", "gluonres.train.loop", "gluonres.train.step",
               "gluonres.train.speed", "gluonres.measure", "gluonres.experiments.")
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.startswith(BLOCKED):
                raise ImportError(f"{name} is blocked: running an export needs no model code")
    sys.meta_path.insert(0, Blocker())
""")


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "gluonres", *args], capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def last_json(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_clean_error(proc, *fragments):
    """Bad input: exit code 2 and one line on stderr, ``gluonres: error: ...``, holding
    every fragment (the problem and the fix)."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("gluonres: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def small(digits, n=256, val=0):
    """A few hundred digits (and their test split): fast enough for many fits."""
    d = data.Data("digits", digits.train.subset(np.arange(n)), digits.test, hflip=False)
    if val:
        d.train, d.val = data.split_validation(d.train, val)
    return d


def resnet8(name="resnet8_cifar"):
    net = cifar_resnet(8)
    net.model_name = name
    return net


def fast(**kw):
    return TrainConfig(**{"batch_size": 32, "epochs": 2, "flip": False, **kw})


class Poison(training.Callback):
    """Multiplies one parameter by NaN after iteration 10 (in epoch 2 of 8 iterations each)."""

    def __init__(self, name):
        self.name = name

    def on_batch_end(self, state):
        if state.iteration == 10:
            w = state.net.collect_params()[self.name]
            w.set_data(w.data() * np.nan)


def write_folder(root, splits=("train", "test"), classes=("cat", "dog"), per_class=3,
                 size=(32, 32), ext=".png", seed=0):
    """Random images in root/split/class/i.ext; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in splits:
        images, labels = [], []
        for label, c in enumerate(classes):
            folder = os.path.join(root, split, c) if split else os.path.join(root, c)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
                assert cv2.imwrite(os.path.join(folder, f"{i}{ext}"), img[:, :, ::-1])
                images.append(img)
                labels.append(label)
        out[split] = (np.stack(images), np.array(labels))
    return out


def snapshot(folder):
    """Every file (with its bytes) and folder under ``folder``."""
    out = {}
    for where, dirs, names in os.walk(folder):
        for d in dirs:
            out[os.path.join(where, d)] = "dir"
        for n in names:
            with open(os.path.join(where, n), "rb") as f:
                out[os.path.join(where, n)] = f.read()
    return out




def shared_path(*parts):
    """A path under ../shared, or a skip naming what is missing (CI always provides it)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (CI places ../shared beside the repository)")
    return path
