"""Distributed training on MXNet's parameter server, on loopback: `gluonres launch`."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluonres
from gluonres import data, io
from gluonres import train as training
from gluonres.cli import main
from gluonres.data.preprocess import Preprocess
from gluonres.errors import GluonresError
from gluonres.models.init import he_initialize
from gluonres.train import distributed

from helpers import REPO, assert_clean_error


# a few iterations of ResNet-20 on the embedded digits, batch 32 = 2 workers x 16
TRAIN = ["gluonres", "train", "resnet20_cifar", "--data", "digits", "--iterations", "3",
         "--batch-size", "32", "--schedule", "cosine", "--no-progress", "--json"]


def launch(capfd, *args):
    """``gluonres launch ARGS`` in this process (its children are separate processes)."""
    capfd.readouterr()
    code = main(["launch", *map(str, args)])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def combined_batch_reference(iterations=3, batch=32, workers=2):
    """One process training ResNet-20 on the whole batch of every step, with BatchNorm
    normalising each worker's slice of it separately, as the workers do.

    The running statistics are updated as the workers' averaged statistics are: each
    slice from the same starting point, then their mean.
    """
    d = data.load("digits", size=32, progress=False)
    config = dataclasses.replace(training.recipe("resnet20_cifar"), iterations=iterations,
                                 batch_size=batch, schedule="cosine", flip=False)
    net = gluonres.get_model("resnet20_cifar", classes=10)
    he_initialize(net, config.seed)
    preprocess = Preprocess.fit(d.train.images, config.normalize)
    net(mx.nd.zeros((1, 3, 32, 32)))
    step, trainer = training.prepare(net, config)  # the step the workers run
    schedule = training.Schedule(config, iterations)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    params = net.collect_params()
    stats = [p for p in params.values() if p.grad_req == "null"]
    for p in params.values():
        if p.grad_req != "null":
            p.grad_req = "add"  # the slices' gradients add up, as on the servers
    batches = data.epoch_batches(d.train, batch, config.seed, 0, config.pad, config.flip)
    per = batch // workers
    for it in range(iterations):
        images, labels = next(batches)
        trainer.set_learning_rate(schedule(it))
        x, y = training.to_input(images, labels, preprocess, mx.cpu())
        before = [p.data().copy() for p in stats]
        after = []
        for w in range(workers):
            for p, value in zip(stats, before):
                p.set_data(value)
            mx.nd.waitall()
            part = slice(w * per, (w + 1) * per)
            with autograd.record():
                loss = loss_fn(step(x[part]), y[part])
            loss.backward()  # also updates the running statistics (MXNet does it here)
            mx.nd.waitall()  # ... without a dependency the engine tracks (both ways)
            after.append([p.data().copy() for p in stats])
        trainer.step(batch)
        for i, p in enumerate(stats):
            p.set_data(sum(a[i] for a in after) / workers)
        params.zero_grad()
        mx.nd.waitall()
    return {n: p.data().asnumpy() for n, p in net.collect_params().items()}


@pytest.mark.slow
@pytest.mark.subprocess
def test_dist_sync_two_workers_equal_one_process_on_the_combined_batch(tmp_path, capfd):
    out = tmp_path / "run"
    proc = launch(capfd, "-n", 2, "-s", 1, "--timeout", 240, "--json", "--",
                  *TRAIN, "--kvstore", "dist_sync", "--out", out)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["exit_codes"] == {"scheduler": 0, "server0": 0, "worker0": 0, "worker1": 0}
    runs = list(record["outputs"].values())
    assert sorted(r["workers"]["rank"] for r in runs) == [0, 1]
    # every parameter, BatchNorm statistics included, is bit-identical on both workers
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]
    # only rank 0 wrote the run folder
    writer = next(r for r in runs if r["workers"]["rank"] == 0)
    assert [r["files"] for r in runs if r["workers"]["rank"] == 1] == [{}]
    assert writer["files"]["weights"] == str(out / "weights.params")
    trained = {k: v.asnumpy() for k, v in io.read_weights(str(out / "weights.params"))[0].items()}
    reference = combined_batch_reference()
    for name, value in reference.items():
        if "running" in name:  # a mean of two float32 EMAs, summed in another order
            np.testing.assert_allclose(trained[name], value, rtol=1e-5, atol=1e-6,
                                       err_msg=name)
        else:  # the servers add the two workers' gradients: a + b, exactly as one process
            np.testing.assert_array_equal(trained[name], value, err_msg=name)
    log = json.load(open(out / "log.json"))
    assert log["workers"] == {"kvstore": "dist_sync", "rank": 0, "count": 2}
    assert log["config"]["batch_size"] == 32


@pytest.mark.slow
@pytest.mark.subprocess
def test_dist_async_trains_and_refuses_an_inexact_resume(tmp_path, capfd):
    out = tmp_path / "run"
    proc = launch(capfd, "-n", 2, "-s", 1, "--timeout", 240, "--json", "--",
                  *TRAIN, "--kvstore", "dist_async", "--out", out)
    assert proc.returncode == 0, proc.stderr
    runs = list(json.loads(proc.stdout.strip().splitlines()[-1])["outputs"].values())
    assert sorted(r["workers"]["rank"] for r in runs) == [0, 1]
    weights = io.read_weights(str(out / "weights.params"))[0]
    assert all(np.isfinite(v.asnumpy()).all() for v in weights.values())
    meta = training.checkpoint_meta(str(out))
    assert meta["state"]["optimizer_on_servers"] is True
    capfd.readouterr()
    code = main(["train", "resnet20_cifar", "--resume", "--out", str(out), "--kvstore",
                 "local", "--no-progress"])
    assert_clean_error(subprocess.CompletedProcess([], code, *capfd.readouterr()),
                        "dist_async", "momentum lived on the parameter servers",
                        "start a new run")


@pytest.mark.subprocess
def test_a_failing_worker_stops_every_process(tmp_path, capfd):
    """The first worker fails with a bad-input error, the second would wait two minutes:
    the launcher stops it, the server and the scheduler, and reports the failure."""
    script = ("import os, sys, time\n"
              "try:\n"
              f"    os.close(os.open({str(tmp_path / 'first')!r}, os.O_CREAT | os.O_EXCL))\n"
              "except FileExistsError:\n"
              "    time.sleep(120)\n"
              "print('gluonres: error: bad input', file=sys.stderr)\n"
              "sys.exit(2)\n")
    start = time.monotonic()
    proc = launch(capfd, "-n", 2, "-s", 1, "--timeout", 120, "--", sys.executable, "-c", script)
    assert time.monotonic() - start < 60
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert any(line.endswith("gluonres: error: bad input") for line in lines)
    assert "exited with code 2; every other process was stopped" in lines[-1]


def test_dist_kvstore_without_a_launcher_says_how_to_start_it(monkeypatch):
    for name in distributed.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(GluonresError, match="gluonres launch -n WORKERS -s SERVERS"):
        distributed.Workers("dist_sync")


def test_batch_must_split_evenly_over_the_workers():
    workers = distributed.Workers()
    assert workers.shard(32) == slice(0, 32) and workers.step_size(32) == 32
    workers.count, workers.rank = 3, 2
    assert workers.shard(30) == slice(20, 30)
    with pytest.raises(GluonresError, match="does not split evenly over 3 workers"):
        workers.shard(32)


# ------------------------------------------------- issue 20: nothing silent, nothing lost
DRIVER = REPO / "tests" / "train" / "diverge_driver.py"
# a run that would take minutes: long enough to be stopped in the middle
LONG = ["gluonres", "train", "resnet20_cifar", "--data", "digits", "--iterations", "3000",
        "--batch-size", "32", "--kvstore", "dist_sync"]


def children(pid):
    """The pids whose parent is ``pid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid):
    """Whether ``pid`` runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Launcher:
    """``gluonres launch ARGS`` as its own process, its standard error in a file."""

    def __init__(self, tmp_path, *args):
        self.err_path = tmp_path / "launch.err"
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gluonres", "launch", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        self.pids = []

    def stderr(self):
        return self.err_path.read_text()

    def wait_for_training(self, seconds=120):
        """Wait until the four children run and rank 0 says it trains on 2 workers."""
        def started():
            assert self.proc.poll() is None, self.stderr()  # the launcher still runs
            self.pids = sorted(set(self.pids) | set(children(self.proc.pid)))
            return len(self.pids) >= 4 and "on 2 workers" in self.stderr()
        assert wait_for(started, seconds), self.stderr()

    def cleanup(self):
        for pid in [self.proc.pid, *self.pids]:  # only the processes this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.err.close()


@pytest.mark.slow
@pytest.mark.subprocess
def test_diverging_workers_fail_the_run(tmp_path, capfd, monkeypatch):
    """Workers whose weights differ stop at the end of the epoch, before any checkpoint,
    and the launch fails naming them; it used to exit 0 with worker 0's weights."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the driver imports this checkout's gluonres
    out = tmp_path / "run"
    args = TRAIN[2:] + ["--kvstore", "dist_sync", "--out", out]
    proc = launch(capfd, "-n", 2, "-s", 1, "--timeout", 240, "--", sys.executable, DRIVER, *args)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "the dist_sync workers hold different weights" in last
    assert "rank 0" in last and "rank 1" in last and "start the run again" in last
    assert "Traceback" not in proc.stderr
    assert not (out / "weights.params").exists() and not (out / "checkpoint.params").exists()


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_launcher_compares_the_weights_the_workers_report(capfd):
    """A second check that does not rely on the KVStore: ``--json`` records with different
    ``weights_sha256`` fail the launch."""
    script = ("import json, mxnet as mx\n"
              "kv = mx.kv.create('dist_sync')\n"
              "print(json.dumps({'weights_sha256': 'ab' * 31 + str(10 + kv.rank),\n"
              "                  'workers': {'kvstore': 'dist_sync', 'rank': kv.rank}}))\n")
    proc = launch(capfd, "-n", 2, "-s", 1, "--timeout", 120, "--", sys.executable, "-c", script)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "the dist_sync workers hold different weights" in last
    assert "worker0" in last and "worker1" in last and "start the run again" in last


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_the_launchers_processes_end_with_it(tmp_path, signum):
    """SIGTERM: the launcher stops its process group; SIGKILL: the kernel kills every
    child (parent-death signal). Either way no pid of the launch is left within seconds."""
    launcher = Launcher(tmp_path, "-n", 2, "-s", 1, "--", *LONG, "--out", tmp_path / "run")
    try:
        launcher.wait_for_training()
        os.kill(launcher.proc.pid, signum)
        launcher.proc.wait(timeout=30)
        assert wait_for(lambda: not any(alive(p) for p in launcher.pids), 5), \
            [p for p in launcher.pids if alive(p)]
        if signum == signal.SIGTERM:
            assert launcher.proc.returncode == 128 + signum
            assert "stopped by SIGTERM" in launcher.stderr().strip().splitlines()[-1]
    finally:
        launcher.cleanup()


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_stalled_worker_ends_the_run_within_the_bound(tmp_path):
    """SIGSTOP one worker: the other waits for it inside MXNet forever, so the launcher's
    no-progress bound ends the run and names the stopped worker."""
    bound = 10
    launcher = Launcher(tmp_path, "-n", 2, "-s", 1, "--stall-timeout", bound, "--", *LONG,
                        "--out", tmp_path / "run")
    try:
        launcher.wait_for_training()
        pids = re.search(r"pids: ([^)]*)\)", launcher.stderr()).group(1)
        worker1 = int(dict(p.split() for p in pids.split(", "))["worker1"])
        os.kill(worker1, signal.SIGSTOP)
        stopped = time.monotonic()
        launcher.proc.wait(timeout=bound + 30)
        assert time.monotonic() - stopped < bound + 15
        assert launcher.proc.returncode == 1
        last = launcher.stderr().strip().splitlines()[-1]
        assert "no worker made progress" in last and "worker1 is stopped" in last, last
        assert "--stall-timeout SECONDS" in last
        assert wait_for(lambda: not any(alive(p) for p in launcher.pids), 5)
    finally:
        launcher.cleanup()


def test_the_no_progress_bound_scales_with_the_slowest_step():
    progress = distributed.Progress()
    for now in (0.0, 1.0, 11.0):  # the longest wait between two reports: 10 s
        progress.report(now)
    assert progress.bound() == max(distributed.STALL_FLOOR_S, distributed.STALL_SCALE * 10)
    assert progress.stalled(11.0 + progress.bound() - 1) is None
    assert progress.stalled(11.0 + progress.bound() + 1) == pytest.approx(progress.bound() + 1)
    assert distributed.Progress(timeout=0).stalled(1e9) is None  # 0: no bound
    with pytest.raises(GluonresError, match="GLUONRES_STALL_TIMEOUT"):
        distributed.stall_timeout("soon")


def test_a_worker_without_a_launcher_stops_itself_when_it_makes_no_progress():
    """Manual cluster mode: nothing watches the workers, so each one watches itself."""
    progress = distributed.Progress(timeout=0.3)
    progress.report()
    said = []

    class Training:  # the watch lasts as long as its owner
        pass

    owner = Training()
    progress.watch(owner, interval=0.05, on_stall=said.append).join(timeout=10)
    assert len(said) == 1
    assert "no progress for" in said[0] and "GLUONRES_STALL_TIMEOUT=SECONDS" in said[0]
    progress = distributed.Progress(timeout=0.3)
    progress.report()
    thread = progress.watch(Training(), interval=0.05, on_stall=said.append)
    thread.join(timeout=10)  # its owner is gone at once: the watch ends, silently
    assert not thread.is_alive() and len(said) == 1


def test_a_negative_stall_bound_is_refused_before_anything_starts(capfd):
    proc = launch(capfd, "-n", 2, "--stall-timeout", -1, "--", sys.executable, "-c", "pass")
    assert_clean_error(proc, "--stall-timeout -1.0 is negative", "0: no bound")


@pytest.mark.subprocess
def test_a_worker_command_that_cannot_start_is_one_line_and_stops_the_rest(capfd):
    proc = launch(capfd, "-n", 2, "--", "/nonexistent/worker")
    assert_clean_error(proc, "cannot start the worker command '/nonexistent/worker'",
                       "check the command after --")


def test_only_the_statistics_training_updates_are_averaged():
    """Frozen layers are the same on every worker and stay bit-identical: averaging them
    (sum / 3 workers) could move their last bit, so only the running statistics of the
    BatchNorms that train are averaged, no weights."""
    import gluonres
    from gluonres.train.finetune import freeze

    net = gluonres.get_model("resnet20_cifar")
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    all_stats = {p.name for p in distributed.trained_statistics(net)}
    assert all_stats and all(n.endswith(("running_mean", "running_var")) for n in all_stats)
    frozen = set(freeze(net, "stage2"))
    averaged = []

    # one process standing in for a dist_sync worker: its mean records what is averaged
    workers = distributed.Workers()
    workers.kv, workers.kind = object(), "dist_sync"
    workers.mean = lambda name, array: averaged.append(name) or array
    workers.check_identical = lambda net: None
    workers.average_statistics(net)
    assert set(averaged) == {p.name for p in distributed.trained_statistics(net)}
    assert set(averaged) < all_stats and not set(averaged) & frozen
    assert set(averaged) | (all_stats & frozen) == all_stats
