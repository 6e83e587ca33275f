"""Side-by-side benchmark: every way of running a model, timed in one process, interleaved.

For each model it times batch-``N`` forward throughput, training-step throughput and
batch-1 latency of

* gluonres imperative (no hybridization) and gluonres hybridized
  (:func:`gluonres.train.speed.for_inference` / :func:`~gluonres.train.speed.for_training`),
* the closest GluonCV model, hybridized with static memory,
* the model as ``gluonres export`` writes it (:mod:`gluonres.deploy`): its ONNX file under
  ONNX Runtime, and its oneDNN INT8 graph,
* optional peers from a separate interpreter (``benchmarks/peers.py``): OpenVINO on the
  same ONNX file and PyTorch eager on the same architecture; they are skipped with a
  note when that interpreter or package is missing,

plus an fp32 GEMM on the same threads as the machine's measured ceiling. Each variant is
warmed up first (excluded); then every repeat runs all variants one after the other, so
a change in background load hits all of them alike, and the median over repeats is
reported (:func:`gluonres.measure.timing.interleaved`).

Peers run in another process, so the bench checks that they were timed fairly: a short
sleep before every sample lets the side timed before fall idle (OpenMP threads spin for
a while after their work), the CPU each idle side used is measured, and every peer is
also timed alone, in a process of its own, before, between and after the blocks the
bench's rounds are split into (:func:`blocks`), so that each block's inside timing is
compared with alone timings that bracket it in time. A peer inside the bench more than
:data:`~gluonres.measure.peers.PEER_TOLERANCE` away from itself alone (the median over
blocks), or an idle side above :data:`~gluonres.measure.peers.IDLE_CPU_LIMIT` of a core,
makes the record say its peer ratios are not trustworthy (:func:`peer_check`). Every
timed process keeps the memory it frees (:func:`gluonres.machine.keep_freed_memory`):
with glibc's default, a step's freed buffers go back to the kernel and are faulted in
again on the next step, at a cost that depends on what the kernel and the host did with
them meanwhile, and a peer idles between its samples inside the bench, barely at all
alone (``benchmarks/freed_memory.py``, docs/performance.md).
"""
import os
import tempfile

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from gluonres import deploy
from gluonres.analysis.summary import summary
from gluonres.data.preprocess import Preprocess
from gluonres.deploy import runtime
from gluonres.deploy.quantize import Calibration
from gluonres.errors import GluonresError
from gluonres.machine import KEEP_FREED_MEMORY, keep_freed_memory, machine, threads
from gluonres.measure.peers import (DEFAULT_PEERS_PYTHON, GLUONCV_PEERS, IDLE_CPU_LIMIT,
                                    PEER_TOLERANCE, Peers, gluoncv_net)
from gluonres.measure.timing import calibrate, forward, gemm_gflops, interleaved, local
from gluonres.models import get_model, model_info
from gluonres.models.init import he_initialize
from gluonres.train import speed


#: Untimed seconds before each sample (:func:`~gluonres.measure.timing.interleaved`):
#: longer than libgomp's spin and Intel OpenMP's default 200 ms block time.
GAP_S = 0.3


#: Untimed calls before each sample (:func:`~gluonres.measure.timing.interleaved`).
SETTLE_CALLS = 1

#: Shortest timed sample, in seconds (:func:`~gluonres.measure.timing.calibrate`).
MIN_SAMPLE_S = 0.5

#: Most blocks the bench's rounds are split into (:func:`blocks`), the peers timed alone
#: before, between and after them: a slow drift of the machine's speed over the bench
#: then falls on a block and the alone timings around it alike.
BLOCKS = 4


#: the JSON record's keys per model (null where a variant does not apply)
KEYS = ("hybrid_fwd_img_s", "imperative_fwd_img_s", "gluoncv_fwd_img_s",
        "onnxruntime_fwd_img_s", "int8_fwd_img_s", "openvino_fwd_img_s", "torch_fwd_img_s",
        "hybrid_train_img_s", "imperative_train_img_s", "gluoncv_train_img_s",
        "gluoncv_static_train_img_s", "gluoncv_imperative_train_img_s", "torch_train_img_s",
        "realdata_train_img_s")


# ---------------------------------------------------------------------------- variants
def build_net(name, seed=0):
    """Registered model ``name``, He-initialised with ``seed``, its shapes inferred."""
    net = get_model(name)
    he_initialize(net, seed)
    net.infer_shape(mx.nd.zeros(model_info(net).input_shape()))
    return net


def backward_pass(block, loss_fn):
    """``forward_backward(x, y)``: the loss of ``block`` and its gradients, by autograd."""
    def forward_backward(x, y):
        with autograd.record():
            loss = loss_fn(block(x), y)
        loss.backward()
    return forward_backward


def sgd_step(params, forward_backward, x, y, next_batch=None):
    """One SGD step on the fixed batch ``(x, y)`` or on ``next_batch()``, waited for.

    Parameters
    ----------
    params : mxnet.gluon.ParameterDict
        What the step updates (momentum 0.9, weight decay 1e-4, learning rate 0.01).
    forward_backward : callable
        Computes the gradients of ``params`` on a batch, e.g. :func:`backward_pass`.
    x, y : mxnet.nd.NDArray
    next_batch : callable, optional
        Returns the next ``(x, y)``; the batch size stays that of ``x``.

    Returns
    -------
    callable
        One step per call.
    """
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.01, "momentum": 0.9,
                                            "wd": 1e-4})
    batch = x.shape[0]

    def step():
        forward_backward(*(next_batch() if next_batch else (x, y)))
        trainer.step(batch)
        mx.nd.waitall()
    return step


def _train(name, block, x, y, next_batch=None):
    """A timer for :func:`sgd_step` calls training ``block`` on ``(x, y)`` or ``next_batch()``."""
    forward_backward = backward_pass(block, gluon.loss.SoftmaxCrossEntropyLoss())
    return local(name, sgd_step(block.collect_params(), forward_backward, x, y, next_batch),
                 x.shape[0])


def _onnxruntime(name, folder, x):
    """ONNX Runtime on ``name``'s ONNX file as ``gluonres export --onnx`` writes it.

    Returns the file and a callable running the batch ``x``.
    """
    path = deploy.export(build_net(name), folder, onnx=True)["onnx"]
    session = runtime.onnx_session(path)
    feed = {session.get_inputs()[0].name: x.asnumpy()}
    return path, lambda: session.run(None, feed)


def _int8(name, folder, calib_images):
    """``name``'s INT8 graph as ``gluonres export --int8`` writes it, loaded back.

    Calibrated on random images whose preprocessing maps pixels to [-1, 1], the range of
    the timed input: this measures speed only (``gluonres int8-bench`` calibrates on real
    images and measures accuracy).
    """
    net = build_net(name)
    size = model_info(net).input_shape()[2:]
    images = np.random.RandomState(0).randint(0, 256, (calib_images, *size, 3), np.uint8)
    deploy.export(net, folder, preprocess=Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3),
                  calibration=Calibration(images, {"data": "random uint8 images",
                                                   "seed": 0}))
    return runtime.load_exported(folder, "int8").net


def _real_data_batches(spec, batch):
    """Training batches exactly as ``gluonres train`` feeds them, endlessly.

    Loaded with :func:`gluonres.data.load` (``spec``: ``cifar10``, ``digits`` or a
    path), augmented (pad-crop-flip) and normalised by the training pipeline itself
    (:func:`gluonres.train.input_stream`), so the measurement includes everything a real
    epoch spends outside the network.

    Returns
    -------
    callable
        Each call returns the next ``(x, y)`` batch.
    """
    from gluonres import data
    from gluonres import train as training
    dataset = data.load(spec, progress=False)
    config = training.TrainConfig(batch_size=batch)
    preprocess = Preprocess.fit(dataset.train.images, config.normalize)
    return training.input_stream(dataset.train, config, preprocess).__next__


def bench_model(name, batch=128, repeats=5, warmup=2, iters=2, peers=None, real_data=None,
                progress=None):
    """Time every variant of one model side by side; return its JSON record.

    Parameters
    ----------
    name : str
        Registered model.
    batch : int
        Batch for throughput (latency is always batch 1).
    repeats, warmup, iters : int
        Timed rounds (median reported), warm-up calls per variant, fewest calls per
        sample (samples last at least :data:`MIN_SAMPLE_S`).
    peers : Peers, optional
    real_data : str, optional
        A data spec (``cifar10``, ``digits``, a path): also time the training step fed
        by the training pipeline with that data.
    """
    net = build_net(name)
    shape = model_info(net).input_shape(batch)
    x = mx.nd.random.uniform(-1, 1, shape=shape)
    y = mx.nd.array(np.arange(batch) % net.classes)
    notes = {}
    fwd, train = [], []
    if peers is not None:
        peers.reset_idle()

    # forward throughput at `batch`
    fwd.append(forward("hybrid_fwd", speed.for_inference(net, batch), x))
    fwd.append(forward("imperative_fwd", build_net(name), x))
    peer_name = GLUONCV_PEERS.get(name)
    if peer_name:
        gcv_fwd = gluoncv_net(peer_name)
        gcv_fwd.hybridize(static_alloc=True, static_shape=True)
        fwd.append(forward("gluoncv_fwd", gcv_fwd, x))
        notes["gluoncv"] = peer_name
    else:
        notes["gluoncv"] = f"no GluonCV counterpart of {name}"
    with tempfile.TemporaryDirectory(prefix="gluonres-bench-") as tmp:
        # onnx and onnxruntime are the [test] extra: the exporter refuses without onnx
        try:
            onnx_path, run_onnx = _onnxruntime(name, os.path.join(tmp, "onnx"), x)
            fwd.append(local("onnxruntime_fwd", run_onnx, batch))
        except GluonresError as err:
            onnx_path = None
            notes["onnxruntime"] = f"skipped: {err}"
        except ImportError as err:
            onnx_path = None
            notes["onnxruntime"] = (f"skipped: {err.name} is not installed "
                                    "(pip install 'gluonres[test]')")
        try:
            fwd.append(forward("int8_fwd", _int8(name, os.path.join(tmp, "int8"), 4 * batch),
                               x))
        except mx.base.MXNetError as err:
            notes["int8"] = f"skipped: quantization failed: {str(err).splitlines()[0]}"
        torch_kwargs = {"model": name, "batch": batch, "threads": threads(),
                        "onnx": onnx_path, "shape": list(shape)}
        if peers is not None:
            for peer in ("openvino_fwd", "torch_fwd")[onnx_path is None:]:
                t = peers.timer(peer, batch, **torch_kwargs)
                if t is not None:
                    fwd.append(t)

        # training-step throughput at `batch`
        # a network of its own: training changes the weights, and the fused inference
        # graph of `net` would refold its BatchNorms after every change
        train.append(_train("hybrid_train", speed.for_training(build_net(name)), x, y))
        train.append(_train("imperative_train", build_net(name), x, y))
        if peer_name:
            # GluonCV as its training scripts run it (hybridize()), with static memory,
            # and imperative: what makes its hybridized step slow
            for variant, flags in (("gluoncv_train", {}),
                                   ("gluoncv_static_train", {"static_alloc": True,
                                                             "static_shape": True}),
                                   ("gluoncv_imperative_train", None)):
                gcv = gluoncv_net(peer_name)
                if flags is not None:
                    gcv.hybridize(**flags)
                train.append(_train(variant, gcv, x, y))
        if peers is not None:
            t = peers.timer("torch_train", batch, **torch_kwargs)
            if t is not None:
                train.append(t)
        if real_data:
            # the same step as hybrid_train, fed by the training pipeline
            train.append(_train("realdata_train", speed.for_training(build_net(name)), x, y,
                                _real_data_batches(real_data, batch)))
            notes["realdata"] = f"training batches from {real_data} (augmented, normalised)"

        # the peers alone before, between and after blocks of the bench's rounds, in
        # a twin process, so that each block is compared with alone timings around it
        twin, alone = peers.twin() if peers is not None and peers.setups else (None, [])
        try:
            timers = fwd + train
            sizes, errors, twin_errors = in_blocks(timers, alone, repeats, warmup, iters,
                                                   progress)
            notes.update({f"{name} alone": f"failed: {err}"
                          for name, err in twin_errors.items()})
            peer_timers = [t for t in timers if peers is not None and t.name in peers.setups]
            check = (peer_check(peers, twin, peer_timers, alone, sizes)
                     if peer_timers else None)
        finally:
            if twin is not None:
                twin.close()

        # batch-1 latency of the hybridized graph: median over single calls
        one = mx.nd.random.uniform(-1, 1, shape=model_info(net).input_shape(1))
        latency = forward("latency1", speed.for_inference(net, 1), one)
        interleaved([latency], max(20, 4 * repeats), warmup + 3, 1)
        latency_ms = 1000 / latency.median_rate()

    rates = {t.name + "_img_s": t.median_rate() for t in fwd + train}
    record = {"model": name, **{k: rates.get(k) for k in KEYS}, "latency1_ms": latency_ms}
    macs = summary(net).macs
    record["gflop_per_image"] = 2 * macs / 1e9
    if record["hybrid_fwd_img_s"]:
        record["hybrid_fwd_gflops"] = record["hybrid_fwd_img_s"] * 2 * macs / 1e9
    record["samples"] = {t.name: [round(s, 1) for s in t.samples] for t in fwd + train}
    record["calls_per_sample"] = {t.name: t.iters for t in fwd + train}
    record["notes"] = {**notes, **{k: f"failed: {v}" for k, v in errors.items()}}
    record["peer_check"] = check
    return record


def blocks(repeats):
    """Rounds per block: ``repeats`` split into up to :data:`BLOCKS` near-equal blocks
    of at least 4 rounds (one block below 8)."""
    n = max(1, min(BLOCKS, repeats // 4))
    return [repeats // n + (i < repeats % n) for i in range(n)]


def in_blocks(timers, alone, repeats, warmup, iters, progress=None):
    """Time ``timers`` for ``repeats`` rounds in :func:`blocks`, the ``alone`` timers
    before, between and after the blocks (as many rounds as the block that follows;
    after the last, as many as it had), every sample after a :data:`GAP_S` sleep.

    Both lists are warmed up first (at least one call each); a timer whose warm-up or
    sizing call raises is dropped from its list
    (:func:`~gluonres.measure.timing.interleaved`). Each sample is then at least
    ``iters`` calls and at least :data:`MIN_SAMPLE_S` long
    (:func:`~gluonres.measure.timing.calibrate`); a peer alone takes as many calls per
    sample as inside. Forward and reversed rounds alternate across the blocks.

    Returns
    -------
    tuple of (list of int, dict, dict)
        The block sizes, and the errors of dropped ``timers`` and ``alone`` timers by
        name.
    """
    sizes, errors = blocks(repeats), {}
    warmup = max(warmup, 1)  # the sizing call below times a warm timer
    twin_errors = interleaved(alone, 0, warmup, iters, drop_failing=True)
    errors.update(interleaved(timers, 0, warmup, iters, drop_failing=True))
    calls, failed = calibrate(timers, MIN_SAMPLE_S, iters)
    errors.update(failed)
    for t in alone:  # a peer alone takes the samples it takes inside
        t.iters = calls.get(t.name, iters)
    for i, n in enumerate(sizes):
        done = sum(sizes[:i])
        interleaved(alone, n, 0, iters, gap=GAP_S, settle=SETTLE_CALLS, start=done)
        interleaved(timers, n, 0, iters, gap=GAP_S, settle=SETTLE_CALLS, start=done,
                    progress=(lambda r, _, done=done: progress(done + r, repeats))
                    if progress else None)
    interleaved(alone, sizes[-1], 0, iters, gap=GAP_S, settle=SETTLE_CALLS, start=repeats)
    return sizes, errors, twin_errors


def _block_medians(samples, sizes):
    """The median of each consecutive run of ``sizes`` samples (``None`` for a run the
    samples do not cover)."""
    out, start = [], 0
    for n in sizes:
        chunk = samples[start:start + n]
        out.append(float(np.median(chunk)) if n and len(chunk) == n else None)
        start += n
    return out


def peer_check(peers, twin, inside, alone, sizes):
    """Were the peers timed fairly? Each peer's speed inside the bench against the same
    peer timed alone in its twin process (:meth:`Peers.twin`) around each block, and
    the CPU of the idle sides (:meth:`Peers.idle_cpu` of both peer processes).

    The bench's rounds ran in blocks of ``sizes`` rounds, the twin's peers timed alone
    before the first block, between blocks and after the last (``sizes[i]`` rounds
    before block ``i``, ``sizes[-1]`` after the last). A block's inside median is
    divided by the mean of the alone medians just before and just after it, and a peer
    passes when the median of those ratios is within :data:`PEER_TOLERANCE` of 1: the
    comparison is paired in time, so the machine's own drift over the bench (the
    alone timings' spread, reported as ``alone_drift``) cancels instead of failing it.

    Parameters
    ----------
    peers, twin : Peers
        The bench's peer process and its twin.
    inside, alone : list of Timer
        The peers' timers from inside the bench, and the twin's.
    sizes : list of int
        :func:`blocks` of the bench's repeats.

    Returns
    -------
    dict
        ``peers``: per peer, img/s ``inside`` and ``alone`` (medians of all samples),
        ``block_ratios``, their median ``ratio``, ``alone_drift`` (largest over
        smallest alone block median, minus 1) and ``ok``; ``idle_cpu``; ``trustworthy``
        and, when not, ``reasons``.
    """
    rows, reasons = {}, []
    twins = {t.name: t for t in alone}
    for t in inside:
        a = twins.get(t.name)
        ins = _block_medians(t.samples, sizes)
        out = _block_medians(a.samples, [*sizes, sizes[-1]]) if a else []
        paired = [i / ((b + c) / 2) for i, b, c in zip(ins, out, out[1:])
                  if i and b and c]
        ratio = float(np.median(paired)) if len(paired) == len(sizes) else None
        ok = ratio is not None and abs(ratio - 1) <= PEER_TOLERANCE
        drift = (max(out) / min(out) - 1) if out and all(out) else None
        rows[t.name] = {"inside": t.median_rate(), "alone": a.median_rate() if a else None,
                        "block_ratios": [round(r, 3) for r in paired],
                        "ratio": None if ratio is None else round(ratio, 3),
                        "alone_drift": None if drift is None else round(drift, 3), "ok": ok}
        if ratio is None:
            reasons.append(f"{t.name} could not be compared with itself alone (timed "
                           f"alone in {sum(map(bool, out))} of {len(sizes) + 1} slots)")
        elif not ok:
            reasons.append(f"{t.name}: {ratio:.2f} of itself alone (median over "
                           f"{len(sizes)} blocks; {_fmt(t.median_rate())} img/s inside, "
                           f"{_fmt(a.median_rate())} alone)")
    idle = peers.idle_cpu()
    twin_idle = twin.idle_cpu()
    idle.update(alone_peer_while_bench_timed=twin_idle["peer_while_gluonres_timed"],
                gluonres_while_alone_timed=twin_idle["gluonres_while_peer_timed"])
    for side, share in idle.items():
        if share is not None and share > IDLE_CPU_LIMIT:
            reasons.append(f"idle side used {100 * share:.0f}% of a core ({side})")
    return {"peers": rows, "blocks": list(sizes), "idle_cpu": idle,
            "tolerance": PEER_TOLERANCE, "idle_cpu_limit": IDLE_CPU_LIMIT,
            "trustworthy": not reasons, "reasons": reasons}


def _fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def ratios(record):
    """The comparisons the targets are stated in (``None`` where a side is missing); the
    two against a peer also against that peer timed alone (``..._alone``, from the
    record's ``peer_check``), which stands whatever the self-check says of the peer
    inside the bench."""
    alone = {f"{name}_alone_img_s": row.get("alone") for name, row in
             ((record.get("peer_check") or {}).get("peers") or {}).items()}

    def r(a, b):
        a, b = record.get(a), record.get(b, alone.get(b))
        return round(a / b, 3) if a and b else None
    return {
        "hybrid_vs_openvino_fwd": r("hybrid_fwd_img_s", "openvino_fwd_img_s"),
        "hybrid_vs_gluoncv_fwd": r("hybrid_fwd_img_s", "gluoncv_fwd_img_s"),
        "hybrid_vs_imperative_fwd": r("hybrid_fwd_img_s", "imperative_fwd_img_s"),
        "hybrid_vs_onnxruntime_fwd": r("hybrid_fwd_img_s", "onnxruntime_fwd_img_s"),
        "int8_vs_openvino_fwd": r("int8_fwd_img_s", "openvino_fwd_img_s"),
        "int8_vs_hybrid_fwd": r("int8_fwd_img_s", "hybrid_fwd_img_s"),
        "hybrid_vs_imperative_train": r("hybrid_train_img_s", "imperative_train_img_s"),
        "hybrid_vs_torch_train": r("hybrid_train_img_s", "torch_train_img_s"),
        "hybrid_vs_torch_train_alone": r("hybrid_train_img_s", "torch_train_alone_img_s"),
        "int8_vs_openvino_fwd_alone": r("int8_fwd_img_s", "openvino_fwd_alone_img_s"),
        "hybrid_vs_gluoncv_train": r("hybrid_train_img_s", "gluoncv_train_img_s"),
        "gluoncv_hybrid_vs_imperative_train": r("gluoncv_train_img_s",
                                                "gluoncv_imperative_train_img_s"),
        "gluoncv_static_vs_imperative_train": r("gluoncv_static_train_img_s",
                                                "gluoncv_imperative_train_img_s"),
        "realdata_vs_synthetic_train": r("realdata_train_img_s", "hybrid_train_img_s"),
    }


def run(models, batch=128, repeats=5, warmup=2, iters=2, peers_python=None,
        real_data=None, progress=None):
    """Benchmark ``models``; return the full record (machine, GEMM ceiling, per model).

    Raises
    ------
    GluonresError
        For a batch or repeat count below 1.
    """
    if batch < 1 or repeats < 1 or iters < 1 or warmup < 0:
        raise GluonresError(f"batch, repeats and iters must be >= 1 and warmup >= 0, got "
                            f"batch={batch} repeats={repeats} iters={iters} "
                            f"warmup={warmup}")
    for name in models:
        get_model(name)  # unknown names fail before any timing
    kept = keep_freed_memory()
    peers = Peers(peers_python or DEFAULT_PEERS_PYTHON)
    try:
        record = {"machine": machine(), "batch": batch, "repeats": repeats,
                  "warmup": warmup, "iters_per_sample": iters,
                  "malloc": {"keeps_freed_memory": kept, **KEEP_FREED_MEMORY},
                  "gemm_gflops": gemm_gflops(), "models": []}
        if peers.proc is not None:
            record["machine"]["peers"] = peers.info
        for name in models:
            m = bench_model(name, batch, repeats, warmup, iters, peers, real_data,
                            progress=(lambda r, n, name=name: progress(name, r, n))
                            if progress else None)
            if m.get("hybrid_fwd_gflops"):
                m["peak_fraction"] = m["hybrid_fwd_gflops"] / record["gemm_gflops"]
            else:
                m["peak_fraction"] = None
            m["ratios"] = ratios(m)
            record["models"].append(m)
        checks = [m["peer_check"] for m in record["models"] if m.get("peer_check")]
        record["peer_check_passed"] = all(c["trustworthy"] for c in checks) if checks else None
        record["gemm_gflops_after"] = gemm_gflops()
        record["machine"]["load_average_after"] = list(os.getloadavg())
        record["notes"] = peers.notes
    finally:
        peers.close()
    return record


def _share(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def table(record):
    """Markdown table of a :func:`run` record: img/s, latency, GFLOP/s, ratios."""
    cols = [("hybrid_fwd_img_s", "hybrid fwd"), ("imperative_fwd_img_s", "imperative fwd"),
            ("gluoncv_fwd_img_s", "GluonCV fwd"), ("onnxruntime_fwd_img_s", "ORT fwd"),
            ("openvino_fwd_img_s", "OpenVINO fwd"), ("int8_fwd_img_s", "INT8 fwd"),
            ("torch_fwd_img_s", "PyTorch fwd"), ("hybrid_train_img_s", "hybrid train"),
            ("imperative_train_img_s", "imperative train"),
            ("gluoncv_train_img_s", "GluonCV train"),
            ("gluoncv_static_train_img_s", "GluonCV static train"),
            ("gluoncv_imperative_train_img_s", "GluonCV imperative train"),
            ("torch_train_img_s", "PyTorch train"),
            ("realdata_train_img_s", "real-data train")]
    lines = [f"Batch {record['batch']}, img/s (median of {record['repeats']}); fp32 GEMM "
             f"ceiling {record['gemm_gflops']:.0f} GFLOP/s on "
             f"{record['machine']['omp_num_threads']} threads.", "",
             "| model | " + " | ".join(c for _, c in cols) +
             " | latency b1 (ms) | GFLOP/s (of peak) |",
             "|---" * (len(cols) + 3) + "|"]
    for m in record["models"]:
        peak = ("n/a" if m.get("peak_fraction") is None else
                f"{m['hybrid_fwd_gflops']:.0f} ({100 * m['peak_fraction']:.0f}%)")
        lines.append(f"| {m['model']} | " + " | ".join(_fmt(m.get(k)) for k, _ in cols) +
                     f" | {_fmt(m['latency1_ms'], 2)} | {peak} |")
    lines += ["", "| model | " + " | ".join(record["models"][0]["ratios"]) + " |",
              "|---" * (len(record["models"][0]["ratios"]) + 1) + "|"]
    for m in record["models"]:
        lines.append(f"| {m['model']} | " +
                     " | ".join(_fmt(v, 2) for v in m["ratios"].values()) + " |")
    for m in record["models"]:
        check = m.get("peer_check")
        if not check:
            continue
        rows = ", ".join(f"{name} {_fmt(r['inside'])} inside vs {_fmt(r['alone'])} alone"
                         + (f" (ratio {r['ratio']:.2f}, alone drifted "
                            f"{100 * r['alone_drift']:.0f}%)"
                            if r.get("ratio") is not None and r.get("alone_drift") is not None
                            else "")
                         for name, r in check["peers"].items())
        idle = ", ".join(f"{side.replace('_', ' ')} {_share(share)}"
                         for side, share in check["idle_cpu"].items())
        verdict = ("passed" if check["trustworthy"] else
                   "FAILED, the peer ratios above are not trustworthy: "
                   + "; ".join(check["reasons"]))
        lines += ["", f"{m['model']} peer self-check (each peer within "
                  f"{100 * check['tolerance']:.0f}% of itself timed alone around each of "
                  f"{len(check.get('blocks', [1]))} blocks; idle side below "
                  f"{100 * check['idle_cpu_limit']:.0f}% of a core): {verdict}. {rows} img/s; "
                  f"idle CPU, share of a core: {idle}."]
    mem = record.get("memory")
    if mem:
        s, c = mem["static"], mem["checkpointed"]
        lines += ["", f"{mem['model']} training step at batch {mem['batch']}: peak RSS "
                  f"{s['peak_rss_mb']:,.0f} MB ordinary, {c['peak_rss_mb']:,.0f} MB "
                  f"checkpointed ({100 * mem['memory_saved']:.0f}% less), "
                  f"{s['median_step_s']:.1f} s vs {c['median_step_s']:.1f} s per step "
                  f"({100 * mem['time_cost']:+.0f}% time)."]
    return "\n".join(lines)
