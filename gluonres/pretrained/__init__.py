"""Weights shipped with the package, each with its model card.

For every model with shipped weights this folder holds ``MODEL.params`` (a gluonres
weights file: arrays plus metadata with the preprocessing and class names) and
``MODEL.json``, its model card: what the weights were trained on (with the data's
caveats), the recipe and the command, the machine and wall time, the test accuracy, the
SHA-256 of the ``.params`` file and the preprocessing the weights expect. The card
travels with the network (``net.pretrained_card``), like torchvision's ``Weights``
metadata, so that evaluating or exporting the weights needs no normalisation flags.

A leaf: it reads JSON and hashes files, and imports neither mxnet nor model code, so the
weights-file reader (:mod:`gluonres.io`) can resolve ``--weights pretrained`` through it.
"""
import fnmatch
import json
import os

from gluonres._files import sha256_of
from gluonres.errors import CorruptFileError, GluonresError


#: Folder of the shipped weights and cards.
FOLDER = os.path.dirname(os.path.abspath(__file__))
#: What ``--weights`` takes to mean a model's shipped weights.
NAME = "pretrained"
#: Fields every card has.
CARD_FIELDS = ("model", "file", "sha256", "classes", "input_size", "data", "recipe",
               "command", "test_accuracy", "machine", "preprocess")


def names(pattern="*"):
    """Models with shipped weights.

    Parameters
    ----------
    pattern : str, default '*'
        Shell-style pattern of the model names.

    Returns
    -------
    list of str
        Sorted.
    """
    found = (f[:-len(".json")] for f in os.listdir(FOLDER) if f.endswith(".json"))
    return sorted(n for n in found if fnmatch.fnmatchcase(n, pattern))


def card(model):
    """The model card of ``model``'s shipped weights.

    Returns
    -------
    dict
        The fields of :data:`CARD_FIELDS` and more (``wall_min``, ``record``, ``notes``).

    Raises
    ------
    GluonresError
        If no weights are shipped for ``model`` (the message lists those that are).
    """
    path = os.path.join(FOLDER, f"{model}.json")
    if not os.path.isfile(path):
        shipped = ", ".join(names()) or "none"
        raise GluonresError(f"no pretrained weights are shipped for {model!r} (shipped: "
                            f"{shipped}); train it with `gluonres train {model} --data ...` "
                            "and use the run's RUN/weights.params instead")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def weights_path(model, verify=True):
    """The ``.params`` file of ``model``'s shipped weights, checked against its card.

    Parameters
    ----------
    model : str
    verify : bool, default True
        Check the file's SHA-256 against the card's.

    Raises
    ------
    GluonresError
        If none are shipped; ``CorruptFileError`` if the file is missing or altered.
    """
    meta = card(model)
    path = os.path.join(FOLDER, meta["file"])
    if os.path.dirname(os.path.normpath(meta["file"])) or not os.path.isfile(path):
        raise CorruptFileError(f"the shipped weights {meta['file']!r} of {model} are missing; "
                               "reinstall gluonres")
    if verify and sha256_of(path) != meta["sha256"]:
        raise CorruptFileError(f"{path!r} does not match the SHA-256 of its model card "
                               "(altered or truncated); reinstall gluonres")
    return path


def resolve(weights, model):
    """``weights`` as a path.

    Parameters
    ----------
    weights : str or os.PathLike
        A path, or :data:`NAME` (``'pretrained'``): ``model``'s shipped file.
    model : str

    Returns
    -------
    str or os.PathLike
        ``weights`` unchanged, or the checked path of the shipped file
        (:func:`weights_path`).
    """
    return weights_path(model) if isinstance(weights, str) and weights == NAME else weights
