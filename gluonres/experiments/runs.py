"""Training runs shared between experiments: :class:`RunSpec` names one, the
:class:`Runner` trains it once per scale and keeps its summary in
``results/runs/SCALE/KEY.json``; :meth:`Runner.train_seeds` trains one spec under each of
the runner's seeds (replicates).
"""
import dataclasses
import json
import os
import re
import sys
import time

from gluonres import analysis
from gluonres import data as data_module
from gluonres import train as training
from gluonres._files import json_default, write_text
from gluonres.errors import GluonresError
from gluonres.experiments.scales import load_data


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
        :class:`~gluonres.train.TrainConfig` overrides of the scale's settings
        (``epochs``, ``warmup`` ...).
    label : str, optional
        Name shown in tables and plots (default: the model name).
    train_images : int, optional
        Size of this run's seeded, class-balanced training subset (default: the
        scale's).
    seed : int, default 0
        :attr:`~gluonres.train.TrainConfig.seed`: initial weights, batch order and
        augmentation. The data subsets do not change with it (they are drawn with seed 0
        for every run), so replicates differ only in what training draws.
    """

    model: str
    options: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    label: str = None
    train_images: int = None
    seed: int = 0

    def __post_init__(self):
        self.label = self.label or self.model
        if "seed" in self.train:
            raise GluonresError(f"{self.model}: pass the seed as RunSpec(seed=...), not in "
                                "train=, so that replicates are named alike")

    @property
    def key(self):
        """File-name-safe identity: model, then sorted options and overrides, then the
        seed unless it is 0 (so seed-0 runs keep the keys they had before seeds)."""
        parts = [self.model] + ([f"images-{self.train_images}"] if self.train_images else [])
        for k, v in sorted({**self.options, **self.train}.items()):
            if isinstance(v, dict):
                v = "_".join(f"{a}{b}" for a, b in sorted(v.items()))
            parts.append(f"{k}-{v}")
        parts += [f"seed-{self.seed}"] if self.seed else []
        return re.sub(r"[^A-Za-z0-9._-]", "_", "__".join(parts))

    def build(self, classes):
        """The network, built with ``classes`` outputs."""
        from gluonres.models import get_model
        return get_model(self.model, classes=classes, **self.options)


class FinalTest(training.Callback):
    """The trained net's top-1 error (%) on held-out images, measured once, when
    :func:`~gluonres.train.fit` ends; ``error_pct`` and ``seconds`` (how long that
    took) are set then.

    Parameters
    ----------
    test : gluonres.data.ImageArrays
    """

    def __init__(self, test):
        self.test, self.error_pct, self.seconds = test, None, None

    def on_train_end(self, state, history):
        start = time.time()
        self.error_pct = training.error_pct(state.net, self.test, state.preprocess)
        self.seconds = time.time() - start


class RunAnalysis(FinalTest):
    """The per-run analyses, computed inside :func:`~gluonres.train.fit`.

    - at the start of a fresh run: per-layer gradient norms at initialisation
      (kept in the first epoch's record, so a resumed run still has them);
    - at the end: gradient norms of the trained net on the same batch, the layer
      responses (2015, Fig. 7), the final test error, and the error on the
      (unaugmented) training subset in inference mode.

    Parameters
    ----------
    grad_batch : tuple of numpy.ndarray
        ``(uint8 images, labels)``: a fixed batch (the first training images).
    response_images : numpy.ndarray
        uint8 images whose layer responses are measured.
    final_test : gluonres.data.ImageArrays
        The test images of the final test error.
    train : gluonres.data.ImageArrays
        Training images whose error is measured in inference mode at the end.
    """

    def __init__(self, grad_batch, response_images, final_test, train):
        super().__init__(final_test)
        self.grad_batch, self.response_images, self.train = grad_batch, response_images, train
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
        responses = analysis.layer_responses(state.net, x)
        super().on_train_end(state, history)
        self.result = {
            "gradient_norms": {"layers": trained["layers"],
                               "init": init["norms"] if init else None,
                               "trained": trained["norms"]},
            "layer_responses": responses,
            "final_test_error": self.error_pct,
            "final_train_error_eval": training.error_pct(state.net, self.train,
                                                         state.preprocess),
        }


def _nd(images):
    import mxnet as mx
    return mx.nd.array(images, dtype="uint8")


#: Lengths of an experiment's comparison runs (the specs passed through
#: :meth:`Runner.quick`): ``quick`` applies the scale's ``quick`` overrides (``cpu``: 3
#: epochs, 117 updates), ``full`` trains them as long as the scale's other runs (``cpu``: 10
#: epochs, 390 updates), long enough for seeds to be compared.
BUDGETS = ("quick", "full")
WORK = os.path.join("runs", "reproduce")  # run folders with checkpoints, unless --work


def finished_dir(out, scale):
    """Where the finished runs of the scale named ``scale`` are kept and reused:
    ``OUT/runs/SCALE``."""
    return os.path.join(out, "runs", scale)


def checkpoint_dir(work, scale):
    """Where the unfinished runs of the scale named ``scale`` keep their run folders
    (checkpoints): ``WORK/SCALE``, under :data:`WORK` when ``work`` is None."""
    return os.path.join(work or WORK, scale)

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
    seeds : sequence of int, default (0,)
        Seeds of :meth:`train_seeds`: the experiment's replicated runs are trained once
        per seed.
    budget : {'quick', 'full'}, default 'quick'
        Length of the comparison runs (:data:`BUDGETS`, :meth:`quick`).

    Raises
    ------
    GluonresError
        For no seeds, a repeated or negative seed, or an unknown budget.
    """

    def __init__(self, scale, data=None, out="results", work=None, progress=True, seeds=(0,),
                 budget="quick"):
        self.scale, self.data_spec, self.out = scale, data, out
        self.work = work or WORK
        self.progress = progress
        self.seeds, self.budget = tuple(seeds), budget
        if not self.seeds or len(set(self.seeds)) < len(self.seeds) or min(self.seeds) < 0:
            raise GluonresError(f"seeds {list(seeds)} must be distinct and 0 or more; pass "
                                "e.g. --seeds 0 1 2")
        if budget not in BUDGETS:
            raise GluonresError(f"unknown budget {budget!r}; pass one of {', '.join(BUDGETS)}")
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
        """``spec`` as one of the experiment's comparison runs: with the ``quick`` budget
        the scale's ``quick`` overrides applied under the spec's own; with ``full`` the
        spec as it is (the scale's length)."""
        if self.budget == "full":
            return spec
        return dataclasses.replace(spec, train={**self.scale.quick, **spec.train})

    def train_seeds(self, spec):
        """:meth:`train` ``spec`` under each of the runner's seeds, in order.

        Each seed is a run of its own (key ``...__seed-N``, seed 0 keeping the plain
        key): finished ones are reused, interrupted ones resume.

        Returns
        -------
        list of dict
            The runs, one per seed.
        """
        return [self.train(dataclasses.replace(spec, seed=seed)) for seed in self.seeds]

    def run_path(self, spec):
        return os.path.join(finished_dir(self.out, self.scale.name), f"{spec.key}.json")

    def train(self, spec):
        """Train ``spec`` at this scale, or return the finished run kept earlier.

        Returns
        -------
        dict
            The run: ``model``, ``options``, ``label``, ``config``, ``params``,
            ``epochs`` (per-epoch curves), ``final_train_error`` (last epoch's running
            training error, %), ``final_train_error_eval``, ``final_test_error``
            (the scale's final test images, %), ``gradient_norms``,
            ``layer_responses``, timings, ``machine``.

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
        config = self.scale.config(spec.model, d.data.hflip, **spec.train, seed=spec.seed)
        # where the data came from (its path) may differ; what it is may not
        identity = {"model": spec.model, "options": spec.options, "config": config.to_dict(),
                    "data": {k: v for k, v in described.items()
                             if k not in ("spec", "name")}}
        path = self.run_path(spec)
        if os.path.exists(path):
            with open(path) as f:
                kept = json.load(f)
            for key, value in identity.items():
                if _comparable(key, kept.get(key)) != _comparable(key, value):
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
                               d.final_test, train_eval)
        out_dir = resume = None
        if self.scale.checkpoints:
            out_dir = os.path.join(checkpoint_dir(self.work, self.scale.name), spec.key)
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


def _comparable(key, value):
    """A run's identity field ``key`` as compared with a kept run's: training settings
    added since a run was made count at their defaults (it trained with what they default
    to: plain SGD before ``optimizer``, no smoothing before ``label_smoothing``), and the
    data's caveat is wording, not data."""
    value = _jsonable(value)
    if key == "config" and isinstance(value, dict):
        value = {**_jsonable(training.TrainConfig().to_dict()), **value}
    if key == "data" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "note"}
    return value


def _log(enabled, message):
    if enabled:
        print(message, file=sys.stderr, flush=True)
