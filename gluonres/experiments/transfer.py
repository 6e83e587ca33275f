"""Transfer learning on real images: pretrain on 8 CIFAR-10 classes, fine-tune on the
other 2 from 100 training images each, and compare with training from scratch.

The pretrained ResNet-20 never sees the two target classes (cat and dog, the pair the
CIFAR-10 networks confuse most), so what it brings is features, not labels. Every
variant trains on the same 200 images and is scored after every epoch on the same
held-out images: all 2,000 test images of the two classes. Each variant runs under
several seeds (weights of a fresh head or network, data order, augmentation), so the
curves carry their spread.
"""
import dataclasses
import os

import numpy as np

from gluonres import data as data_module
from gluonres.data import JPEG_CAVEAT
from gluonres import train as training
from gluonres.experiments.present import fmt_pct, fmt_spread, spread, verdict
from gluonres.experiments.scales import data_spec, load_with_test
from gluonres.models import get_model


NAME = "transfer"
TITLE = "Transfer: pretrain on 8 CIFAR-10 classes, fine-tune on the other 2 (100 images each)"
MODEL = "resnet20_cifar"
TARGET = ("cat", "dog")


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much the transfer experiment trains at one scale.

    Parameters
    ----------
    pretrain_epochs : int
        Epochs of the ``fast`` recipe on every training image of the 8 source classes.
    per_class : int
        Training images per target class (the issue's 100).
    finetune_epochs : int
        Epochs of every fine-tuning and from-scratch run.
    batch_size : int
        Batch of those runs (200 images: 6 updates per epoch at 32).
    seeds : tuple of int
    """

    pretrain_epochs: int
    per_class: int
    finetune_epochs: int
    batch_size: int
    seeds: tuple


BUDGETS = {
    "smoke": Budget(pretrain_epochs=1, per_class=8, finetune_epochs=2, batch_size=8,
                    seeds=(0, 1)),
    "cpu": Budget(pretrain_epochs=12, per_class=100, finetune_epochs=30, batch_size=32,
                  seeds=(0, 1, 2)),
}
BUDGETS["paper"] = BUDGETS["cpu"]

#: The compared variants: how the network starts, what trains, the learning rate.
#: Fine-tuning uses the usual tenth of the from-scratch rate; the scratch net is also run
#: at that rate, so that a gap is not the learning rate's.
VARIANTS = {
    "fine-tuned": {"init": "pretrained", "freeze": None, "lr": 0.01},
    "fine-tuned, features frozen": {"init": "pretrained", "freeze": "features", "lr": 0.1},
    "from scratch": {"init": None, "freeze": None, "lr": 0.1},
    "from scratch, lr 0.01": {"init": None, "freeze": None, "lr": 0.01},
}


def split_classes(data, source, target):
    """The source and target tasks of ``data``.

    Parameters
    ----------
    data : gluonres.data.Data
        With ``train`` and ``test`` splits.
    source, target : sequence of str
        Class names of each task.

    Returns
    -------
    (Data, Data)
        Each task's images of both splits, its classes relabelled from 0 in the order
        given.
    """
    def pick(split, names):
        index = [split.classes.index(n) for n in names]
        keep = np.isin(split.labels, index)
        relabel = np.full(len(split.classes), -1)
        relabel[index] = np.arange(len(index))
        part = split.subset(keep)
        return data_module.ImageArrays(part.images, relabel[part.labels], names, part.lossy)

    return tuple(data_module.Data(f"{data.name} [{', '.join(names)}]", pick(data.train, names),
                                  pick(data.test, names), hflip=data.hflip)
                 for names in (source, target))


def compute(runner):
    """Pretrain (resumable), then every variant under every seed; the record's body."""
    budget = BUDGETS[runner.scale.name]
    spec = data_spec(runner.scale, runner.data_spec)
    full = load_with_test(spec, "the transfer experiment", runner.progress)
    target_names = list(TARGET) if set(TARGET) <= set(full.classes) else full.classes[-2:]
    source_names = [c for c in full.classes if c not in target_names]
    source, target = split_classes(full, source_names, target_names)
    picked = data_module.balanced_subset(target.train.labels,
                                         budget.per_class * len(target_names), seed=0)
    target = dataclasses.replace(target, train=target.train.subset(picked))

    # resumable where the scale keeps run folders; else beside the record (a smoke run's
    # temporary folder)
    base = runner.work if runner.scale.checkpoints else os.path.join(runner.out, "runs")
    pretrain_dir = os.path.join(base, runner.scale.name, "transfer-pretrain")
    pretrained = _pretrain(source, budget, pretrain_dir, runner.progress)
    weights = os.path.join(pretrain_dir, "weights.params")
    runs = {name: [_finetune(target, name, variant, weights, budget, seed, runner.progress)
                   for seed in budget.seeds]
            for name, variant in VARIANTS.items()}
    described = {"spec": spec, "name": full.name, "train_images": len(target.train),
                 "subset": f"{budget.per_class} seeded (seed 0), class-balanced images of "
                           f"each target class; the pretrained network trained on all "
                           f"{len(source.train):,} images of the other classes",
                 "curve_test_images": len(target.test), "final_test_images": len(target.test),
                 "classes": target_names}
    if full.train.lossy or full.test.lossy:
        described["note"] = JPEG_CAVEAT
    return {"data": described,
            "runs": [pretrained["key"]] + [r["key"] for seeds in runs.values() for r in seeds],
            "source_classes": source_names, "target_classes": target_names,
            "budget": dataclasses.asdict(budget), "variants": VARIANTS,
            "pretrain": pretrained, "finetune": runs, "summary": summarize(runs),
            "target_data": {"train_images": len(target.train),
                            "held_out_images": len(target.test),
                            "held_out": "every test image of the two target classes"}}


def _pretrain(source, budget, out_dir, progress):
    config = training.recipe(MODEL, "fast", epochs=budget.pretrain_epochs, flip=source.hflip)
    # a finished run resumes to its end at once: its history, no training
    resume = os.path.exists(os.path.join(out_dir, training.CHECKPOINT))
    net = get_model(MODEL, classes=len(source.classes))
    history = training.fit(net, source, config, out_dir=out_dir, resume=resume,
                           progress=progress, info={"experiment_run": "transfer-pretrain"})
    return {"key": "transfer-pretrain", "classes": source.classes,
            "train_images": len(source.train), "test_images": len(source.test),
            "config": history["config"], "test_accuracy": history["test_accuracy"],
            "wall_s": history["wall_s"], "train_s": history["train_s"],
            "machine": history["machine"], "finished": history.get("finished")}


def _finetune(target, name, variant, weights, budget, seed, progress):
    config = training.recipe(MODEL, "fast", epochs=budget.finetune_epochs, lr=variant["lr"],
                             batch_size=budget.batch_size, seed=seed, flip=target.hflip)
    preprocess = None
    if variant["init"] == "pretrained":
        made = training.init_weights(MODEL, weights, classes=len(target.classes))
        net, preprocess = made.net, made.preprocess  # fit initialises the new head, seeded
    else:
        net = get_model(MODEL, classes=len(target.classes))
    if variant["freeze"]:
        training.freeze(net, variant["freeze"])
    history = training.fit(net, target, config, progress=progress, preprocess=preprocess)
    return {"key": f"transfer-{name}-seed{seed}", "variant": name, "seed": seed,
            "test_accuracy": history["test_accuracy"],
            "curve": [100 - e["test_error_pct"] for e in history["epochs"]],
            "train_loss": [e["train_loss"] for e in history["epochs"]],
            "wall_s": history["wall_s"]}


def summarize(runs):
    """Per variant: the :func:`~gluonres.experiments.present.spread` of its final held-out
    error (%) over seeds, and the verdict of each variant against the fine-tuned one."""
    errors = {name: spread([100 * (1 - r["test_accuracy"]) for r in seeds])
              for name, seeds in runs.items()}
    first, *others = errors
    return {"held_out_error": errors,
            "verdicts": [verdict(first, errors[first], other, errors[other],
                                 what="held-out error") for other in others]}


def table(record):
    """Markdown table: the variants' final held-out error, mean ± sd over seeds, and
    the verdicts."""
    rows = ["| variant | held-out error (%), mean ± sd | per seed |", "|---|---|---|"]
    for name, s in record["summary"]["held_out_error"].items():
        rows.append(f"| {name} | {fmt_spread(s)} | "
                    + ", ".join(f"{v:.2f}" for v in s["values"]) + " |")
    p = record["pretrain"]
    rows.append(f"\npretrained on {len(p['classes'])} classes ({p['train_images']:,} images): "
                f"{fmt_pct(100 * p['test_accuracy'])}% accuracy on their {p['test_images']:,} "
                "test images")
    rows += [f"- {line}" for line in record["summary"]["verdicts"]]
    return "\n".join(rows)


def markdown(record):
    """The results page's section: :func:`table`, with the budget."""
    b = record["budget"]
    return (table(record) + f"\n\nPretraining: {b['pretrain_epochs']} epochs of the fast "
            f"recipe; every other run: {b['finetune_epochs']} epochs, batch {b['batch_size']}, "
            f"seeds {', '.join(map(str, b['seeds']))}; held-out error after the last epoch.")


def plot(record, path=None):
    """Held-out accuracy per epoch: each variant's mean over seeds, with its min-max band."""
    import matplotlib
    if path:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, seeds in record["finetune"].items():
        curves = np.array([r["curve"] for r in seeds])
        epochs = np.arange(1, curves.shape[1] + 1)
        line, = ax.plot(epochs, curves.mean(axis=0), label=f"{name} (n={len(seeds)})")
        ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), alpha=0.2,
                        color=line.get_color())
    ax.axhline(100 / len(record["target_classes"]), color="grey", ls=":", label="chance")
    ax.set(xlabel="epoch", ylabel="held-out accuracy (%)", ylim=(0, 100),
           title=f"{' vs '.join(record['target_classes'])}: "
                 f"{record['target_data']['train_images']:,} training images, "
                 f"{record['target_data']['held_out_images']:,} held out")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
