"""The bench's fairness check: a peer in another process is trusted only when it runs as
fast inside the bench as alone, and when neither side uses CPU while it should be idle."""
import sys
import time

import pytest

from gluonres.measure import bench, peers
from gluonres.measure.timing import Timer, interleaved


class FakePeers:
    """Peers whose 'alone' timings and idle CPU are given."""

    def __init__(self, alone, idle=None):
        self._alone, self.setups = alone, {name: {} for name in alone}
        self._idle = idle or {"peer_while_gluonres_timed": 0.0,
                              "gluonres_while_peer_timed": 0.0}

    def alone(self, repeats, warmup, iters, gap=0.0):
        return dict(self._alone)

    def idle_cpu(self):
        return self._idle


def timed(name, rate):
    t = Timer(name, None, 1)
    t.samples = [rate]
    return t


def test_a_peer_within_tolerance_of_itself_alone_passes():
    check = bench.peer_check(FakePeers({"torch_train": 100.0}),
                             [timed("torch_train", 95.0)], 5, 2, 2)
    assert check["trustworthy"] and check["peers"]["torch_train"]["ok"]
    assert check["peers"]["torch_train"]["ratio"] == 0.95


@pytest.mark.parametrize("inside", [22.0, 120.0])  # slowed by an idle neighbour, or faster
def test_a_peer_off_by_more_than_tolerance_fails_the_record(inside):
    check = bench.peer_check(FakePeers({"torch_train": 104.0}),
                             [timed("torch_train", inside)], 5, 2, 2)
    assert not check["trustworthy"]
    assert "torch_train" in check["reasons"][0] and "104 alone" in check["reasons"][0]


def test_a_peer_that_cannot_be_timed_alone_is_not_trusted():
    check = bench.peer_check(FakePeers({"openvino_fwd": None}),
                             [timed("openvino_fwd", 500.0)], 5, 2, 2)
    assert not check["trustworthy"]


def test_an_idle_side_using_cpu_fails_the_record():
    idle = {"peer_while_gluonres_timed": 0.4, "gluonres_while_peer_timed": 0.0}
    check = bench.peer_check(FakePeers({"torch_fwd": 300.0}, idle),
                             [timed("torch_fwd", 300.0)], 5, 2, 2)
    assert not check["trustworthy"]
    assert "40% of a core (peer_while_gluonres_timed)" in check["reasons"][0]


def test_the_table_says_when_the_peer_ratios_are_not_trustworthy():
    model = {"model": "resnet20_cifar", **{k: None for k in bench.KEYS}, "latency1_ms": 1.0,
             "peak_fraction": None, "ratios": {"hybrid_vs_torch_train": None},
             "peer_check": bench.peer_check(FakePeers({"torch_train": 104.0}),
                                            [timed("torch_train", 22.0)], 5, 2, 2)}
    record = {"batch": 128, "repeats": 5, "gemm_gflops": 100.0,
              "machine": {"omp_num_threads": "2"}, "models": [model]}
    assert "FAILED, the peer ratios above are not trustworthy" in bench.table(record)
    model["peer_check"] = bench.peer_check(FakePeers({"torch_train": 104.0}),
                                           [timed("torch_train", 103.0)], 5, 2, 2)
    assert "peer self-check" in bench.table(record) and "passed" in bench.table(record)


# -------------------------------------------------------------- the real peer process
BUSY_PEER = r'''
import json, sys, time, threading
burn = "--burn" in sys.argv  # a peer whose thread keeps spinning between requests
if burn:
    def spin():
        while True:
            pass
    threading.Thread(target=spin, daemon=True).start()
for line in sys.stdin:
    req = json.loads(line)
    if req["cmd"] == "time":
        c0, w0 = time.process_time(), time.monotonic()
        time.sleep(0.05 * req["iters"])
        reply = {"seconds": 0.05 * req["iters"], "cpu": [c0, time.process_time()],
                 "wall": [w0, time.monotonic()]}
    else:
        reply = {"ok": True}
    print(json.dumps(reply), flush=True)
'''


@pytest.fixture
def fake_peer(tmp_path, monkeypatch):
    script = tmp_path / "peer.py"
    script.write_text(BUSY_PEER)
    monkeypatch.setattr(peers, "PEERS_SCRIPT", str(script))
    return script


@pytest.mark.parametrize("burn", [False, True])
def test_the_idle_peers_cpu_is_measured(fake_peer, monkeypatch, burn):
    python = sys.executable
    if burn:  # the peer command line gets --burn: a spinning thread between samples
        real_popen = peers.subprocess.Popen
        monkeypatch.setattr(peers.subprocess, "Popen",
                            lambda cmd, **kw: real_popen([*cmd, "--burn"], **kw))
    p = peers.Peers(python)
    try:
        timer = p.timer("sleepy", 1)
        host = Timer("host", lambda iters: time.sleep(0.05 * iters) or 0.05 * iters, 1)
        interleaved([timer, host], 3, 0, 10)  # 0.5 s samples: piping a request is < 1%
        idle = p.idle_cpu()
    finally:
        p.close()
    assert idle["gluonres_while_peer_timed"] < 0.05  # this process slept meanwhile
    if burn:
        assert idle["peer_while_gluonres_timed"] > peers.IDLE_CPU_LIMIT  # flagged
    else:
        assert idle["peer_while_gluonres_timed"] < 0.05


def test_the_peers_are_timed_alone_together_in_a_fresh_process(fake_peer):
    p = peers.Peers(sys.executable)
    try:
        p.timer("sleepy", 10, batch=1)
        p.timer("dozy", 20, batch=2)
        first = p.proc.pid
        rates = p.alone(2, 0, 1)
        assert p.proc.pid == first and p.proc.poll() is None  # the bench's peer stays
    finally:
        p.close()
    assert rates == {"sleepy": pytest.approx(10 / 0.05), "dozy": pytest.approx(20 / 0.05)}


def test_alone_before_and_after_bracket_the_bench():
    """Inside at 100 between 95 alone before and 104 after: the mean, 99.5, is the
    reference, and the peer passes."""
    check = bench.peer_check(FakePeers({"torch_fwd": 104.0}), [timed("torch_fwd", 100.0)],
                             5, 2, 2, before={"torch_fwd": 95.0})
    row = check["peers"]["torch_fwd"]
    assert check["trustworthy"] and row["alone"] == 99.5
    assert (row["alone_before"], row["alone_after"]) == (95.0, 104.0)


def test_a_machine_that_drifts_during_the_bench_is_not_trusted():
    check = bench.peer_check(FakePeers({"torch_fwd": 1944.0}), [timed("torch_fwd", 1800.0)],
                             5, 2, 2, before={"torch_fwd": 1699.0})
    assert not check["trustworthy"]
    assert ("torch_fwd alone ran at 1699 img/s before the bench and 1944 after: the machine's "
            "speed moved") in check["reasons"][0]


def test_a_peer_missing_before_is_not_compared_with_half_a_bracket():
    check = bench.peer_check(FakePeers({"torch_fwd": 100.0}), [timed("torch_fwd", 100.0)],
                             5, 2, 2, before={"torch_fwd": None})
    assert not check["trustworthy"] and check["peers"]["torch_fwd"]["alone"] is None
