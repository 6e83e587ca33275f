"""The bench's fairness check: a peer in another process is trusted only when it runs as
fast inside the bench as alone, block by block, and when neither side uses CPU while it
should be idle."""
import os
import subprocess
import sys
import time

import pytest

from gluonres import machine
from gluonres.measure import bench, peers
from gluonres.measure.timing import Timer, interleaved

QUIET = {"peer_while_gluonres_timed": 0.0, "gluonres_while_peer_timed": 0.0}


class FakePeers:
    """A peer process whose idle CPU is given."""

    def __init__(self, idle=None):
        self._idle = idle or QUIET

    def idle_cpu(self):
        return dict(self._idle)


def timed(name, *blocks):
    """A timer holding the given samples, block after block."""
    t = Timer(name, None, 1)
    t.samples = [rate for block in blocks for rate in block]
    return t


def check(inside, alone, sizes=(2, 2), idle=None, twin_idle=None):
    """peer_check of one peer 'torch_train' with these samples."""
    return bench.peer_check(FakePeers(idle), FakePeers(twin_idle),
                            [timed("torch_train", *inside)],
                            [timed("torch_train", *alone)] if alone else [], list(sizes))


def test_blocks_split_the_rounds():
    assert bench.blocks(16) == [4, 4, 4, 4]
    assert bench.blocks(10) == [5, 5]
    assert bench.blocks(7) == [7] and bench.blocks(5) == [5] and bench.blocks(1) == [1]
    assert bench.blocks(18) == [5, 5, 4, 4]


def test_a_peer_within_tolerance_of_itself_alone_passes():
    c = check(inside=[[95, 95], [95, 95]], alone=[[100, 100], [100, 100], [100, 100]])
    assert c["trustworthy"] and c["peers"]["torch_train"]["ok"]
    assert c["peers"]["torch_train"]["ratio"] == 0.95
    assert c["peers"]["torch_train"]["block_ratios"] == [0.95, 0.95]


@pytest.mark.parametrize("inside", [22.0, 120.0])  # slowed by an idle neighbour, or faster
def test_a_peer_off_by_more_than_tolerance_fails_the_record(inside):
    c = check(inside=[[inside] * 2] * 2, alone=[[104, 104]] * 3)
    assert not c["trustworthy"]
    assert "torch_train" in c["reasons"][0] and "104 alone" in c["reasons"][0]


def test_a_machine_that_drifts_is_compared_block_by_block():
    """The machine slows from 100 to 80 over the bench, inside and alone alike: each
    block is compared with the alone timings around it, so the peer passes, and the
    drift is reported, not hidden."""
    alone = [[100, 100], [90, 90], [80, 80]]
    inside = [[95, 95], [85, 85]]
    c = check(inside, alone)
    row = c["peers"]["torch_train"]
    assert c["trustworthy"] and row["block_ratios"] == [1.0, 1.0]
    assert row["alone_drift"] == 0.25
    # a peer slowed in most blocks fails; one slow block alone is outvoted by the median
    # (a passing moment of the machine, not a peer slower inside the bench)
    alone = [[100, 100], [90, 90], [80, 80], [80, 80]]
    c = check([[60, 60], [60, 60], [85, 85]], alone, sizes=(2, 2, 2))
    assert not c["trustworthy"] and c["peers"]["torch_train"]["ratio"] == pytest.approx(
        60 / 85, abs=1e-3)
    c = check([[60, 60], [85, 85], [80, 80]], alone, sizes=(2, 2, 2))
    assert c["trustworthy"] and c["peers"]["torch_train"]["block_ratios"][0] < 0.7


def test_a_peer_that_cannot_be_timed_alone_is_not_trusted():
    c = check(inside=[[500, 500]] * 2, alone=None)
    assert not c["trustworthy"] and c["peers"]["torch_train"]["ratio"] is None
    assert "torch_train could not be compared with itself alone" in c["reasons"][0]
    # nor one whose twin missed a block's samples
    c = check(inside=[[500, 500]] * 2, alone=[[500, 500], [500, 500]])
    assert not c["trustworthy"]


@pytest.mark.parametrize("side", ["idle", "twin_idle"])
def test_an_idle_side_using_cpu_fails_the_record(side):
    busy = {"peer_while_gluonres_timed": 0.4, "gluonres_while_peer_timed": 0.0}
    c = check(inside=[[300, 300]] * 2, alone=[[300, 300]] * 3, **{side: busy})
    assert not c["trustworthy"]
    name = ("peer_while_gluonres_timed" if side == "idle"
            else "alone_peer_while_bench_timed")
    assert f"40% of a core ({name})" in c["reasons"][0]


def test_the_table_says_when_the_peer_ratios_are_not_trustworthy():
    model = {"model": "resnet20_cifar", **{k: None for k in bench.KEYS}, "latency1_ms": 1.0,
             "peak_fraction": None, "ratios": {"hybrid_vs_torch_train": None},
             "peer_check": check(inside=[[22, 22]] * 2, alone=[[104, 104]] * 3)}
    record = {"batch": 128, "repeats": 4, "gemm_gflops": 100.0,
              "machine": {"omp_num_threads": "2"}, "models": [model]}
    assert "FAILED, the peer ratios above are not trustworthy" in bench.table(record)
    model["peer_check"] = check(inside=[[103, 103]] * 2, alone=[[104, 104]] * 3)
    text = bench.table(record)
    assert "peer self-check" in text and "passed" in text and "around each of 2 blocks" in text


def test_the_bench_times_the_peers_alone_around_every_block():
    """The order of samples in in_blocks: twin warm-up, bench warm-up and one timed
    call each to size the samples, then alone before each block and after the last,
    every sample after an untimed call of its own; the peer alone takes as many calls
    per sample as inside."""
    log = []

    def recorder(name, seconds):
        return Timer(name, lambda iters: log.append((name, iters)) or seconds * iters, 1)

    alone, timers = [recorder("b", 0.1)], [recorder("a", 1.0), recorder("b", 0.1)]
    sizes, errors, twin_errors = bench.in_blocks(timers, alone, 8, 1, 1)
    assert sizes == [4, 4] and errors == twin_errors == {}

    def sample(name):
        return [(name, bench.SETTLE_CALLS), (name, {"a": 1, "b": 5}[name])]

    block = [c for name in ["a", "b", "b", "a"] * 2 for c in sample(name)]  # every other
    alone_block = sample("b") * 4                                            # round reversed
    start = [("b", 1), ("a", 1), ("b", 1), ("a", 1), ("b", 1)]  # warm-ups, calibration
    assert log == start + alone_block + block + alone_block + block + alone_block
    assert len(alone[0].samples) == 12 and len(timers[0].samples) == 8
    # samples of at least MIN_SAMPLE_S: 5 calls of 0.1 s, inside and alone
    assert [t.iters for t in timers] == [1, 5] and alone[0].iters == 5
    assert alone[0].seconds == [pytest.approx(0.5)] * 12


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


def test_the_twin_sets_the_peers_up_again_in_a_fresh_process(fake_peer):
    p = peers.Peers(sys.executable)
    try:
        p.timer("sleepy", 10, batch=1)
        p.timer("dozy", 20, batch=2)
        twin, timers = p.twin()
        try:
            assert twin.proc.pid != p.proc.pid and p.proc.poll() is None
            interleaved(timers, 2, 0, 1)
            rates = {t.name: t.median_rate() for t in timers}
        finally:
            twin.close()
    finally:
        p.close()
    assert rates == {"sleepy": pytest.approx(10 / 0.05), "dozy": pytest.approx(20 / 0.05)}


def test_the_target_ratios_are_also_given_against_the_peers_alone():
    """A peer slower inside the bench than alone would flatter gluonres: the ratio
    against the peer alone is given beside it."""
    model = {"hybrid_train_img_s": 200.0, "torch_train_img_s": 100.0,
             "int8_fwd_img_s": 3000.0, "openvino_fwd_img_s": 1000.0,
             "peer_check": check(inside=[[100, 100]] * 2, alone=[[125, 125]] * 3)}
    model["peer_check"]["peers"]["openvino_fwd"] = {"alone": 1200.0}
    r = bench.ratios(model)
    assert r["hybrid_vs_torch_train"] == 2.0 and r["hybrid_vs_torch_train_alone"] == 1.6
    assert r["int8_vs_openvino_fwd"] == 3.0 and r["int8_vs_openvino_fwd_alone"] == 2.5
    assert bench.ratios({"hybrid_train_img_s": 200.0})["hybrid_vs_torch_train_alone"] is None


def test_odd_blocks_keep_forward_and_reversed_rounds_balanced():
    """blocks(10) is [5, 5]: the second block goes on alternating from round 5, so each
    timer is first in 5 rounds and last in 5, as in one run of 10 rounds."""
    firsts = []

    class Ordered(Timer):
        def time(self, iters):
            firsts.append(self.name)
            super().time(iters)

    timers = [Ordered(n, lambda iters: 1.0, 1) for n in ("a", "b")]
    sizes, _, _ = bench.in_blocks(timers, [], 10, 1, 1)
    assert sizes == [5, 5]
    rounds = [firsts[i:i + 2] for i in range(0, 20, 2)]
    assert rounds.count(["a", "b"]) == rounds.count(["b", "a"]) == 5


def test_a_variant_failing_on_its_first_call_is_dropped_not_fatal():
    """With no warm-up asked for, the sizing call is the first: a variant (an optional
    peer) that fails there is dropped with its error, and the others are timed."""
    def broken(iters):
        raise RuntimeError("no such engine")

    ok = Timer("ok", lambda iters: 0.5 * iters, 1)
    timers = [Timer("broken", broken, 1), ok]
    sizes, errors, _ = bench.in_blocks(timers, [], 4, 0, 1)
    assert timers == [ok] and len(ok.samples) == 4
    assert errors == {"broken": "RuntimeError: no such engine"}


# malloc a 16 MiB buffer, touch it, free it: how much resident memory the free gave back
RELEASE_PROBE = '''
import ctypes, json, resource, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
if "--mallopt" in sys.argv:
    from gluonres.machine import keep_freed_memory
    assert keep_freed_memory()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
p = libc.malloc(16 << 20)
ctypes.memset(p, 1, 16 << 20)
before = rss()
libc.free(ctypes.c_void_p(p))
released = before - rss()
if "--peer" in sys.argv:  # answer the bench's first request ("info") with it
    sys.stdin.readline()
    print(json.dumps({"released": released}), flush=True)
    sys.stdin.read()
else:
    print(released)
'''


def released_by(args=(), env=None):
    out = subprocess.run([sys.executable, "-c", RELEASE_PROBE, *args], env=env,
                         capture_output=True, text=True, check=True).stdout
    return int(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc: Linux")
def test_every_timed_process_keeps_the_memory_it_frees(tmp_path, monkeypatch):
    """The bench process and its peers allocate alike: none hands a step's freed
    buffers back to the kernel and faults them in again on its next sample."""
    assert released_by() >= 15 << 20  # glibc's default: a 16 MiB buffer is unmapped
    assert released_by(["--mallopt"]) < 1 << 20  # the bench process
    assert released_by(env=machine.keep_freed_memory_env(dict(os.environ))) < 1 << 20
    script = tmp_path / "peer.py"
    script.write_text(RELEASE_PROBE)
    monkeypatch.setattr(peers, "PEERS_SCRIPT", str(script))
    real_popen = peers.subprocess.Popen
    monkeypatch.setattr(peers.subprocess, "Popen",
                        lambda cmd, **kw: real_popen([*cmd, "--peer"], **kw))
    p = peers.Peers(sys.executable)  # the peer worker, as the bench starts it
    try:
        assert p.info["released"] < 1 << 20
    finally:
        p.close()
