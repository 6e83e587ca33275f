"""What every paper experiment shares: scales, data, cached training runs, records.

An experiment module (``degradation``, ``shortcuts`` ...) defines ``NAME``, ``TITLE``
and ``compute(runner) -> dict``; :func:`reproduce` runs it at a :class:`Scale` and
writes ``results/NAME-SCALE.json`` with the command, data (and its caveats), machine and
wall time around what ``compute`` returned.

Training runs are shared between experiments: :meth:`Runner.train` keeps each finished
run as a small JSON file under ``results/runs/SCALE/`` (curves, final errors, and the
analyses computed by :class:`RunAnalysis` at the start and end of training), keyed by
model, options and training settings, so the layer responses and the depth table reuse
the degradation runs, and the 2016 variants reuse the shortcut experiment's option-A and
option-C runs. The run folders
themselves (checkpoints, weights, export) go under ``runs/reproduce/SCALE/`` and are not
results: an interrupted run resumes from its last checkpoint there.
"""
import dataclasses
import json
import math
import os
import re
import sys
import time


from .. import analysis, data as data_module, training
from .._files import json_default, write_text
from ..errors import GluonresError
from ..machine import machine, utc_now

#: The JPEG caveat written beside every number measured on the shared CIFAR-10.
JPEG_CAVEAT = ("CIFAR-10 stored as JPEG: compression artifacts cost about 10 points of "
               "accuracy against the lossless set the papers used (the reference ResNet-20 "
               "scores 91.7% on lossless CIFAR-10 and 81.03% on this copy); compare our "
               "numbers with each other, and with the papers' only with this caveat")
SHARED_CIFAR = "../shared/data/cifar10-jpg.tar.gz"


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big an experiment's training runs are.

    Parameters
    ----------
    name : str
    train_images : int or None
        A seeded, class-balanced subset of the training split (``None``: all of it).
    curve_test_images : int or None
        Seeded, class-balanced test images evaluated after every epoch for the curves
        (``None``: the whole test split). The final test error is always measured on
        the whole test split.
    epochs : int or None
        Run length, with the paper's step schedule compressed proportionally (``None``:
        ``iterations``).
    iterations : int or None
        Run length in updates (the paper: 64,000).
    batch_size : int
    analysis_images : int
        Test images whose layer responses are measured.
    train_eval_images : int or None
        Seeded, class-balanced training images on which the trained network's training
        error is measured in inference mode (``None``: the whole training subset).
    quick : dict
        Training overrides of the scale's *quick* runs (:meth:`Runner.quick`): the
        many-variant comparisons (shortcut options, the 2016 variants, the seed's
        ResNet-18) that a 2-core budget affords only shorter; empty where they are as
        long as the others.
    checkpoints : bool
        Keep run folders (checkpoints, weights, export) so that long runs resume.
    default_data : str or None
        Data used when none is given (``None``: it must be given).
    description : str
    """

    name: str
    train_images: int | None
    curve_test_images: int | None
    epochs: int | None
    iterations: int | None
    batch_size: int
    analysis_images: int
    train_eval_images: int | None
    quick: dict
    checkpoints: bool
    default_data: str | None
    description: str

    def describe(self):
        """JSON-ready settings."""
        return dataclasses.asdict(self)

    def config(self, model, hflip=True, **overrides):
        """The training settings of ``model`` at this scale: the paper's recipe
        (warm-ups included), with this scale's length and batch and ``overrides``."""
        length = ({"epochs": self.epochs} if self.epochs
                  else {"iterations": self.iterations, "epochs": None})
        return training.recipe(model, **{"batch_size": self.batch_size, "flip": hflip,
                                         **length, **overrides})


SCALES = {
    "smoke": Scale(
        "smoke", train_images=64, curve_test_images=32, epochs=2, iterations=None,
        batch_size=16, analysis_images=32, train_eval_images=None, quick={},
        checkpoints=False, default_data="digits",
        description="seconds: 64 training images (scikit-learn's digits unless --data "
                    "says otherwise), 2 epochs of 4 updates of 16; proves the pipeline, "
                    "measures nothing"),
    "cpu": Scale(
        "cpu", train_images=5_000, curve_test_images=500, epochs=10, iterations=None,
        batch_size=128, analysis_images=500, train_eval_images=2_000, quick={"epochs": 3},
        checkpoints=True, default_data=None,
        description="a real run sized for 2 CPU cores: a fixed class-balanced 5,000-image "
                    "subset of the CIFAR-10 training set, 10 epochs (390 updates of 128) "
                    "with the paper's step schedule compressed (lr 0.1, /10 at 50% and "
                    "75%); the four degradation networks (plain/ResNet-20/56) instead "
                    "train on all 50,000 images for 16 epochs (6,240 updates) and warm up "
                    "at 0.01 until their training error is below 80%, as the paper's "
                    "ResNet-110; the "
                    "many-variant comparisons (shortcut options, the 2016 "
                    "variants, the seed's ResNet-18) only 3 epochs (117 updates); curves "
                    "on 500 fixed test images, final test errors on all 10,000"),
    "paper": Scale(
        "paper", train_images=None, curve_test_images=None, epochs=None, iterations=64_000,
        batch_size=128, analysis_images=1_000, train_eval_images=10_000, quick={},
        checkpoints=True, default_data=None,
        description="the papers' recipe: all 50,000 training images, 64,000 updates of "
                    "128, lr 0.1 divided by 10 at 32k and 48k, test set after every epoch "
                    "(2015, Sec. 4.2)"),
}


def get_scale(name, scales=None):
    """The scale called ``name`` in ``scales`` (default: the paper experiments'
    :data:`SCALES`); unknown names raise naming the known ones."""
    scales = SCALES if scales is None else scales
    try:
        return scales[name]
    except KeyError:
        raise GluonresError(f"unknown scale {name!r}; use one of {', '.join(scales)}") from None


# ---------------------------------------------------------------------------- data
@dataclasses.dataclass
class ExperimentData:
    """The data of one scale: training subset, curve test subset and full test split.

    Attributes
    ----------
    data : gluonres.data.Data
        ``train`` is the training subset, ``test`` the curve test subset.
    full_test : gluonres.data.ImageArrays
        Every test image (final errors).
    spec : str
        What ``--data`` was.
    """

    data: data_module.Data
    full_test: data_module.ImageArrays
    spec: str

    def describe(self):
        """JSON-ready description, with the JPEG caveat where the images are JPEG."""
        out = {"spec": self.spec, "name": self.data.name,
               "train_images": len(self.data.train), "curve_test_images": len(self.data.test),
               "final_test_images": len(self.full_test), "classes": self.data.classes,
               "subset": "seeded (seed 0), class-balanced"}
        if self.full_test.lossy or self.data.train.lossy:
            out["note"] = JPEG_CAVEAT
        return out


_LOADED = {}


def data_spec(scale, spec):
    """``spec``, or the scale's default; a scale that needs real data says how to pass it."""
    spec = spec or scale.default_data
    if spec is None:
        raise GluonresError(
            f"scale {scale.name!r} trains on real data: pass --data, the CIFAR-10 image "
            f"folder or archive (e.g. {SHARED_CIFAR}) or 'cifar10' (downloads)")
    return spec


def load_with_test(spec, who, progress=True, size=None):
    """:func:`gluonres.data.load` for data that must have a test split (``who`` needs it)."""
    full = data_module.load(spec, size=size, progress=progress)
    if full.test is None:
        raise GluonresError(f"{spec!r} has no test split; {who} needs train/ and test/ "
                            "(e.g. the CIFAR-10 image folder)")
    return full


def load_data(scale, spec=None, progress=True, train_images=None):
    """Load ``spec`` (default: the scale's) and cut it to the scale's subsets.

    Decoded data is kept in memory for the process, so experiments run one after
    another decode it once. ``train_images`` replaces the scale's training subset size.

    Raises
    ------
    GluonresError
        If the scale needs data and none was given, or the data has no test split.
    """
    spec = data_spec(scale, spec)
    size = train_images or scale.train_images
    key = (os.path.abspath(spec) if os.path.exists(spec) else spec, scale.name, size)
    if key not in _LOADED:
        full = load_with_test(spec, "the experiments", progress, size=32)
        train = full.train
        if size:
            train = train.subset(data_module.balanced_subset(train.labels, size))
        curve = full.test
        if scale.curve_test_images:
            curve = curve.subset(data_module.balanced_subset(curve.labels,
                                                             scale.curve_test_images))
        _LOADED[key] = ExperimentData(
            data_module.Data(full.name, train, curve, hflip=full.hflip), full.test, spec)
    return _LOADED[key]


# ---------------------------------------------------------------------------- runs
@dataclasses.dataclass
class RunSpec:
    """One training run: a registered model, its options and training overrides.

    Parameters
    ----------
    model : str
        Registered name.
    options : dict
        ``get_model`` keyword arguments (``arrangement``, ``shortcut`` ...); the class
        count comes from the data.
    train : dict
        :class:`~gluonres.training.TrainConfig` overrides of the scale's settings
        (``epochs``, ``warmup`` ...).
    label : str, optional
        Name shown in tables and plots (default: the model name).
    train_images : int, optional
        Size of this run's seeded, class-balanced training subset (default: the
        scale's).
    """

    model: str
    options: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    label: str = None
    train_images: int = None

    def __post_init__(self):
        self.label = self.label or self.model

    @property
    def key(self):
        """File-name-safe identity: model, then sorted options and overrides."""
        parts = [self.model] + ([f"images-{self.train_images}"] if self.train_images else [])
        for k, v in sorted({**self.options, **self.train}.items()):
            if isinstance(v, dict):
                v = "_".join(f"{a}{b}" for a, b in sorted(v.items()))
            parts.append(f"{k}-{v}")
        return re.sub(r"[^A-Za-z0-9._-]", "_", "__".join(parts))

    def build(self, classes):
        """The network, built with ``classes`` outputs."""
        from ..registry import get_model
        return get_model(self.model, classes=classes, **self.options)


class RunAnalysis(training.Callback):
    """The per-run analyses, computed inside :func:`~gluonres.training.fit`.

    - at the start of a fresh run: per-layer gradient norms at initialisation
      (kept in the first epoch's record, so a resumed run still has them);
    - at the end: gradient norms of the trained net on the same batch, the layer
      responses (2015, Fig. 7), the test error on the whole test split, and the error
      on the (unaugmented) training subset in inference mode.

    Parameters
    ----------
    grad_batch : tuple of numpy.ndarray
        ``(uint8 images, labels)``: a fixed batch (the first training images).
    response_images : numpy.ndarray
        uint8 images whose layer responses are measured.
    full_test : gluonres.data.ImageArrays
        The whole test split (final test error).
    train : gluonres.data.ImageArrays
        Training images whose error is measured in inference mode at the end.
    """

    def __init__(self, grad_batch, response_images, full_test, train):
        self.grad_batch, self.response_images = grad_batch, response_images
        self.full_test, self.train = full_test, train
        self.init = None
        self.result = None

    def _grads(self, state):
        x, y = training.to_input(*self.grad_batch, state.preprocess, None)
        return analysis.gradient_norms(state.net, x, y)

    def on_train_begin(self, state):
        if state.epoch == 0:
            self.init = self._grads(state)

    def on_epoch_end(self, state, record):
        if state.epoch == 1 and self.init is not None:
            record["gradient_norms_init"] = self.init

    def on_train_end(self, state, history):
        init = self.init or history["epochs"][0].get("gradient_norms_init")
        trained = self._grads(state)
        x = state.preprocess(_nd(self.response_images))
        self.result = {
            "gradient_norms": {"layers": trained["layers"],
                               "init": init["norms"] if init else None,
                               "trained": trained["norms"]},
            "layer_responses": analysis.layer_responses(state.net, x),
            "final_test_error": training.error_pct(state.net, self.full_test,
                                                   state.preprocess),
            "final_train_error_eval": training.error_pct(state.net, self.train,
                                                         state.preprocess),
        }


def _nd(images):
    import mxnet as mx
    return mx.nd.array(images, dtype="uint8")


#: Per-epoch fields a run keeps for the curves.
CURVE_FIELDS = ("epoch", "iteration", "lr", "train_loss", "train_error_pct", "test_error_pct",
                "img_s", "seconds")


class Runner:
    """Runs an experiment's training at one scale and keeps the results.

    Parameters
    ----------
    scale : Scale
    data : str, optional
        ``--data`` (default: the scale's).
    out : str, default 'results'
        Where records go; finished runs are kept under ``out/runs/SCALE/``.
    work : str, optional
        Run folders (checkpoints) for scales that keep them; default
        ``runs/reproduce``.
    progress : bool, default True
        Progress bars and per-epoch lines on standard error.
    """

    def __init__(self, scale, data=None, out="results", work=None, progress=True):
        self.scale, self.data_spec, self.out = scale, data, out
        self.work = work or os.path.join("runs", "reproduce")
        self.progress = progress
        self.used = []  # run keys, in order
        self.data_used = []  # descriptions of the data the runs trained on, first use first
        self._data = None

    @property
    def data(self):
        """The :class:`ExperimentData`, loaded on first use."""
        if self._data is None:
            self._data = load_data(self.scale, self.data_spec, self.progress)
        return self._data

    def quick(self, spec):
        """``spec`` as one of this scale's quick runs (its ``quick`` overrides applied
        under the spec's own)."""
        return dataclasses.replace(spec, train={**self.scale.quick, **spec.train})

    def run_path(self, spec):
        return os.path.join(self.out, "runs", self.scale.name, f"{spec.key}.json")

    def train(self, spec):
        """Train ``spec`` at this scale, or return the finished run kept earlier.

        Returns
        -------
        dict
            The run: ``model``, ``options``, ``label``, ``config``, ``params``,
            ``epochs`` (per-epoch curves), ``final_train_error`` (last epoch's running
            training error, %), ``final_train_error_eval``, ``final_test_error``
            (whole test split, %), ``gradient_norms``, ``layer_responses``, timings,
            ``machine``.

        Raises
        ------
        GluonresError
            If a kept run of this key was made with other settings or data.
        """
        self.used.append(spec.key)
        d = (self.data if spec.train_images is None
             else load_data(self.scale, self.data_spec, self.progress, spec.train_images))
        described = d.describe()
        if described not in self.data_used:
            self.data_used.append(described)
        config = self.scale.config(spec.model, d.data.hflip, **spec.train)
        # where the data came from (its path) may differ; what it is may not
        identity = {"model": spec.model, "options": spec.options, "config": config.to_dict(),
                    "data": {k: v for k, v in described.items()
                             if k not in ("spec", "name")}}
        path = self.run_path(spec)
        if os.path.exists(path):
            with open(path) as f:
                kept = json.load(f)
            for key, value in identity.items():
                if _jsonable(kept.get(key)) != _jsonable(value):
                    raise GluonresError(
                        f"{path} was trained with other {key} ({kept.get(key)!r} here, "
                        f"{value!r} now); delete it to train again, or run with the "
                        "settings and data it was made with")
            _log(self.progress, f"reusing {path}")
            return {**kept, "label": spec.label}
        run = self._fit(spec, spec.build(len(d.data.classes)), config, d)
        record = {**identity, "key": spec.key, "label": spec.label, **run}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text(path, json.dumps(record, indent=1, default=json_default) + "\n")
        return record

    def _fit(self, spec, net, config, d):
        train = d.data.train
        bs = config.batch_size
        train_eval = train
        if self.scale.train_eval_images and self.scale.train_eval_images < len(train):
            train_eval = train.subset(data_module.balanced_subset(train.labels,
                                                      self.scale.train_eval_images, seed=1))
        callback = RunAnalysis((train.images[:bs], train.labels[:bs]),
                               d.data.test.images[:self.scale.analysis_images],
                               d.full_test, train_eval)
        out_dir = resume = None
        if self.scale.checkpoints:
            out_dir = os.path.join(self.work, self.scale.name, spec.key)
            resume = os.path.exists(os.path.join(out_dir, training.CHECKPOINT))
            if resume:
                _log(self.progress, f"resuming {out_dir}")
        history = training.fit(net, d.data, config, out_dir=out_dir, resume=bool(resume),
                               progress=self.progress, callbacks=[callback],
                               info={"experiment_run": spec.key})
        last = history["epochs"][-1]
        return {"params": analysis.trainable_params(net),
                "epochs": [{k: r[k] for k in CURVE_FIELDS if k in r} for r in history["epochs"]],
                "final_train_error": last["train_error_pct"],
                **callback.result,
                "iterations": history["total_iterations"],
                "milestones": history["milestones"],
                "warmup_end_iteration": history.get("warmup_end_iteration"),
                "train_img_s": history["train_img_s"], "train_s": history["train_s"],
                "wall_s": history["wall_s"], "started": history["started"],
                "finished": history["finished"], "machine": history["machine"],
                "resumed": history["resumed"]}


def _jsonable(value):
    return json.loads(json.dumps(value, default=json_default))


def _log(enabled, message):
    if enabled:
        print(message, file=sys.stderr, flush=True)


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


def record_path(name, scale, out="results"):
    """``out/NAME-SCALE.json``."""
    return os.path.join(out, f"{name}-{scale}.json")


def load_record(name, scale="cpu", out="results"):
    """The record ``out/NAME-SCALE.json``, or ``None`` (with a message) if it is missing.

    Notebooks call this: a missing record prints the command that makes it instead of
    failing.
    """
    path = record_path(name, scale, out)
    if not os.path.exists(path):
        print(f"{path} is missing: make it with `gluonres reproduce {name} --scale {scale} "
              f"--data {SHARED_CIFAR}` (see docs/results.md); the plots and checks that "
              "need it are left out below")
        return None
    with open(path) as f:
        return json.load(f)


def reproduce(module, scale, data=None, out="results", work=None, progress=True,
              force=False, command=None):
    """Run an experiment module at a scale and write its record.

    Parameters
    ----------
    module : module
        An experiment module (``NAME``, ``TITLE``, ``compute``).
    scale : str
        ``'smoke'``, ``'cpu'`` or ``'paper'``.
    data : str, optional
    out : str, default 'results'
    work : str, optional
        See :class:`Runner`.
    progress : bool, default True
    force : bool, default False
        Replace an existing record (finished runs are reused either way).
    command : str, optional
        The command line to record; default: the equivalent ``gluonres reproduce``.

    Returns
    -------
    dict
        The record written to ``out/NAME-SCALE.json``.

    Raises
    ------
    GluonresError
        If the record exists and ``force`` is off, for an unknown scale, or missing data.
    """
    scale = get_scale(scale)
    path = record_path(module.NAME, scale.name, out)
    if os.path.exists(path) and not force:
        raise GluonresError(f"{path} already exists; pass --force to replace it (finished "
                            "training runs are reused, so this is quick)")
    runner = Runner(scale, data, out, work, progress)
    started, start = utc_now(), time.time()
    body = module.compute(runner)
    if command is None:
        command = f"gluonres reproduce {module.NAME} --scale {scale.name}"
        command += f" --data {data}" if data else ""
    record = {"experiment": module.NAME, "title": module.TITLE, "scale": scale.name,
              "scale_settings": scale.describe(), "command": command,
              "data": _data_of(runner),
              "machine": machine(), "started": started, "finished": utc_now(),
              "wall_s": time.time() - start, "runs": runner.used, **body}
    record["training_s"] = _training_seconds(record)
    os.makedirs(out, exist_ok=True)
    write_text(path, json.dumps(record, indent=1, default=json_default) + "\n")
    return record


def _data_of(runner):
    """The record's data: that of its first training run (the experiment's main runs come
    first), naming the training-set sizes of any other runs; else the data the experiment
    used without training; else None."""
    if runner.data_used:
        first, others = runner.data_used[0], runner.data_used[1:]
        return {**first, **({"other_train_images": [d["train_images"] for d in others]}
                            if others else {})}
    return runner.data.describe() if runner._data is not None else None


def _training_seconds(record):
    """Wall seconds of the training runs behind a record (kept runs included)."""
    seen, total = set(), 0.0
    for value in _walk(record):
        if isinstance(value, dict) and "wall_s" in value and "key" in value \
                and value["key"] not in seen:
            seen.add(value["key"])
            total += value["wall_s"]
    return total


def _walk(obj):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def provenance(record):
    """What a record is: experiment, scale, command, data (with its caveat), machine,
    time; printed by the notebooks under every loaded record."""
    d, m = record.get("data"), record.get("machine") or {}
    lines = [f"{record['title']} -- {record['scale']} scale",
             f"command: {record['command']}",
             f"machine: {m.get('cpu')}, {m.get('cores')} cores, OMP_NUM_THREADS="
             f"{m.get('omp_num_threads')}, mxnet {m.get('mxnet')}; finished "
             f"{record['finished']}, training {record.get('training_s', 0) / 60:.0f} min"]
    if d:
        lines.append(f"data: {d['spec']}, {d['train_images']:,} training images"
                     f"{other_runs(d)}, curves on {d['curve_test_images']:,} test images, "
                     f"final test error on {d['final_test_images']:,}")
        if d.get("note"):
            lines.append(f"caveat: {d['note']}")
    return "\n".join(lines)


def other_runs(data):
    """``' (5,000 for its other runs)'`` when a record's runs trained on several subsets."""
    other = data.get("other_train_images")
    return (f" ({', '.join(f'{n:,}' for n in other)} for its other runs)" if other else "")


def history_of(summary):
    """A :func:`summarize` curve as the history :func:`~gluonres.training.plot_curves`
    draws."""
    c = summary["curve"]
    return {"epochs": [{"epoch": e, "train_error_pct": tr, "test_error_pct": te}
                       for e, tr, te in zip(c["epoch"], c["train_error_pct"],
                                            c["test_error_pct"])]}


def data_line(record):
    """One line saying what a record was measured on (for figure titles)."""
    d = record.get("data") or {}

    def count(key):
        n = d.get(key)
        return f"{n:,}" if isinstance(n, int) else "?"

    line = (f"{record['scale']} scale: {count('train_images')} training images"
            f"{other_runs(d)} of {d.get('name', '?')}, curves on "
            f"{count('curve_test_images')} test images")
    return line + (" (JPEG CIFAR-10: see the caveat)" if d.get("note") else "")


def fmt_pct(value, digits=2):
    """``'12.34'`` or an en dash for a missing value."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"
