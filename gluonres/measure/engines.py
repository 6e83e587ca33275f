"""One export on every inference engine, side by side (``gluonres bench --export DIR``).

:func:`compare` loads the export on mxnet and on each installed engine of
:mod:`gluonres.deploy.engines`, checks that each engine's logits equal mxnet's on the same
batch (and on its first image alone) within a tolerance, then times forward passes at a
batch and batch-1 latency with :func:`gluonres.measure.timing.interleaved` (warm-up
excluded, engines round by round, the median sample), and names the fastest engine that
passed the check. :func:`table` formats the record.
"""
import mxnet as mx
import numpy as np

from gluonres.deploy import engines as deploy_engines
from gluonres.deploy.engines import ENGINES, EngineUnavailable
from gluonres.errors import GluonresError
from gluonres.machine import machine
from gluonres.measure.timing import interleaved, local


#: Largest max-abs logit difference from mxnet an engine may show and still count.
TOLERANCE = 1e-4


def _batch(reference, batch, seed):
    """A float32 NCHW batch of seeded random images as the export's preprocessing makes it
    (uniform in [-1, 1] for an export that records none), and how it was made."""
    height, width = reference.manifest["image"]["size"]
    rng = np.random.RandomState(seed)
    pixels = rng.randint(0, 256, (batch, height, width, 3), dtype=np.uint8)
    try:
        x = reference.preprocess(mx.nd.array(pixels, dtype="uint8")).asnumpy()
        return x, f"{batch} random uint8 images (seed {seed}) through the export's preprocessing"
    except GluonresError:  # no preprocessing recorded: the graph's input scale instead
        x = rng.uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)
        return x, (f"uniform [-1, 1] float32 (seed {seed}); the export records no "
                   "preprocessing")


def compare(folder, engines=None, batch=128, repeats=5, warmup=2, iters=2,
            tolerance=TOLERANCE, seed=0, progress=None):
    """Check and time one export on every engine; return a JSON-able record.

    Parameters
    ----------
    folder : str
        An export folder (``gluonres export --onnx`` for the engines other than mxnet).
    engines : list of str, optional
        Engines to compare with mxnet (always loaded: the reference). Default: all of
        :data:`~gluonres.deploy.engines.ENGINES`, an engine that is not installed, or
        that needs the ONNX file the export lacks, is then reported as skipped; named
        explicitly, it is an error.
    batch : int, default 128
        Batch of the check and of the throughput timing (latency is batch 1).
    repeats, warmup, iters : int
        Timed rounds (median reported), untimed calls per engine first, calls per
        sample; latency takes ``max(20, 4 * repeats)`` single calls.
    tolerance : float, default 1e-4
        Largest max-abs logit difference from mxnet that passes the check.
    seed : int, default 0
        Seed of the random input images.
    progress : callable, optional
        Called as ``progress(phase, round, rounds)``.

    Returns
    -------
    dict
        ``folder``, ``model``, ``batch``, ``input``, ``tolerance``, ``max_abs_logit``
        (mxnet's largest logit on the batch: the scale of the differences), ``engines`` (per
        engine: ``status`` ok / fails check / skipped, ``version``, ``settings``,
        ``max_abs_diff``, ``check_passed``, ``fwd_img_s``, ``latency1_ms``,
        ``vs_mxnet``, ``samples``, ``note``), ``fastest`` and ``fastest_vs_mxnet``
        (throughput at ``batch``, among engines that passed), ``lowest_latency``,
        ``failed_check`` (names), ``machine``.

    Raises
    ------
    GluonresError
        For bad counts, an unknown engine, an explicitly named engine that cannot run
        here, or an export that fails its checks.
    """
    if batch < 1 or repeats < 1 or iters < 1 or warmup < 0 or not tolerance > 0:
        raise GluonresError(f"batch, repeats and iters must be >= 1, warmup >= 0 and the "
                            f"tolerance > 0, got batch={batch} repeats={repeats} "
                            f"iters={iters} warmup={warmup} tolerance={tolerance}")
    explicit = engines is not None
    names = list(dict.fromkeys(["mxnet", *(engines if explicit else ENGINES)]))
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        raise GluonresError(f"unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    loaded, records = {}, {}
    for name in names:
        records[name] = {"status": "skipped", "version": deploy_engines.version(name),
                         "settings": deploy_engines.settings(name), "max_abs_diff": None,
                         "check_passed": None, "fwd_img_s": None, "latency1_ms": None,
                         "vs_mxnet": None, "samples": None, "note": None}
        try:
            loaded[name] = deploy_engines.load(folder, name)
        except EngineUnavailable as err:
            if explicit:
                raise
            records[name]["note"] = str(err)
    reference = loaded["mxnet"]
    x, how = _batch(reference, batch, seed)
    inputs = {name: mx.nd.array(x, dtype="float32") if name == "mxnet" else x
              for name in loaded}  # each engine's own input type: no copy is timed
    ones = {name: v[:1] for name, v in inputs.items()}

    # the check: the same batch, and its first image alone (OpenVINO compiles per shape)
    expected = reference.forward(inputs["mxnet"])
    expected_one = reference.forward(ones["mxnet"])
    # the difference is absolute: against logits of a few hundred (fresh, untrained
    # weights) 1e-4 is float32 rounding, so the record keeps their scale beside it
    scale = float(np.abs(expected).max())
    for name, exported in loaded.items():
        diff = max(float(np.abs(exported.forward(inputs[name]) - expected).max()),
                   float(np.abs(exported.forward(ones[name]) - expected_one).max()))
        passed = bool(diff <= tolerance)  # NaN fails
        records[name].update(max_abs_diff=diff, check_passed=passed,
                             status="ok" if passed else "fails check")

    def timers(xs, images):
        return [local(name, lambda e=e, v=xs[name]: e.forward(v), images)
                for name, e in loaded.items()]
    fwd = timers(inputs, batch)
    interleaved(fwd, repeats, warmup, iters,
                (lambda r, n: progress(f"batch {batch}", r, n)) if progress else None)
    latency = timers(ones, 1)
    rounds = max(20, 4 * repeats)
    interleaved(latency, rounds, warmup + 3, 1,
                (lambda r, n: progress("batch 1", r, n)) if progress else None)
    for t, lat in zip(fwd, latency):
        records[t.name].update(fwd_img_s=t.median_rate(), latency1_ms=1000 / lat.median_rate(),
                               samples=[round(s, 1) for s in t.samples])
    base = records["mxnet"]["fwd_img_s"]
    for r in records.values():
        if r["fwd_img_s"]:
            r["vs_mxnet"] = r["fwd_img_s"] / base
    passing = [n for n in loaded if records[n]["check_passed"]]
    fastest = max(passing, key=lambda n: records[n]["fwd_img_s"])
    return {"folder": folder, "model": reference.manifest["model"], "batch": batch,
            "repeats": repeats, "warmup": warmup, "iters_per_sample": iters,
            "latency_calls": rounds, "input": how, "tolerance": tolerance,
            "max_abs_logit": scale,
            "engines": records, "fastest": fastest,
            "fastest_vs_mxnet": records[fastest]["vs_mxnet"],
            "lowest_latency": min(passing, key=lambda n: records[n]["latency1_ms"]),
            "failed_check": [n for n in loaded if not records[n]["check_passed"]],
            "machine": machine()}


def table(record):
    """A small Markdown table of a :func:`compare` record, and the verdict line."""
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)
    lines = [f"{record['folder']} ({record['model']}): forward img/s at batch "
             f"{record['batch']} (median of {record['repeats']}), batch-1 latency (median "
             f"of {record['latency_calls']}), {record['machine']['omp_num_threads']} threads; "
             f"logits up to {record['max_abs_logit']:.3g} in absolute value, check: max abs "
             f"difference <= {record['tolerance']:g}",
             "", "| engine | version | max abs logit diff | batch "
             f"{record['batch']} img/s | vs mxnet | batch 1 ms |", "|---|---|---:|---:|---:|---:|"]
    for name, r in record["engines"].items():
        if r["status"] == "skipped":
            lines.append(f"| {name} | {r['version'] or 'not installed'} | skipped | | | |")
            continue
        check = ("reference" if name == "mxnet" else
                 f"{r['max_abs_diff']:.1e}" + ("" if r["check_passed"] else " FAILS CHECK"))
        lines.append(f"| {name} | {r['version']} | {check} | {fmt(r['fwd_img_s'], ',.0f')} | "
                     f"{fmt(r['vs_mxnet'], '.2f')}x | {fmt(r['latency1_ms'], '.2f')} |")
    notes = [f"- {name}: {r['note']}" for name, r in record["engines"].items() if r["note"]]
    if notes:
        lines += [""] + notes
    lines += ["", f"fastest on this machine: {record['fastest']} "
                  f"({record['fastest_vs_mxnet']:.2f}x mxnet)"]
    return "\n".join(lines)
