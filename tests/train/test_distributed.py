"""Distributed training on MXNet's parameter server, on loopback: `gluonres launch`."""
import dataclasses
import json
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

from helpers import assert_clean_error


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
