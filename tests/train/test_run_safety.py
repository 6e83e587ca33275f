"""A run folder under faults (issue 20): one writer at a time (the run lock), a kill at any
rename resumes bit-exact, a killed run's temporary files go, Ctrl-C and SIGTERM stop with
one line, a full disk is one line, settings that are no numbers are refused."""
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gluonres import _files, io
from gluonres import train as training
from gluonres.cli import main
from gluonres.errors import GluonresError
from gluonres.train import checkpoints

from helpers import REPO, fast, resnet8, small, snapshot, write_folder


ROOT = str(REPO)
DRIVER = os.path.join(ROOT, "tests", "train", "crash_driver.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": ROOT}


def _temporaries(folder):
    return sorted(os.path.relpath(os.path.join(where, n), folder)
                  for where, dirs, names in os.walk(folder)
                  for n in names + dirs if n.endswith(".tmp") or n.startswith(".export.")
                  or n == ".gluonres.lock")


def _train_argv(data, out, *extra, epochs=3):
    return ["train", "resnet20_cifar", "--data", data, "--epochs", str(epochs), "--batch-size",
            "32", "--schedule", "cosine", "--out", out, "--no-progress", *extra]


def _default_sigint():
    # a shell that starts a job in the background (nohup, `cmd &`) makes it ignore SIGINT,
    # and Python then installs no KeyboardInterrupt handler: give the child a real Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(argv):
    return subprocess.Popen([sys.executable, "-m", "gluonres", *argv], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _wait_for(path, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _one_line(err):
    """The one ``gluonres:`` line of stderr, after checking there is no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("gluonres:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes of 64 training and 8 test images: 6 iterations of 32 per epoch."""
    data = str(tmp_path_factory.mktemp("data") / "data")
    write_folder(data, splits=("train",), classes=("a", "b", "c"), per_class=64)
    write_folder(data, splits=("test",), classes=("a", "b", "c"), per_class=8, seed=1)
    return data


# ---------------------------------------------------------------------------- item 3: lock
def test_the_lock_names_its_holder_and_a_crash_releases_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("a file of the run")
    # another process holds the folder, as a running `gluonres train` does
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(run / _files.LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, b'%d\\n' % os.getpid())\n"
         "print('locked', flush=True)\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(tmp_path)
        with pytest.raises(GluonresError) as err:
            with checkpoints.run_lock(str(run)):
                pass
        assert str(err.value) == (f"{str(run)!r} is in use by another gluonres train (pid "
                                  f"{holder.pid}); wait for it or choose another --out")
        assert snapshot(tmp_path) == before  # the refused one touched nothing
    finally:
        holder.kill()  # a crash: the kernel releases the lock
        holder.wait()
    with checkpoints.run_lock(str(run)):
        with checkpoints.run_lock(str(run)):  # nested in one process: the same lock
            assert (run / _files.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert sorted(os.listdir(run)) == ["keep.txt"]  # the lock file goes with the lock


def test_a_lock_that_was_never_used_leaves_nothing(tmp_path):
    with checkpoints.run_lock(str(tmp_path / "new" / "run")):
        assert (tmp_path / "new" / "run").is_dir()
    assert os.listdir(tmp_path) == []  # the levels made for the lock file go too


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_second_train_on_a_running_folder_is_refused(folder, tmp_path):
    out = str(tmp_path / "run")
    first = _popen(_train_argv(folder, out))
    try:
        _wait_for(os.path.join(out, checkpoints.LATEST), first)
        first.send_signal(signal.SIGSTOP)  # nothing changes in the folder meanwhile
        before = snapshot(out)
        for extra in ((), ("--resume",)):
            second = subprocess.run([sys.executable, "-m", "gluonres",
                                     *_train_argv(folder, out, *extra)],
                                    env=ENV, cwd=ROOT, capture_output=True, text=True)
            assert second.returncode == 2, second.stderr
            line = _one_line(second.stderr)
            assert line == (f"gluonres: error: {out!r} is in use by another gluonres train "
                            f"(pid {first.pid}); wait for it or choose another --out"), line
            assert snapshot(out) == before
        first.send_signal(signal.SIGKILL)  # a crash releases the folder
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    resumed = subprocess.run([sys.executable, "-m", "gluonres",
                              *_train_argv(folder, out, "--resume")],
                             env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with open(os.path.join(out, "log.json")) as f:
        assert len(json.load(f)["resumed"]) == 1  # one run wrote the folder, then its resume
    assert _temporaries(out) == []


# ---------------------------------------------------------------------------- item 6
@pytest.fixture(scope="module")
def straight(digits, tmp_path_factory):
    """An uninterrupted 3-epoch run: its final weights."""
    out = str(tmp_path_factory.mktemp("straight") / "run")
    training.fit(resnet8(), small(digits), fast(epochs=3, schedule="cosine"), out_dir=out,
                 progress=False)
    return io.read_weights(os.path.join(out, "weights.params"))[0]


def _fit(digits, out, **kw):
    return training.fit(resnet8(), small(digits), fast(epochs=3, schedule="cosine"),
                        out_dir=out, progress=False, **kw)


def _assert_same_weights(out, expected):
    final = io.read_weights(os.path.join(out, "weights.params"))[0]
    assert sorted(final) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(final[name].asnumpy(), value.asnumpy(), err_msg=name)


class Killed(BaseException):
    """Stands for SIGKILL."""


def _die_at_rename(monkeypatch, target, nth=1):
    """The process dies at the ``nth`` rename onto ``target``: nothing after it runs, so
    the temporary file stays (``atomic_path``'s clean-up is a no-op for a dead process)."""
    real_replace, seen = os.replace, []

    def replace(src, dst):
        if os.path.basename(dst) == target:
            seen.append(dst)
            if len(seen) == nth:
                monkeypatch.setattr(_files.os, "remove", lambda path: None)
                raise Killed
        real_replace(src, dst)
    monkeypatch.setattr(_files.os, "replace", replace)


def test_a_kill_before_the_first_checkpoint_rename_resumes(digits, straight, tmp_path,
                                                           monkeypatch):
    """Issue 20, item 6: checkpoint.json names the first checkpoint, which is complete but
    still under its temporary name. --resume must continue from it (bit-exact), and a new
    run must keep refusing the folder."""
    out = str(tmp_path / "run")
    _die_at_rename(monkeypatch, checkpoints.LATEST)
    with pytest.raises(Killed):
        _fit(digits, out)
    monkeypatch.undo()
    files = sorted(os.listdir(out))
    assert checkpoints.LATEST not in files and checkpoints.MANIFEST in files
    assert [f for f in files if f.startswith(".checkpoint.params.") and f.endswith(".tmp")]
    with pytest.raises(GluonresError, match="already holds a run.*--resume"):
        _fit(digits, out)
    assert training.checkpoint_meta(out)["state"]["epoch"] == 1
    history = _fit(digits, out, resume=True)
    assert history["resumed"][0]["at_epoch"] == 1
    assert history["resumed"][0]["checkpoint"] == checkpoints.LATEST
    _assert_same_weights(out, straight)
    assert _temporaries(out) == []


@pytest.mark.slow
def test_a_kill_before_a_later_rename_resumes_from_the_newest(digits, straight, tmp_path,
                                                              monkeypatch):
    """The same window at the second generation: the newest checkpoint is kept, not only
    the one before it."""
    out = str(tmp_path / "run")
    _die_at_rename(monkeypatch, checkpoints.LATEST, nth=2)
    with pytest.raises(Killed):
        _fit(digits, out)
    monkeypatch.undo()
    history = _fit(digits, out, resume=True)
    assert history["resumed"][0]["at_epoch"] == 2
    _assert_same_weights(out, straight)
    assert _temporaries(out) == []


# ---------------------------------------------------------------------------- item 10
class Interrupt(training.Callback):
    def on_batch_end(self, state):
        if state.iteration == 20:  # in epoch 3, after the checkpoints of epochs 1 and 2
            raise KeyboardInterrupt


def test_a_resume_removes_the_temporary_files_of_killed_runs(digits, straight, tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        _fit(digits, out, callbacks=[Interrupt()])
    # what SIGKILL leaves at each atomic write (a half-written file under a temporary name)
    left = [".checkpoint.params.k1x2_3.tmp", ".checkpoint.prev.params.a8.tmp",
            ".checkpoint.json.zz.tmp", ".log.json.q.tmp", ".curve.png.r.tmp",
            ".weights.params.s.tmp", ".best.params.t.tmp"]
    for name in left:
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"half a file")
    mine = ["notes.tmp", ".my.tmp"]  # not a run file's: the user's, kept
    for name in mine:
        with open(os.path.join(out, name), "w") as f:
            f.write("mine")
    _fit(digits, out, resume=True)
    assert sorted(f for f in os.listdir(out) if f in left or f in mine) == sorted(mine)
    _assert_same_weights(out, straight)


# ---------------------------------------------------------------------------- item 14
@pytest.mark.parametrize("setting, value, problem", [
    ("lr", math.inf, "lr=inf: it must be a finite number"),
    ("wd", math.inf, "wd=inf: it must be a finite number"),
    ("momentum", math.nan, "momentum=nan"),
    ("warmup_lr", math.inf, "warmup_lr=inf"),
    ("seed", -1, "seed=-1: it must be in [0, 2147483647]"),
    ("seed", 2 ** 31, "seed=2147483648"),
])
def test_settings_that_are_no_usable_numbers_are_refused(setting, value, problem):
    with pytest.raises(GluonresError, match="pass a value in range") as err:
        training.TrainConfig(**{setting: value})
    assert problem in str(err.value)


@pytest.mark.parametrize("argv, problem, fix", [
    (["--lr", "inf"], "lr=inf: it must be a finite number", "(--lr)"),
    (["--wd", "inf"], "wd=inf: it must be a finite number", "(--wd)"),
    (["--seed", "-1"], "seed=-1: it must be in [0, 2147483647]", "(--seed)"),
    (["--pad", "100"], "pad=100: it must be less than the side of the 32x32 training images "
     "(at most 31", "(--pad)"),
])
def test_cli_refuses_bad_numbers_in_one_line(tmp_path, capfd, argv, problem, fix):
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main(["train", "resnet20_cifar", "--data", "digits", "--out", str(tmp_path / "run"),
                 *argv])
    err = capfd.readouterr().err
    assert code == 2, err
    line = _one_line(err)
    assert line.startswith("gluonres: error: bad training setting") and problem in line, line
    assert fix in line, line
    assert snapshot(tmp_path) == before


def test_a_pad_of_a_whole_side_is_refused_by_fit(digits):
    with pytest.raises(GluonresError, match="pad=32: it must be less than the side"):
        training.fit(resnet8(), small(digits), fast(pad=32), progress=False)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_with_one_line(folder, tmp_path, signum):
    out = str(tmp_path / "run")
    proc = _popen(_train_argv(folder, out, epochs=40))
    try:
        _wait_for(os.path.join(out, "curve.png"), proc)  # epoch 1 is written
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, err
    line = _one_line(err)
    epoch = checkpoints.CheckpointStore(out).load().meta["state"]["epoch"]
    assert epoch >= 1
    name = signal.Signals(signum).name
    assert line == (f"gluonres: stopped by {name}; the last checkpoint "
                    f"{os.path.join(out, checkpoints.LATEST)!r} (epoch {epoch}) is kept; "
                    f"continue with `gluonres train resnet20_cifar --resume --out {out}`"), line
    assert _temporaries(out) == []  # the lock file went too


class _SignalInDel:
    """Sends ``signum`` to this process from inside ``__del__``, where Python drops the
    exception its handler raises, as it does in MXNet's ``NDArrayBase.__del__``."""

    def __init__(self, signum):
        self.signum = signum

    def __del__(self):
        os.kill(os.getpid(), self.signum)
        time.sleep(0.05)  # the handler runs here, and its exception is dropped


class SignalLostInDel(training.Callback):
    def __init__(self, signum):
        self.signum = signum

    def on_batch_end(self, state):
        if state.iteration == 10:  # in epoch 2 (8 per epoch), after the checkpoint of epoch 1
            _SignalInDel(self.signum)  # made and freed at once


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_lost_in_a_del_method_still_stops_the_run(digits, tmp_path, signum,
                                                           monkeypatch):
    out = str(tmp_path / "run")
    dropped = []  # what Python prints as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    with pytest.raises(_files.Stopped) as err:
        with _files.stop_on_signals():
            _fit(digits, out, callbacks=[SignalLostInDel(signum)])
    assert err.value.signum == signum
    assert [type(d.exc_value) for d in dropped] == [_files.Stopped]  # the first was lost
    state = checkpoints.CheckpointStore(out).load().meta["state"]
    assert (state["epoch"], state["iteration"]) == (1, 8)  # stopped in epoch 2, not after
    _files.raise_if_stopped()  # outside the block a signal no longer counts


def test_ctrl_c_waits_for_the_writes_that_belong_together():
    # Python's own Ctrl-C handler, also where the test runner was started with SIGINT
    # ignored (a background job, which gets no KeyboardInterrupt at all)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _files.deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler would have run by now
                done.append("the rest of the checkpoint")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert done == ["the rest of the checkpoint"]


def _disk_full_at(monkeypatch, prefix, nth=1):
    """``io.write_arrays`` fills the disk at its ``nth`` write of a temporary file of
    ``prefix`` (half a file written, then ENOSPC)."""
    real, seen = io.write_arrays, []

    def write_arrays(path, arrays, meta=None):
        if os.path.basename(path).startswith(prefix):
            seen.append(path)
            if len(seen) == nth:
                with open(path, "wb") as f:
                    f.write(b"half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, arrays, meta)
    monkeypatch.setattr(io, "write_arrays", write_arrays)


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one(digits, straight, tmp_path,
                                                            monkeypatch):
    out = str(tmp_path / "run")
    _disk_full_at(monkeypatch, ".checkpoint.params.", nth=2)
    with pytest.raises(GluonresError) as err:
        _fit(digits, out)
    monkeypatch.undo()
    message = str(err.value)
    assert message.startswith(f"cannot write the checkpoint of epoch 2 in {out!r} (No space "
                              "left on device); the checkpoint of epoch 1"), message
    assert f"continue with --resume --out {out}" in message
    assert training.checkpoint_meta(out)["state"]["epoch"] == 1
    assert _temporaries(out) == []
    _fit(digits, out, resume=True)
    _assert_same_weights(out, straight)


@pytest.mark.slow
def test_cli_a_full_disk_at_the_final_weights_is_one_line(folder, tmp_path, capfd,
                                                          monkeypatch):
    out = str(tmp_path / "run")
    _disk_full_at(monkeypatch, ".weights.params.")
    capfd.readouterr()
    code = main(_train_argv(folder, out, epochs=1))
    err = capfd.readouterr().err
    monkeypatch.undo()
    assert code == 2, err
    line = _one_line(err)
    assert line.startswith(f"gluonres: error: cannot write the final weights in {out!r} (No "
                           "space left on device); the checkpoint of epoch 1"), line
    assert f"--resume --out {out}" in line
    assert not os.path.exists(os.path.join(out, "weights.params"))
    assert _temporaries(out) == []
    assert main(_train_argv(folder, out, "--resume", epochs=1)) == 0
    assert os.path.exists(os.path.join(out, "weights.params"))


# ---------------------------------------------------------------------------- fault injection
def _driver(die_at, log, argv):
    return subprocess.run([sys.executable, DRIVER, str(die_at), log, "--", *argv], env=ENV,
                          cwd=ROOT, capture_output=True, text=True)


def _weights(out):
    return {name: v.asnumpy() for name, v in
            io.read_weights(os.path.join(out, "weights.params"))[0].items()}


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_kill_at_every_rename_of_a_run_resumes_bit_exact(tmp_path):
    """`gluonres train` killed (``os._exit``, no clean-up) at each rename of a short run:
    every checkpoint generation, the manifest, best.params, the logs, the final weights and
    the export. Each resumes to the uninterrupted run's weights and export, bit for bit,
    with no temporary file left."""
    data = str(tmp_path / "data")  # 2 iterations per epoch: the process start dominates
    write_folder(data, splits=("train",), classes=("a", "b", "c"), per_class=32)
    write_folder(data, splits=("test",), classes=("a", "b", "c"), per_class=4, seed=1)
    argv = lambda out, *extra: _train_argv(data, out, *extra, epochs=2) + [  # noqa: E731
        "--val-split", "32"]
    reference, log = str(tmp_path / "reference"), str(tmp_path / "renames.log")
    done = _driver(0, log, argv(reference))
    assert done.returncode == 0, done.stderr
    with open(log) as f:
        targets = [os.path.relpath(line.strip(), reference) for line in f]
    # every kind of write is among them
    for name in (checkpoints.LATEST, checkpoints.PREVIOUS, checkpoints.MANIFEST, "best.params",
                 "weights.params", "log.json"):
        assert name in targets, targets
    assert [t for t in targets if t.split(os.sep)[0] == "export"], targets  # the export's
    expected = _weights(reference)
    with open(os.path.join(reference, "export", "manifest.json")) as f:
        export_sha = json.load(f)["sha256"]
    failures = []
    for n, target in enumerate(targets, start=1):
        out = str(tmp_path / f"killed-{n}")
        killed = _driver(n, str(tmp_path / "ignored.log"), argv(out))
        assert killed.returncode == 9, (n, target, killed.stderr)
        # as a user would: --resume when the folder holds a run (else `train` refuses it),
        # the same command again when no checkpoint was written (else `--resume` refuses)
        again = ("--resume",) if checkpoints.CheckpointStore(out).exists() else ()
        resumed = subprocess.run([sys.executable, "-m", "gluonres", *argv(out, *again)],
                                 env=ENV, cwd=ROOT, capture_output=True, text=True)
        if resumed.returncode != 0:
            failures.append((n, target, resumed.stderr.strip().splitlines()[-1:]))
            continue
        got = _weights(out)
        same = sorted(got) == sorted(expected) and all(
            np.array_equal(got[k], expected[k]) for k in expected)
        with open(os.path.join(out, "export", "manifest.json")) as f:
            same_export = json.load(f)["sha256"] == export_sha
        left = _temporaries(out)
        if not (same and same_export and not left):
            failures.append((n, target, {"weights": same, "export": same_export,
                                         "left": left}))
    assert failures == [], failures
