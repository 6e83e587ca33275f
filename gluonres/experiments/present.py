"""Formatting shared by the experiments' tables and notebook text, and the statistics of
replicated runs (one variant trained under several seeds): per-seed values, mean, spread
and whether two variants are told apart.

The notebooks' figures and shared text are here too, drawn to one set of conventions
(integer epoch ticks, percentage axes from zero, learning-rate drops marked, legends outside
the data, thousands separators): :func:`error_curves`, :func:`unit_diagram`,
:func:`spread_figure`, :func:`depth_figure`, :func:`variant_errors`,
:func:`responses_figure`, :func:`race_figure`; :func:`provenance` with the one current
JPEG caveat (:data:`CAVEAT_POINTER`); :func:`int8_speedups` and :func:`int8_text`.
"""
import json
import math
import os
import statistics

from gluonres.errors import GluonresError
from gluonres.experiments.records import other_runs
from gluonres.experiments.runs import finished_dir


#: Numbers of a replicated summary given per seed, with their mean and spread.
SPREAD_FIELDS = ("final_train_error", "final_train_error_eval", "final_test_error")
#: Half-width of the interval, in sample standard deviations, that two variants' means
#: must clear to be told apart (:func:`distinguishable`).
SPREAD_K = 2


# ---------------------------------------------------------------------------- records
def summarize(run, fields=("final_train_error", "final_train_error_eval", "final_test_error",
                           "params", "train_img_s", "wall_s")):
    """A run's headline numbers and curves, for embedding in an experiment record."""
    out = {k: run[k] for k in fields if k in run}
    out.update(label=run["label"], model=run["model"], options=run["options"],
               key=run.get("key"), iterations=run["iterations"],
               train_images=run["data"]["train_images"],
               curve={k: [r.get(k) for r in run["epochs"]]
                      for k in ("epoch", "train_error_pct", "test_error_pct", "lr")})
    return out


def summarize_runs(runs):
    """The summary of one variant's runs: :func:`summarize` for a single run; for runs of
    several seeds, their means with the per-seed values and spread.

    Parameters
    ----------
    runs : list of dict
        :meth:`~gluonres.experiments.runs.Runner.train_seeds`' runs, same spec and
        length, seed order.

    Returns
    -------
    dict
        For several runs: ``label``, ``model``, ``options``, ``params``, ``iterations``,
        ``train_images`` (the runs share them); ``seeds``; the :data:`SPREAD_FIELDS` and
        ``train_img_s`` as means over the seeds; ``curve``, the per-epoch mean (and
        ``train_error_sd`` / ``test_error_sd``, sample standard deviations); ``spread``,
        per field of :data:`SPREAD_FIELDS` its :func:`spread`; ``per_seed``, each run's
        :func:`summarize` with its ``seed``.
    """
    if len(runs) == 1:
        return summarize(runs[0])
    per_seed = [{**summarize(run), "seed": run["config"]["seed"]} for run in runs]
    first = per_seed[0]
    out = {k: first[k] for k in ("label", "model", "options", "params", "iterations",
                                 "train_images") if k in first}
    out["seeds"] = [s["seed"] for s in per_seed]
    out["spread"] = {f: spread([s[f] for s in per_seed]) for f in SPREAD_FIELDS
                     if all(s.get(f) is not None for s in per_seed)}
    out.update({f: v["mean"] for f, v in out["spread"].items()})
    out["train_img_s"] = statistics.fmean(s["train_img_s"] for s in per_seed)
    curves = [s["curve"] for s in per_seed]
    out["curve"] = {"epoch": first["curve"]["epoch"], "lr": first["curve"]["lr"]}
    for key in ("train_error_pct", "test_error_pct"):
        columns = list(zip(*(c[key] for c in curves)))
        stats = [spread(col) if None not in col else None for col in columns]
        out["curve"][key] = [s and s["mean"] for s in stats]
        out["curve"][key.replace("_pct", "_sd")] = [s and s["sd"] for s in stats]
    # last, so that a record's training time counts each seed's run once
    out["per_seed"] = per_seed
    return out


def spread(values):
    """``values`` (one per seed), their mean, sample standard deviation, min and max.

    Raises
    ------
    GluonresError
        For fewer than two values: one seed has no spread.
    """
    values = list(values)
    if len(values) < 2:
        raise GluonresError(f"a spread needs two seeds or more, got {len(values)}; run with "
                            "e.g. --seeds 0 1 2")
    return {"values": values, "mean": statistics.fmean(values),
            "sd": statistics.stdev(values), "min": min(values), "max": max(values)}


def distinguishable(a, b, k=SPREAD_K):
    """Whether two variants differ beyond their seed-to-seed spread: their intervals
    ``mean ± k * sd`` do not overlap.

    With three seeds the interval at ``k=2`` covers each variant's whole range, so
    variants whose ranges overlap are never told apart; a cautious rule for so few seeds,
    not a significance test.

    Parameters
    ----------
    a, b : sequence of float or dict
        Per-seed values, or their :func:`spread`.
    k : float, default :data:`SPREAD_K`

    Returns
    -------
    bool
    """
    a, b = (x if isinstance(x, dict) else spread(x) for x in (a, b))
    return (a["mean"] + k * a["sd"] < b["mean"] - k * b["sd"]
            or b["mean"] + k * b["sd"] < a["mean"] - k * a["sd"])


def verdict(label_a, a, label_b, b, what="test error", k=SPREAD_K):
    """One sentence comparing two variants' per-seed values (or :func:`spread`) with
    :func:`distinguishable`, e.g. ``'option A vs option B, test error: not
    distinguishable at this budget (61.88 ± 0.50 vs 62.10 ± 0.70, mean ± sd of 3
    seeds)'``."""
    a, b = (x if isinstance(x, dict) else spread(x) for x in (a, b))
    if distinguishable(a, b, k):
        lower = label_a if a["mean"] < b["mean"] else label_b
        said = f"distinguishable: {lower} is lower"
    else:
        said = "not distinguishable at this budget"
    seeds = (f"{len(a['values'])} seeds" if len(a["values"]) == len(b["values"])
             else f"{len(a['values'])} and {len(b['values'])} seeds")
    return (f"{label_a} vs {label_b}, {what}: {said} ({fmt_spread(a)} vs {fmt_spread(b)}, "
            f"mean ± sd of {seeds})")


def comparisons(summaries, pairs, field="final_test_error"):
    """:func:`verdict` of each pair of replicated summaries, for a record.

    Parameters
    ----------
    summaries : dict
        Name -> :func:`summarize_runs` of several seeds.
    pairs : list of (str, str)
    field : str, default 'final_test_error'

    Returns
    -------
    list of dict
        ``a``, ``b``, ``field``, ``distinguishable``, ``text``; empty when the summaries
        are single runs.
    """
    what = field.replace("final_", "").replace("_", " ")
    out = []
    for a, b in pairs:
        sa, sb = summaries[a].get("spread", {}), summaries[b].get("spread", {})
        if field in sa and field in sb:
            out.append({"a": a, "b": b, "field": field,
                        "distinguishable": distinguishable(sa[field], sb[field]),
                        "text": verdict(a, sa[field], b, sb[field], what)})
    return out


def is_replicated(summary):
    """Whether a summary is of several seeds (:func:`summarize_runs`)."""
    return "spread" in summary


def fmt_value(summary, field, digits=2):
    """A summary's number: ``'61.88'``, or ``'61.88 ± 0.50'`` (mean ± sd) for a
    replicated one."""
    s = summary.get("spread", {}).get(field)
    return fmt_spread(s, digits) if s else fmt_pct(summary.get(field), digits)


def fmt_spread(s, digits=2):
    """A :func:`spread` as ``'mean ± sd'``."""
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def seeds_line(summaries):
    """``'mean ± sd over seeds 0, 1, 2; ...'`` (with the rule of :func:`distinguishable`)
    for replicated summaries, else ``''``."""
    seeds = next((s["seeds"] for s in summaries if is_replicated(s)), None)
    return (f"mean ± sd over seeds {', '.join(map(str, seeds))}; two variants are told apart "
            f"when their mean ± {SPREAD_K} sd do not overlap" if seeds else "")


def plot_spread(ax, summaries, field="final_test_error"):
    """Each variant's per-seed values (dots) and mean ± sd (diamond and error bar), one
    row per variant; the axis spans the values, not zero, so that differences of a
    fraction of a point show.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    summaries : dict
        Label -> :func:`summarize_runs` (a single run is drawn as one dot).
    field : str, default 'final_test_error'
    """
    names = list(summaries)
    for i, name in enumerate(names):
        # the colour error_curves gives the same labels drawn in one panel
        colour = PALETTE[i % len(PALETTE)]
        s = summaries[name].get("spread", {}).get(field)
        values = s["values"] if s else [summaries[name][field]]
        ax.plot(values, [i] * len(values), "o", color=colour, ms=4, alpha=0.6)
        if s:
            ax.errorbar(s["mean"], i + 0.15, xerr=s["sd"], fmt="D", color=colour, ms=5,
                        capsize=4)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(f"{field.replace('final_', '').replace('_', ' ')} (%): each seed (dots), "
                  "mean ± sd (diamonds)\nthe axis spans the values, not from zero, "
                  "so that the spread between seeds shows")
    ax.grid(alpha=0.3, axis="x")


def spread_figure(summaries, title=None, field="final_test_error"):
    """:func:`plot_spread` as a figure of its own: each variant's final test error per
    seed, with mean ± sd.

    Parameters
    ----------
    summaries : dict
        Label -> :func:`summarize_runs`; at least one replicated.
    title : str, optional
        Figure title.
    field : str, default 'final_test_error'

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GluonresError
        If no summary is replicated (one run per variant has no spread to show).
    """
    import matplotlib.pyplot as plt

    if not any(map(is_replicated, summaries.values())):
        raise GluonresError("no variant here was trained under several seeds, so there is no "
                            "spread to draw; make the record with --seeds 0 1 2")
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(summaries) + 1.4))
    plot_spread(ax, summaries, field)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def data_line(record):
    """One line saying what a record was measured on (for figure titles): the data's
    file name, not the path of the machine that made the record."""
    d = record.get("data") or {}

    def count(key):
        n = d.get(key)
        return f"{n:,}" if isinstance(n, int) else "?"

    line = (f"{record['scale']} scale: {count('train_images')} training images"
            f"{other_runs(d)} of {os.path.basename(d.get('name') or '?')}, curves on "
            f"{count('curve_test_images')} test images")
    return line + (" (JPEG CIFAR-10: see the caveat)" if d.get("note") else "")


def fmt_pct(value, digits=2):
    """``'12.34'`` or an en dash for a missing value."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------- caveat
#: What the notebooks print where a record's data is JPEG, in place of the caveat text
#: the record stored when it was made: the one current wording is
#: :data:`gluonres.data.JPEG_CAVEAT`, which notebook 01 prints and explains.
CAVEAT_POINTER = ("JPEG CIFAR-10: what that costs is gluonres.data.JPEG_CAVEAT, printed "
                  "and explained in notebook 01 ('The data')")


def without_note(record):
    """A shallow copy of ``record`` whose data has no stored caveat note.

    Records keep the caveat's wording of the day they were made; notebooks print
    :data:`CAVEAT_POINTER` instead, so that one wording (``gluonres.data.JPEG_CAVEAT``)
    holds everywhere.
    """
    data = record.get("data")
    if not data or "note" not in data:
        return record
    return {**record, "data": {k: v for k, v in data.items() if k != "note"}}


def provenance(record):
    """:func:`gluonres.experiments.records.provenance` with :data:`CAVEAT_POINTER` in
    place of the record's stored caveat text."""
    from gluonres.experiments.records import provenance as stored

    text = stored(without_note(record))
    return text + (f"\ncaveat: {CAVEAT_POINTER}" if (record.get("data") or {}).get("note")
                   else "")


# ---------------------------------------------------------------------------- runs
def run_file(record, summary, results):
    """The finished run behind ``summary`` (a :func:`summarize` entry of ``record``):
    ``results/runs/SCALE/KEY.json``, or ``None`` where it is not kept."""
    # a replicated summary's runs are its seeds': the first stands for their schedule
    key = summary.get("key") or (summary.get("per_seed") or [{}])[0].get("key")
    if not results or not key:
        return None
    path = os.path.join(finished_dir(results, record["scale"]), f"{key}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def lr_drops(summary, run=None):
    """Where the learning rate dropped, as ``[(epoch, new lr), ...]`` on the curves'
    epoch axis (epoch ``e`` ends at ``x = e``).

    Exact from the run's milestones (iterations) when its run file is given, else
    the middle of each epoch whose recorded (end-of-epoch) rate is lower than the one
    before.
    """
    if run is not None and run.get("milestones") is not None and run.get("epochs"):
        per_epoch = run["iterations"] / len(run["epochs"])
        cfg = run.get("config") or {}
        lr, factor = cfg.get("lr"), cfg.get("factor")
        return [(m / per_epoch, lr * factor ** (k + 1) if lr and factor else None)
                for k, m in enumerate(run["milestones"])]
    c = summary["curve"]
    lrs = c.get("lr") or []
    return [(c["epoch"][i] - 0.5, lrs[i]) for i in range(1, len(lrs))
            if lrs[i] is not None and lrs[i - 1] is not None and lrs[i] < lrs[i - 1]]


def warmup_ends(record, summaries, results):
    """``{label: (iteration, iterations per epoch)}``: where each run's warm-up ended,
    from its run file (runs without a warm-up or a kept run file are left out)."""
    out = {}
    for label, s in summaries.items():
        run = run_file(record, s, results)
        if run and run.get("warmup_end_iteration") is not None:
            out[label] = (run["warmup_end_iteration"], run["iterations"] // len(run["epochs"]))
    return out


# ---------------------------------------------------------------------------- figures
# Conventions of every notebook figure: integer epoch ticks; error and accuracy axes
# from zero (a log axis says why in its label); learning-rate drops marked; legends
# outside the data; counts in titles with thousands separators.
LR_STYLE = {"color": "0.45", "lw": 0.9, "ls": ":"}
#: Line colours: matplotlib's cycle without its grey (C7), which marks references.
PALETTE = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")


def epoch_axis(ax, last):
    """Integer epoch ticks from 0 to ``last``."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0, last + 0.25)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def percent_axis(ax, top, label="error (%)"):
    """A percentage axis from zero to a little above ``top`` (at most 100)."""
    ax.set_ylim(0, min(100, max(5.0, top * 1.08)))
    ax.set_ylabel(label)


def mark_lr_drops(ax, drops, text=True):
    """Dotted vertical lines where the learning rate dropped, each labelled with the
    new rate."""
    for x, lr in drops:
        ax.axvline(x, **LR_STYLE)
        if text and lr is not None:
            ax.annotate(f"lr {lr:g}", (x, 1), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", ha="left", va="top",
                        fontsize=7, color="0.35")


def error_curves(panels, record=None, results=None, reference=None, ncols=None,
                 title=None, panel_size=(4.2, 3.0)):
    """Training (dashed) and test (solid) error per epoch, one panel per group, all
    panels on the same axes (small multiples), one legend outside them. A replicated
    summary (:func:`summarize_runs`) is drawn as its mean curves with the test error's
    ± sd shaded.

    Parameters
    ----------
    panels : dict of str to dict
        Panel title -> ``{label: summary}`` (:func:`summarize` or
        :func:`summarize_runs` entries); a label keeps its colour in every panel.
    record, results : optional
        The record and the results folder: the runs' files give the exact
        learning-rate drops (:func:`lr_drops`).
    reference : tuple (label, summary), optional
        Drawn in grey in every panel (e.g. the original unit beside each variant).
    ncols : int, optional
        Panels per row (default: up to 3).
    title : str, optional
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(panels)
    ncols = ncols or min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols,
                                                    panel_size[1] * nrows + 0.5),
                             sharex=True, sharey=True, squeeze=False)
    every = [s for g in panels.values() for s in g.values()] + (
        [reference[1]] if reference else [])
    top = max(v for s in every for k in ("train_error_pct", "test_error_pct")
              for v in s["curve"][k] if v is not None)
    last = max(max(s["curve"]["epoch"]) for s in every)
    colours = {}
    banded = False
    for ax, (name, group) in zip(axes.flat, panels.items()):
        if reference:
            c = reference[1]["curve"]
            ax.plot(c["epoch"], c["train_error_pct"], "--", color="0.7", lw=1)
            ax.plot(c["epoch"], c["test_error_pct"], "-", color="0.7", lw=1.8)
        for label, s in group.items():
            colour = colours.setdefault(label, PALETTE[len(colours) % len(PALETTE)])
            c = s["curve"]
            ax.plot(c["epoch"], c["train_error_pct"], "--", color=colour, lw=1.2)
            ax.plot(c["epoch"], c["test_error_pct"], "-", color=colour, lw=2)
            if is_replicated(s) and None not in c["test_error_pct"]:
                banded = True
                ax.fill_between(c["epoch"], [m - d for m, d in zip(c["test_error_pct"],
                                                                   c["test_error_sd"])],
                                [m + d for m, d in zip(c["test_error_pct"],
                                                       c["test_error_sd"])],
                                color=colour, alpha=0.18, lw=0)
        first = next(iter(group.values()))
        mark_lr_drops(ax, lr_drops(first, run_file(record, first, results)
                                   if record else None))
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes.flat:
        epoch_axis(ax, last)
        percent_axis(ax, top)
    for ax in axes[:-1].flat:
        ax.set_xlabel("")
    for ax in axes[:, 1:].flat:
        ax.set_ylabel("")
    handles = []
    if not (reference and all(len(g) == 1 for g in panels.values())):
        handles += [Line2D([], [], color=c, lw=2, label=label) for label, c in colours.items()]
    handles += [Line2D([], [], color="k", ls="--", lw=1.2, label="training error (running)"),
                Line2D([], [], color="k", lw=2, label="test error")]
    if banded:
        seeds = next(s["seeds"] for s in every if is_replicated(s))
        handles[-1].set_label(f"test error: mean of {len(seeds)} seeds, ± sd shaded")
    if reference:
        handles.append(Line2D([], [], color="0.7", lw=1.8, label=f"{reference[0]} (grey)"))
    handles.append(Line2D([], [], label="learning rate / 10", **LR_STYLE))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def unit_diagram(layouts):
    """Residual units drawn as boxes and arrows, side by side.

    ``layouts`` maps a title to one unit's operations in forward order, as
    :func:`gluonres.experiments.identity.unit_layout` reads them off the unit's graph
    (``'add'`` is the shortcut's addition); the shortcut is drawn from the input to it.
    """
    import matplotlib.pyplot as plt

    colour = {"conv": "#cfe2f3", "BN": "#fce5cd", "ReLU": "#d9ead3"}
    tallest = max(len(ops) for ops in layouts.values())
    fig, axes = plt.subplots(1, len(layouts), figsize=(3.4 * len(layouts), 0.55 * tallest + 1.6),
                             squeeze=False)
    for ax, (title, ops) in zip(axes[0], layouts.items()):
        k = ops.index("add")
        ys = [-(i + 1) for i in range(len(ops))]
        ax.text(0, 0, "x", ha="center", va="center", fontsize=11, fontweight="bold")
        prev = 0
        for op, y in zip(ops, ys):
            ax.annotate("", (0, y + 0.28), (0, prev - 0.28),
                        arrowprops={"arrowstyle": "->", "color": "0.3"})
            if op == "add":
                ax.text(0, y, "+", ha="center", va="center", fontsize=12,
                        bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "0.2"})
            else:
                ax.text(0, y, op, ha="center", va="center", fontsize=9,
                        bbox={"boxstyle": "round,pad=0.3", "fc": colour.get(op, "#eeeeee"),
                              "ec": "0.5"})
            prev = y
        out = -(len(ops) + 1)
        ax.annotate("", (0, out + 0.28), (0, prev - 0.28),
                    arrowprops={"arrowstyle": "->", "color": "0.3"})
        expr = "x + F(x)"
        for op in ops[k + 1:]:
            expr = f"{op}({expr})"
        ax.text(0, out, f"h = {expr}", ha="center", va="center", fontsize=9,
                fontweight="bold")
        # the shortcut: from x, down the right-hand side, into the addition
        ax.plot([0.15, 1.0, 1.0], [0, 0, ys[k]], color="C3", lw=1.5)
        ax.annotate("", (0.2, ys[k]), (1.0, ys[k]),
                    arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.5})
        ax.text(1.08, (ys[k]) / 2, "identity\nshortcut", color="C3", fontsize=8,
                va="center")
        # F(x): the residual branch, the operations before the addition
        ax.plot([-0.9, -0.9], [ys[0] + 0.3, ys[k - 1] - 0.3], color="0.4", lw=1)
        ax.text(-1.0, (ys[0] + ys[k - 1]) / 2, "F(x)", ha="right", va="center", fontsize=10)
        ax.set_xlim(-1.8, 2.0)
        ax.set_ylim(-(tallest + 1.6), 0.6)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


#: ResNet-110 on CIFAR-10 in the 2015 paper (Table 6): the best of 5 runs and the mean
#: and standard deviation of the 5. The 2016 paper's tables quote 6.61 for it.
RESNET110_2015 = {"best": 6.43, "mean": 6.61, "std": 0.16,
                  "source": "He et al. 2015, Table 6 (best of 5 runs; mean ± std)"}


def depth_figure(record, paper_test_error):
    """Test error against depth: ours (the depths trained at the record's scale, and the
    record's longer run of one depth where it has one) beside the paper's Table 6, on one
    axis from zero.

    ``paper_test_error``: ``{depth: error}`` (``gluonres.experiments.depth.PAPER``);
    ResNet-110 is drawn as its best run with the mean ± std of its 5 runs beside it.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.6))
    depths = sorted(paper_test_error)
    ax.plot(depths, [paper_test_error[d] for d in depths], "s--", color="0.45",
            label="paper, Table 6 (lossless CIFAR-10, 64,000 updates)")
    if 110 in paper_test_error:
        r = RESNET110_2015
        ax.errorbar([110 * 1.08], [r["mean"]], yerr=[r["std"]], fmt="D", color="0.45",
                    ms=4, capsize=3, label="paper, ResNet-110: mean ± std of 5 runs "
                                           "(the square: best run)")
    ours = sorted((m["depth"], m["final_test_error"], m["iterations"])
                  for m in record["models"].values())
    budgets = {it for _, _, it in ours}
    # one budget for all: said once in the legend (labels at neighbouring depths overlap)
    same = f", {budgets.pop():,} updates each" if len(budgets) == 1 else ""
    ax.plot([d for d, _, _ in ours], [e for _, e, _ in ours], "o-", color="C0",
            label=f"ours, {record['scale']} scale (JPEG CIFAR-10{same})")
    for k, (d, e, it) in enumerate(ours if not same else []):
        ax.annotate(f"{it:,} updates", (d, e), textcoords="offset points",
                    xytext=(0, -13 if k % 2 == 0 else 8), ha="center", fontsize=8,
                    color="C0")
    longer = record.get("longer")
    if longer:
        ax.plot([longer["depth"]], [longer["final_test_error"]], "D", color="C1",
                label=f"ours, ResNet-{longer['depth']} for {longer['epochs']} epochs "
                      f"({longer['schedule']} schedule; {longer['record']})")
        ax.annotate(f"{longer['iterations']:,} updates",
                    (longer["depth"], longer["final_test_error"]), textcoords="offset points",
                    xytext=(7, -3), ha="left", fontsize=8, color="C1")
    ax.set_xscale("log")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("depth (weighted layers; log scale: 20 to 1202)")
    top = max([e for _, e, _ in ours] + list(paper_test_error.values()))
    percent_axis(ax, top, "test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig


def _paper_value(text):
    """``(error or None, failed)`` from a paper cell such as ``'8.70 (fail ...)'``,
    ``'fail'`` or ``6.61``."""
    if isinstance(text, (int, float)):
        return float(text), False
    head = str(text).split()[0]
    return (None, True) if head == "fail" else (float(head), False)


def variant_errors(record, paper, chance=90.0):
    """Test error of every 2016 variant, ours (left, 0-100%, chance marked; for a
    replicated record the mean with ± sd bars and each seed as a dot) beside the paper's
    (right, on its own 0-25% scale with its 'fail' markers): one row of panels per family
    (activations, shortcuts).

    ``paper``: ``gluonres.experiments.identity.PAPER``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    families = (("activations", "table2"), ("shortcuts", "table1"))
    sizes = [len(record[f]) for f, _ in families]
    fig, axes = plt.subplots(2, 2, figsize=(11, 0.42 * sum(sizes) + 2.2),
                             gridspec_kw={"height_ratios": sizes, "width_ratios": (3, 2)})
    some = next(iter(record["activations"].values()))
    for row, (family, table) in enumerate(families):
        names = list(record[family])
        pos = np.arange(len(names))
        ours, theirs = axes[row]
        spreads = [record[family][n].get("spread", {}).get("final_test_error")
                   for n in names]
        ours.barh(pos, [record[family][n]["final_test_error"] for n in names], color="C0",
                  height=0.6, **({"xerr": [s["sd"] if s else 0 for s in spreads],
                                  "capsize": 3} if any(spreads) else {}))
        for p, n, sp in zip(pos, names, spreads):
            e = record[family][n]["final_test_error"]
            right = e
            if sp:
                ours.plot(sp["values"], [p] * len(sp["values"]), "o", color="k", ms=2.5)
                right = max(e + sp["sd"], *sp["values"])
            ours.text(right + 1.5, p, f"{e:.1f} ± {sp['sd']:.1f}" if sp else f"{e:.1f}",
                      va="center", fontsize=8)
        ours.axvline(chance, color="C3", lw=1, ls="--")
        ours.set_xlim(0, 100)
        ours.set_yticks(pos, names, fontsize=8)
        ours.invert_yaxis()
        ours.grid(alpha=0.3, axis="x")
        fail_at = 22.5
        for p, n in zip(pos, names):
            cell = paper[table][n]
            values = cell if isinstance(cell, (tuple, list)) else (cell,)
            shown = []
            for v, marker, colour in zip(values, ("s", "^"), ("0.3", "0.6")):
                err, failed = _paper_value(v)
                if failed:
                    theirs.plot([fail_at], [p], "x", color="C3", ms=8, mew=2)
                    theirs.text(fail_at - 0.6, p, "fail", color="C3", ha="right",
                                va="center", fontsize=8)
                else:
                    theirs.plot([err], [p], marker, color=colour, ms=6)
                    shown.append(err)
            if shown:
                theirs.text(max(shown) + 0.6, p, " / ".join(f"{e:.2f}" for e in shown),
                            va="center", fontsize=7, color="0.3")
        theirs.axvline(20, color="C3", lw=0.8, ls=":")
        theirs.set_xlim(0, 25)
        theirs.set_yticks(pos, [""] * len(names))
        theirs.set_ylim(ours.get_ylim())
        theirs.grid(alpha=0.3, axis="x")
    seeds = next((s["seeds"] for f, _ in families for s in record[f].values()
                  if is_replicated(s)), None)
    said = (f"; mean ± sd of seeds {', '.join(map(str, seeds))}, dots: each seed"
            if seeds else "")
    axes[0, 0].set_title(f"ours: {record['base']}, {some['iterations']:,} updates, JPEG "
                         f"CIFAR-10\n(dashed: chance, {chance:.0f}%{said})", fontsize=9)
    axes[0, 1].set_title("paper: ResNet-110 (squares) / ResNet-164 (triangles),\n64,000 "
                         "updates, lossless CIFAR-10 (dotted: 'fail', above 20%)", fontsize=9)
    axes[1, 0].set_xlabel("test error (%)")
    axes[1, 1].set_xlabel("test error (%), 2016 Tables 1 and 2")
    fig.tight_layout()
    return fig


def responses_figure(record):
    """Fig. 7 re-made: the std of each 3x3 layer's response in network order (top, the
    56-layer nets' stages marked) and sorted (bottom), on axes from zero, legend outside."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharey=True)
    styles = {"plain20_cifar": ("C0", "--"), "plain56_cifar": ("C1", "--"),
              "resnet20_cifar": ("C0", "-"), "resnet56_cifar": ("C1", "-"),
              "resnet110_cifar": ("C2", "-")}
    top = max(max(r["std"]) for r in record["models"].values())
    for model, r in record["models"].items():
        colour, style = styles.get(model, ("k", ":"))
        x = range(1, len(r["std"]) + 1)
        label = f"{model} ({r['iterations']:,} updates)"
        axes[0].plot(x, r["std"], style, color=colour, label=label)
        axes[1].plot(x, sorted(r["std"], reverse=True), style, color=colour, label=label)
    deepest = max(record["models"].values(), key=lambda r: len(r["std"]))
    stage_of = [n.split("_")[0] for n in deepest["layers"]]
    for i in range(1, len(stage_of)):
        if stage_of[i] != stage_of[i - 1]:
            axes[0].axvline(i + 0.5, color="0.6", lw=0.8)
            axes[0].annotate(f"{stage_of[i]} of the {len(stage_of) + 1}-layer nets",
                             (i + 0.7, 1), xycoords=("data", "axes fraction"),
                             xytext=(0, -3), textcoords="offset points", va="top",
                             fontsize=7, color="0.4")
    axes[0].set_xlabel("3x3 layer, in network order")
    axes[1].set_xlabel("3x3 layer, sorted by std")
    for ax in axes:
        ax.set_ylim(0, top * 1.1)
        ax.set_ylabel("std of the response")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def _repel_labels(ax, points, texts, fontsize=8):
    """Annotate ``points`` (data coordinates) with ``texts`` so that no two labels
    overlap and every label stays inside the axes: each label starts beside its point
    (right of it, left of it in the right third) and moves alternately up and down in
    growing steps until it is clear, with a leader line once it has moved."""
    from matplotlib.text import Text

    renderer = ax.figure.canvas.get_renderer()
    from matplotlib.transforms import Bbox

    frame = ax.get_window_extent(renderer)
    # the markers (with their error bars' width) are taken before any label
    placed = [Bbox.from_extents(px - 5, py - 5, px + 5, py + 5)
              for px, py in ax.transData.transform(points)]
    offsets = [3] + [3 + sign * 8 * k for k in range(1, 30) for sign in (1, -1)]
    for i in sorted(range(len(points)), key=lambda i: points[i][1]):
        (x, y), text = points[i], texts[i]
        fx = ax.transAxes.inverted().transform(ax.transData.transform((x, y)))[0]
        right = fx > 0.62
        for dy in offsets:
            a = ax.annotate(text, (x, y), xytext=(-6 if right else 6, dy),
                            textcoords="offset points", ha="right" if right else "left",
                            va="bottom", fontsize=fontsize,
                            arrowprops=None if dy == 3 else
                            {"arrowstyle": "-", "color": "0.6", "lw": 0.6})
            a.update_positions(renderer)
            box = Text.get_window_extent(a, renderer)  # the text alone, not its leader
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(b) for b in placed):
                break
            a.remove()
        else:  # nowhere clear: beside the point after all
            a = ax.annotate(text, (x, y), xytext=(-6 if right else 6, 3),
                            textcoords="offset points", ha="right" if right else "left",
                            fontsize=fontsize)
            a.update_positions(renderer)
            box = Text.get_window_extent(a, renderer)
        placed.append(box)


def race_figure(record, chance=10.0):
    """The backbone race: test accuracy against multiply-adds per image, on an accuracy
    axis from zero with chance marked, every label readable."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5))
    rows = [r for r in record["models"] if r.get("test_accuracy") is not None]
    points, texts = [], []
    for i, r in enumerate(rows):
        x, y = r["macs"] / 1e6, 100 * r["test_accuracy"]
        ax.errorbar(x, y, yerr=r["std_error_pct"], fmt="o", capsize=3, color=f"C{i % 10}")
        points.append((x, y))
        texts.append(f"{r['model']} ({r['input_size']} px)")
    ax.axhline(chance, color="C3", lw=1, ls="--")
    ax.annotate(f"chance ({chance:.0f}%: 10 classes)", (1, chance),
                xycoords=("axes fraction", "data"), xytext=(-4, -10),
                textcoords="offset points", ha="right", fontsize=8, color="C3")
    ax.set_xscale("log")
    xs = [p[0] for p in points]
    ax.set_xlim(min(xs) / 3, max(xs) * 3)
    ax.set_ylim(0, max(100 * r["test_accuracy"] for r in rows) * 1.35)
    ax.set_xlabel("multiply-adds per image at the training size (millions; log scale: "
                  "they span 3 orders of magnitude)")
    ax.set_ylabel("test accuracy (%) ± 1 s.e.")
    ax.grid(alpha=0.3)
    d, st = record["data"], record["settings"]
    updates = d["splits"]["train"] // st["batch_size"] * st["epochs"]
    ax.set_title(f"{record['scale']} scale: {d['splits']['train']:,} training images x "
                 f"{st['epochs']} epochs ({updates:,} updates of {st['batch_size']}), "
                 f"accuracy on {d['splits']['test']:,} test images", fontsize=9)
    fig.tight_layout()
    _repel_labels(ax, points, texts)
    return fig


# ---------------------------------------------------------------------------- INT8
def int8_speedups(results):
    """Every recorded INT8 forward speed-up with the FP32 baseline it is against.

    Reads ``deployment-cpu.json``, ``int8-resnet20_cifar.json`` and ``bench-*.json``
    in ``results`` (those present). Two FP32 baselines occur: the exported graph as
    hybridized Gluon runs it (``unfused``) and the same graph partitioned by the
    oneDNN subgraph backend (``fused``; :func:`gluonres.train.speed.for_inference`).
    """
    import glob

    loaded = {}  # record name -> record, read once

    def load(name):
        path = os.path.join(results, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            loaded[name] = json.load(f)
        return loaded[name]

    rows = []
    d = load("deployment-cpu.json")
    if d and d["speed"].get("int8_fwd_img_s"):
        sp = d["speed"]
        rows.append({"record": "deployment-cpu.json", "model": sp["model"],
                     "batch": d["speed_batch"], "weights": "random (He)", "baseline": "fused",
                     "fp32": sp["hybrid_fwd_img_s"], "int8": sp["int8_fwd_img_s"]})
    r = load("int8-resnet20_cifar.json")
    if r:
        for base, key in (("unfused", "fp32_img_s"), ("fused", "fp32_fused_img_s")):
            rows.append({"record": "int8-resnet20_cifar.json", "model": r["model"],
                         "batch": r["batch"], "weights": "trained (reference)",
                         "baseline": base, "fp32": r[key], "int8": r["int8_img_s"]})
    for path in sorted(glob.glob(os.path.join(results, "bench-*.json"))):
        b = load(os.path.basename(path))
        for m in b.get("models", []):
            if m.get("int8_fwd_img_s") and m.get("hybrid_fwd_img_s"):
                rows.append({"record": os.path.basename(path), "model": m["model"],
                             "batch": b["batch"], "weights": "random (He)",
                             "baseline": "fused", "fp32": m["hybrid_fwd_img_s"],
                             "int8": m["int8_fwd_img_s"]})
    for row in rows:
        row["speedup"] = row["int8"] / row["fp32"]
        row["isa"] = _isa(loaded[row["record"]].get("machine") or {})
    return rows


def _isa(machine):
    """The instruction set oneDNN ran on, from a record's machine: ``DNNL_MAX_CPU_ISA``
    where it capped it, else the CPU's widest vector extension."""
    if machine.get("dnnl_max_cpu_isa"):
        return f"{machine['dnnl_max_cpu_isa'].lower()} (capped)"
    isa = machine.get("isa") or []
    return "avx512" if "avx512f" in isa else "avx2" if "avx2" in isa else "?"


def int8_text(rows):
    """:func:`int8_speedups` as a text table."""
    lines = [f"{'record':<38}{'ISA':<15}{'model':<16}{'batch':>6}  {'weights':<20}"
             f"{'FP32 baseline':<15}{'FP32 img/s':>11}{'INT8 img/s':>11}{'INT8 / FP32':>12}"]
    lines += [f"{r['record']:<38}{r['isa']:<15}{r['model']:<16}{r['batch']:>6}  "
              f"{r['weights']:<20}{r['baseline']:<15}{r['fp32']:>11,.0f}{r['int8']:>11,.0f}"
              f"{r['speedup']:>11.2f}x" for r in rows]
    return "\n".join(lines)
