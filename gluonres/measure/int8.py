"""FP32 against INT8 on a test set: accuracy, agreement and throughput, side by side,
with its report (``gluonres int8-bench``).
"""
import json
import os
import sys
import tempfile

import mxnet as mx

from gluonres.data import JPEG_CAVEAT, resolve_root
from gluonres.deploy.exporter import export_weights
from gluonres.deploy.quantize import CALIB_IMAGES, CALIB_MODE, CALIB_SEED, fuse_fp32
from gluonres.errors import GluonresError
from gluonres.machine import machine
from gluonres.measure.timing import forward, interleaved


#: The issue's targets for INT8 against FP32 hybridized.
MAX_DROP_POINTS, MIN_SPEEDUP = 0.5, 2.5


# ------------------------------------------------------------------- comparison
def compare(folder, test_root, batch_size=64, repeats=7, progress=True):
    """FP32 vs INT8 test accuracy and throughput of an export written with ``--int8``.

    Three graphs are measured: the exported FP32 graph as hybridized Gluon runs it
    (``fp32``, bit for bit the in-memory network), the same graph with oneDNN's operator
    fusion (``fp32_fused``, the fair FP32 baseline on this backend) and the INT8 graph.

    Parameters
    ----------
    folder : str
        Export folder holding both graphs (:func:`gluonres.deploy.export` with
        ``calibration``).
    test_root : str
        Image-folder root with a ``test/`` split (the shared JPEG CIFAR-10).
    batch_size : int, default 64
        Batch of the throughput measurement.
    repeats : int, default 7
    progress : bool, default True

    Returns
    -------
    dict
        ``{fp32,fp32_fused,int8}_accuracy``, ``accuracy_drop_points``,
        ``{fp32,fp32_fused,int8}_img_s``, ``int8_vs_fp32``, ``int8_vs_fp32_fused``,
        ``batch``, ``repeats``, ``calibration``, ``machine``.
    """
    from gluonres import data
    from gluonres.analysis.evaluation import predict_dataset
    from gluonres.deploy.runtime import load_exported, load_symbol_block

    fp32 = load_exported(folder, "fp32")
    int8 = load_exported(folder, "int8")
    files = fp32.manifest["files"]
    fused = load_symbol_block(fuse_fp32(mx.sym.load(os.path.join(folder, files["symbol"]))),
                              os.path.join(folder, files["params"]))
    fused.hybridize(static_alloc=True, static_shape=True)
    nets = {"fp32": fp32.net, "fp32_fused": fused, "int8": int8.net}

    test = data.image_folder(test_root, "test", progress=progress)  # decoded once, in memory
    record = {"test_data": os.path.join(data.resolve_root(test_root), "test"),
              "test_images": len(test)}
    for name, net in nets.items():
        logits, labels = predict_dataset(net, test, fp32.preprocess, progress=progress)
        record[f"{name}_accuracy"] = float((logits.argmax(axis=1) == labels).mean())
    record["accuracy_drop_points"] = 100 * (record["fp32_accuracy"] - record["int8_accuracy"])

    batch = fp32.preprocess(mx.nd.stack(*[test[i][0] for i in range(batch_size)]))
    # side by side, round robin: 3 warm-up calls (graph building, memory planning)
    # excluded, then the median of `repeats` samples of 10 calls
    timers = [forward(name, net, batch) for name, net in nets.items()]
    interleaved(timers, repeats, 3, 10)
    rates = {t.name: t.median_rate() for t in timers}
    record.update({f"{name}_img_s": rate for name, rate in rates.items()})
    record["int8_vs_fp32"] = rates["int8"] / rates["fp32"]
    record["int8_vs_fp32_fused"] = rates["int8"] / rates["fp32_fused"]
    record.update(batch=batch_size, repeats=repeats,
                  calibration=fp32.manifest["int8"]["calibration"], machine=machine())
    return record


def _load_1min(m):
    """A record's 1-minute load average (records before gluonres.machine kept it alone)."""
    return m["load_average"][0] if "load_average" in m else m["load_average_1min"]


def report_table(record):
    """Markdown table and notes for a :func:`compare` record."""
    r, m, c = record, record["machine"], record["calibration"]
    pct = lambda key: f"{100 * r[key]:.2f}%"  # noqa: E731
    drop_ok = r["accuracy_drop_points"] <= MAX_DROP_POINTS
    speed_ok = r["int8_vs_fp32"] >= MIN_SPEEDUP
    lines = [
        f"| {r['model']} | FP32 hybridized | FP32 oneDNN-fused | INT8 (oneDNN) |",
        "| --- | ---: | ---: | ---: |",
        f"| test accuracy (JPEG CIFAR-10, {r['test_images']:,} images) | {pct('fp32_accuracy')} "
        f"| {pct('fp32_fused_accuracy')} | {pct('int8_accuracy')} |",
        f"| throughput, batch {r['batch']} (img/s, median of {r['repeats']}) "
        f"| {r['fp32_img_s']:.0f} | {r['fp32_fused_img_s']:.0f} | {r['int8_img_s']:.0f} |",
        f"| INT8 speed-up | {r['int8_vs_fp32']:.2f}x | {r['int8_vs_fp32_fused']:.2f}x | |",
        "",
        f"- Accuracy drop FP32 -> INT8: {r['accuracy_drop_points']:.2f} points (target <= "
        f"{MAX_DROP_POINTS}: {'met' if drop_ok else 'NOT met'}). Speed-up over FP32 "
        f"hybridized: {r['int8_vs_fp32']:.2f}x (target >= {MIN_SPEEDUP}x: "
        f"{'met' if speed_ok else 'NOT met'}); over the oneDNN-fused FP32 graph, the "
        f"stronger baseline: {r['int8_vs_fp32_fused']:.2f}x.",
        f"- Calibration: {c['images']} images of {c['data']} (split {c['split']}), "
        f"{c['selection']}, seed {c['seed']}; {c['mode']} ranges, {c['quantized_dtype']} "
        f"dtype, kept in FP32: {', '.join(c['excluded']) or 'nothing'}.",
        f"- The test set is the real CIFAR-10, {JPEG_CAVEAT}.",
        f"- Weights: {r.get('weights')}. Machine: {m['cpu']}, {m['cores']} cores, "
        f"OMP_NUM_THREADS={m['omp_num_threads']}, load average {_load_1min(m):.1f} "
        f"at the end, mxnet {m['mxnet']}; throughput measured side by side in one run "
        "(round robin), warm-up excluded.",
        f"- Command: `{r['command']}`",
    ]
    return "\n".join(lines)


def write_report(record, out_dir, docs=None):
    """Write ``int8-MODEL.json`` and ``int8-MODEL.md`` into ``out_dir``, atomically.

    With ``docs``, the table between ``<!-- int8-table: MODEL -->`` and
    ``<!-- /int8-table: MODEL -->`` in that markdown file is replaced as well.

    Returns
    -------
    dict
        Paths written.
    """
    from gluonres._files import write_text

    model = record["model"]
    table = report_table(record)
    if docs:
        head, tail = docs_table_slot(docs, model)  # before writing anything
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, f"int8-{model}.json"),
             "markdown": os.path.join(out_dir, f"int8-{model}.md")}
    write_text(paths["json"], json.dumps(record, indent=1) + "\n")
    write_text(paths["markdown"], table + "\n")
    if docs:
        write_text(docs, head + table + "\n" + tail)
        paths["docs"] = docs
    return paths


def docs_table_slot(docs, model):
    """The text of ``docs`` before and after its int8 table for ``model``.

    The table sits between ``<!-- int8-table: MODEL -->`` and
    ``<!-- /int8-table: MODEL -->`` lines; the returned head ends with the first marker
    and the tail starts with the second.

    Raises
    ------
    GluonresError
        If the file is missing or lacks the markers.
    """
    begin, end = f"<!-- int8-table: {model} -->", f"<!-- /int8-table: {model} -->"
    try:
        with open(docs) as f:
            text = f.read()
    except OSError as err:
        raise GluonresError(f"cannot read --docs {docs!r} ({err.strerror}); pass an existing "
                            "markdown file or leave out --docs") from None
    if begin not in text or end not in text.split(begin, 1)[1]:
        raise GluonresError(f"{docs!r} has no {begin} ... {end} markers; add them where the "
                            "table belongs, or leave out --docs")
    head, rest = text.split(begin, 1)
    return head + begin + "\n", end + rest.split(end, 1)[1]


# ------------------------------------------------------------------- the whole bench
def int8_bench(model, weights, data, out="results", docs=None, export_dir=None, batch_size=64,
               repeats=7, mean=None, std=None, calib_images=CALIB_IMAGES,
               calib_seed=CALIB_SEED, calib_mode=CALIB_MODE, command=None, progress=True,
               **model_kwargs):
    """Export ``weights`` as FP32 and INT8 graphs, :func:`compare` them on ``data`` and
    write the report: what ``gluonres int8-bench`` does.

    Parameters
    ----------
    model : str
        Registered name.
    weights : str
        Trained weights (recording their normalisation, or pass ``mean`` and ``std``).
    data : str
        Image-folder root (or ``.tar.gz``) with ``train/`` (calibration) and ``test/``.
    out : str, default 'results'
        Folder for ``int8-MODEL.json`` and ``.md`` (:func:`write_report`).
    docs : str, optional
        Markdown file whose int8 table is updated; its markers are checked first.
    export_dir : str, optional
        Keep the export here; by default it goes to a temporary folder.
    batch_size, repeats : int
        Throughput batch and timed repeats (:func:`compare`).
    mean, std, calib_images, calib_seed, calib_mode, **model_kwargs
        As for :func:`gluonres.deploy.exporter.export_weights`.
    command : str, optional
        The command line, kept in the record.
    progress : bool, default True

    Returns
    -------
    dict
        ``model``, the weights' path and SHA-256, :func:`compare`'s record, ``command`` and
        ``written`` (the paths of the report).
    """
    root = resolve_root(data)
    if docs:
        docs_table_slot(docs, model)  # fail before minutes of work
    with tempfile.TemporaryDirectory(prefix="gluonres-int8-") as tmp:
        folder = export_dir or tmp
        print(f"exporting the FP32 and INT8 graphs to {folder}", file=sys.stderr, flush=True)
        paths = export_weights(model, folder, weights, mean=mean, std=std, calib_data=root,
                               calib_images=calib_images, calib_seed=calib_seed,
                               calib_mode=calib_mode, **model_kwargs)
        with open(paths["manifest"]) as f:
            source = json.load(f)["source"]
        print(f"measuring accuracy on {data} and throughput at batch {batch_size}",
              file=sys.stderr, flush=True)
        record = compare(folder, root, batch_size=batch_size, repeats=repeats,
                         progress=progress)
    record = {"model": model, **source, **record, "command": command}
    record["written"] = write_report(record, out, docs=docs)
    return record
