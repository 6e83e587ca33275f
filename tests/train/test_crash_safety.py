"""Crash safety: SIGKILL mid-epoch then --resume, checkpoint generations and their
SHA-256 manifest, the fallback to the previous checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gluonres import _files, io
from gluonres import train as training
from gluonres._files import sha256_of
from gluonres.errors import CorruptFileError
from gluonres.train import checkpoints

from helpers import REPO, fast, resnet8, small, write_folder


ROOT = str(REPO)


def _train(out, data, *extra):
    """`gluonres train` in a new process: ResNet-20, 3 epochs of 12 iterations."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen(
        [sys.executable, "-m", "gluonres", "train", "resnet20_cifar", "--data", data, "--epochs",
         "3", "--batch-size", "32", "--schedule", "cosine", "--out", out, "--no-progress",
         *extra], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_logged(out):
    try:
        with open(os.path.join(out, "log.json")) as f:
            return json.load(f)["epochs"]
    except (OSError, ValueError):  # not written yet
        return []


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    data = str(tmp_path / "data")
    write_folder(data, splits=("train",), classes=("a", "b", "c"), per_class=128)
    write_folder(data, splits=("test",), classes=("a", "b", "c"), per_class=8, seed=1)
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    reference = _train(straight, data)  # runs beside the killed one
    victim = _train(killed, data)
    try:
        deadline = time.monotonic() + 240
        # curve.png is the last file written after epoch 1: epoch 2 has begun
        while not (_epochs_logged(killed) and os.path.exists(os.path.join(killed,
                                                                           "curve.png"))):
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.05)
        time.sleep(_epochs_logged(killed)[0]["train_s"] / 2)  # half way through epoch 2
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert training.checkpoint_meta(killed)["state"]["epoch"] == 1  # died inside epoch 2
    assert not os.path.exists(os.path.join(killed, "weights.params"))
    assert not [f for f in os.listdir(killed) if f.endswith(".tmp")]

    resumed = _train(killed, data, "--resume")
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    out, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err
    # bit for bit: every parameter, BatchNorm statistics included, and every epoch's loss
    a = io.read_weights(os.path.join(straight, "weights.params"))[0]
    b = io.read_weights(os.path.join(killed, "weights.params"))[0]
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name].asnumpy(), b[name].asnumpy(), err_msg=name)
    losses = [[r["train_loss"] for r in _epochs_logged(run)] for run in (straight, killed)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert [r["at_epoch"] for r in json.load(open(os.path.join(killed, "log.json")))
            ["resumed"]] == [1]


# ---------------------------------------------------------------------------- generations
class Interrupt(training.Callback):
    """Stands for a crash: stops the run at an iteration (after that epoch's checkpoint)."""

    def __init__(self, iteration):
        self.iteration = iteration

    def on_batch_end(self, state):
        if state.iteration == self.iteration:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def straight(digits, tmp_path_factory):  # noqa: F811
    """An uninterrupted 3-epoch run: its final weights."""
    out = str(tmp_path_factory.mktemp("straight") / "run")
    training.fit(resnet8(), small(digits), fast(epochs=3, schedule="cosine"), out_dir=out,
                 progress=False)
    return io.read_weights(os.path.join(out, "weights.params"))[0]


def _interrupted(digits, out, iteration=20):  # noqa: F811
    """A run stopped in epoch 3 (8 iterations per epoch): checkpoints of epochs 2 and 1."""
    with pytest.raises(KeyboardInterrupt):
        training.fit(resnet8(), small(digits), fast(epochs=3, schedule="cosine"),
                     out_dir=out, progress=False, callbacks=[Interrupt(iteration)])


def _resume(digits, out):  # noqa: F811
    return training.fit(resnet8(), small(digits), fast(epochs=3, schedule="cosine"),
                        out_dir=out, resume=True, progress=False)


def _assert_same_weights(out, expected):
    final = io.read_weights(os.path.join(out, "weights.params"))[0]
    for name, value in expected.items():
        np.testing.assert_array_equal(final[name].asnumpy(), value.asnumpy(), err_msg=name)


def test_manifest_records_two_generations(digits, tmp_path):  # noqa: F811
    out = str(tmp_path / "run")
    _interrupted(digits, out)
    with open(os.path.join(out, checkpoints.MANIFEST)) as f:
        manifest = json.load(f)
    entries = {e["file"]: e for e in manifest["checkpoints"]}
    assert manifest["format"] == checkpoints.MANIFEST_FORMAT
    assert (entries[checkpoints.LATEST]["epoch"], entries[checkpoints.PREVIOUS]["epoch"]) == (2, 1)
    for name, entry in entries.items():
        path = os.path.join(out, name)
        assert io.load_arrays(path)[1]["state"]["epoch"] == entry["epoch"]
        assert sha256_of(path) == entry["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(digits, straight, tmp_path,  # noqa: F811
                                                              capfd, damage):
    out = str(tmp_path / "run")
    _interrupted(digits, out)
    latest = os.path.join(out, checkpoints.LATEST)
    blob = open(latest, "rb").read()
    if damage == "truncate":
        blob = blob[:len(blob) // 2]
    else:  # one flipped bit in the weights: the file still loads, only the digest tells
        blob = blob[:5000] + bytes([blob[5000] ^ 1]) + blob[5001:]
    open(latest, "wb").write(blob)
    capfd.readouterr()
    history = _resume(digits, out)
    err = capfd.readouterr().err
    assert "checkpoint.params' does not match the sha256 recorded in checkpoint.json" in err
    assert "resuming from" in err and "checkpoint.prev.params' (epoch 1) instead" in err
    assert history["resumed"][0]["at_epoch"] == 1
    assert history["resumed"][0]["checkpoint"] == checkpoints.PREVIOUS
    # epoch 2 is trained again, identically: the result is the uninterrupted run's
    _assert_same_weights(out, straight)


def test_no_good_checkpoint_is_a_clear_error_that_changes_nothing(digits, tmp_path):  # noqa: F811
    out = str(tmp_path / "run")
    _interrupted(digits, out)
    for name in (checkpoints.LATEST, checkpoints.PREVIOUS):
        path = os.path.join(out, name)
        open(path, "r+b").truncate(1000)
    before = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)
              if os.path.isfile(os.path.join(out, f))}
    with pytest.raises(CorruptFileError, match="no usable checkpoint.*checkpoint.params.*"
                                               "checkpoint.prev.params.*another output folder"):
        _resume(digits, out)
    assert {f: open(os.path.join(out, f), "rb").read() for f in before} == before


@pytest.mark.slow
def test_a_crash_before_the_new_checkpoint_is_renamed(digits, straight, tmp_path,  # noqa: F811
                                                       monkeypatch):
    """The manifest already lists the new checkpoint; its file never got its name. The
    old one is still trusted (its digest is recorded too) and the run resumes from it."""
    out = str(tmp_path / "run")
    real_replace = os.replace

    def crash_on_second_checkpoint(src, dst):
        if dst.endswith(checkpoints.LATEST) and os.path.exists(dst):
            raise KeyboardInterrupt  # the process dies right before the rename
        real_replace(src, dst)
    monkeypatch.setattr(_files.os, "replace", crash_on_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        training.fit(resnet8(), small(digits), fast(epochs=3, schedule="cosine"),
                     out_dir=out, progress=False)
    monkeypatch.setattr(_files.os, "replace", real_replace)
    with open(os.path.join(out, checkpoints.MANIFEST)) as f:
        assert [e["epoch"] for e in json.load(f)["checkpoints"]] == [2, 1]
    assert training.checkpoint_meta(out)["state"]["epoch"] == 1
    history = _resume(digits, out)
    assert history["resumed"][0]["at_epoch"] == 1 and "fallback" not in history["resumed"][0]
    _assert_same_weights(out, straight)


@pytest.mark.slow
def test_folders_from_before_the_manifest_still_resume(digits, straight, tmp_path):  # noqa: F811
    out = str(tmp_path / "run")
    _interrupted(digits, out, iteration=12)  # in epoch 2: one checkpoint
    os.remove(os.path.join(out, checkpoints.MANIFEST))
    history = _resume(digits, out)
    assert history["resumed"][0]["at_epoch"] == 1
    _assert_same_weights(out, straight)


@pytest.mark.slow
def test_the_best_epoch_travels_in_the_checkpoint(digits, tmp_path):  # noqa: F811
    """With a validation split, the best epoch's weights are in the checkpoint, so a
    resume never depends on best.params (which may be newer than the checkpoint)."""
    config = fast(epochs=3, schedule="cosine")
    d = small(digits, val=64)
    a = training.fit(resnet8(), d, config, out_dir=str(tmp_path / "a"), progress=False)
    out = str(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        training.fit(resnet8(), d, config, out_dir=out, progress=False,
                     callbacks=[Interrupt(13)])
    arrays, meta = io.load_arrays(os.path.join(out, checkpoints.LATEST))
    # with this seed epoch 1 validates best and the checkpoint is epoch 2's: the case
    # where the best weights must travel beside the checkpoint's own
    assert (meta["state"]["best"]["epoch"], meta["state"]["epoch"]) == (1, 2)
    assert any(k.startswith(io.BEST_PREFIX) for k in arrays)
    os.remove(os.path.join(out, "best.params"))
    b = training.fit(resnet8(), d, config, out_dir=out, resume=True, progress=False)
    assert b["selected_epoch"] == a["selected_epoch"]
    _assert_same_weights(out, io.read_weights(str(tmp_path / "a" / "weights.params"))[0])


def test_atomic_writes_get_ordinary_file_modes(tmp_path):
    """mkstemp makes 0600 files; an exported model must be readable like any other file."""
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.json"
        _files.write_text(new, "{}")
        assert new.stat().st_mode & 0o777 == 0o644
        shared = tmp_path / "shared.json"
        shared.write_text("old")
        shared.chmod(0o664)
        _files.write_text(shared, "new")
        assert shared.stat().st_mode & 0o777 == 0o664 and shared.read_text() == "new"
    finally:
        os.umask(old)
