"""Experiment scales (``smoke``, ``cpu``, ``paper``) and the seeded data subsets they train on.

The library assumes no place for real data: it is passed (``data=``, ``--data``) or named
by the environment variable :data:`DATA_ENV`.
"""
import dataclasses
import os

from gluonres import data as data_module
from gluonres import train as training
from gluonres.data import JPEG_CAVEAT
from gluonres.errors import GluonresError


#: Environment variable naming the real training data, for scales without a default.
DATA_ENV = "GLUONRES_DATA"
#: What real data is, for messages.
DATA_HELP = ("the CIFAR-10 image folder or its archive (cifar10-jpg.tar.gz), or 'cifar10' "
             "(downloads)")


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big an experiment's training runs are.

    Every setting but the name is a keyword. The paper experiments' :class:`Runner`
    reads them all; the backbone comparison only the subsets, length, batch and data.

    Parameters
    ----------
    name : str
    train_images : int or None
        A seeded, class-balanced subset of the training split (``None``: all of it).
    test_images : int or None, default None
        Seeded, class-balanced test images of the final test error (``None``: the whole
        test split).
    curve_test_images : int or None, default None
        Seeded, class-balanced test images evaluated after every epoch for the curves
        (``None``: the whole test split).
    epochs : int or None
        Run length, with the paper's step schedule compressed proportionally (``None``:
        ``iterations``).
    iterations : int or None, default None
        Run length in updates (the paper: 64,000).
    batch_size : int
    analysis_images : int or None, default None
        Test images whose layer responses are measured (``None``: the curve test images).
    train_eval_images : int or None, default None
        Seeded, class-balanced training images on which the trained network's training
        error is measured in inference mode (``None``: the whole training subset).
    quick : dict, default {}
        Training overrides of the scale's *quick* runs (:meth:`Runner.quick`): the
        many-variant comparisons (shortcut options, the 2016 variants, the seed's
        ResNet-18) that a 2-core budget affords only shorter; empty where they are as
        long as the others.
    checkpoints : bool, default False
        Keep run folders (checkpoints, weights) so that long runs resume.
    default_data : str or None
        Data used when none is given (``None``: ``$GLUONRES_DATA``, else it must be given).
    description : str
    """

    name: str
    _: dataclasses.KW_ONLY
    train_images: int | None
    test_images: int | None = None
    curve_test_images: int | None = None
    epochs: int | None
    iterations: int | None = None
    batch_size: int
    analysis_images: int | None = None
    train_eval_images: int | None = None
    quick: dict = dataclasses.field(default_factory=dict)
    checkpoints: bool = False
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
    :data:`SCALES`); a :class:`Scale` is returned as it is. Unknown names raise naming the
    known ones."""
    if isinstance(name, Scale):
        return name
    scales = SCALES if scales is None else scales
    try:
        return scales[name]
    except KeyError:
        raise GluonresError(f"unknown scale {name!r}; use one of {', '.join(scales)}") from None


# ---------------------------------------------------------------------------- data
@dataclasses.dataclass
class ExperimentData:
    """The data of one scale: training subset, curve test subset and final test images.

    Attributes
    ----------
    data : gluonres.data.Data
        ``train`` is the training subset, ``test`` the curve test subset.
    final_test : gluonres.data.ImageArrays
        The test images of the final errors (the whole test split unless the scale
        sets ``test_images``).
    spec : str
        What ``--data`` was.
    seed : int
        Seed of the class-balanced subsets.
    """

    data: data_module.Data
    final_test: data_module.ImageArrays
    spec: str
    seed: int

    def describe(self):
        """JSON-ready description, with the JPEG caveat where the images are JPEG."""
        out = {"spec": self.spec, "name": self.data.name,
               "train_images": len(self.data.train), "curve_test_images": len(self.data.test),
               "final_test_images": len(self.final_test), "classes": self.data.classes,
               "subset": f"seeded (seed {self.seed}), class-balanced"}
        if self.final_test.lossy or self.data.train.lossy:
            out["note"] = JPEG_CAVEAT
        return out


_LOADED = {}


def data_spec(scale, spec):
    """``spec``, else the scale's default, else ``$GLUONRES_DATA``; a scale that needs real
    data and has none says how to pass it."""
    spec = spec or scale.default_data or os.environ.get(DATA_ENV)
    if not spec:
        raise GluonresError(f"scale {scale.name!r} trains on real data: pass --data (data= "
                            f"in Python) or set {DATA_ENV} to {DATA_HELP}")
    return spec


def load_with_test(spec, who, progress=True, size=None):
    """:func:`gluonres.data.load` for data that must have a test split (``who`` needs it)."""
    full = data_module.load(spec, size=size, progress=progress)
    if full.test is None:
        raise GluonresError(f"{spec!r} has no test split; {who} needs train/ and test/ "
                            "(e.g. the CIFAR-10 image folder)")
    return full


def load_data(scale, spec=None, progress=True, train_images=None, seed=0):
    """Load ``spec`` (see :func:`data_spec`) and cut it to the scale's seeded,
    class-balanced subsets.

    Decoded data is kept in memory for the process, so experiments run one after
    another decode it once. ``train_images`` replaces the scale's training subset size;
    ``seed`` draws the subsets.

    Raises
    ------
    GluonresError
        If the scale needs data and none was given, or the data has no test split.
    """
    spec = data_spec(scale, spec)
    size = train_images or scale.train_images
    key = (os.path.abspath(spec) if os.path.exists(spec) else spec, size,
           scale.curve_test_images, scale.test_images, seed)
    if key not in _LOADED:
        full = load_with_test(spec, "the experiments", progress, size=32)
        train, curve, final = (_subset(full.train, size, seed),
                               _subset(full.test, scale.curve_test_images, seed),
                               _subset(full.test, scale.test_images, seed))
        _LOADED[key] = ExperimentData(
            data_module.Data(full.name, train, curve, hflip=full.hflip), final, spec, seed)
    return _LOADED[key]


def _subset(images, count, seed):
    """``count`` seeded, class-balanced ``images``; all of them for ``None``."""
    return images.subset(data_module.balanced_subset(images.labels, count, seed)) \
        if count else images
