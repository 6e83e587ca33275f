"""Ship a recorded run's weights with the package: ``gluonres/pretrained/MODEL.params``
and its model card ``MODEL.json``, made from the record in ``results/`` alone.

Usage: ``python scripts/ship_weights.py results/resnet20_cifar-cifar10jpg.json``
"""
import argparse
import json
import os
import shlex
import shutil
import sys

from gluonres import io, pretrained
from gluonres._files import sha256_of, write_text
from gluonres.data import JPEG_CAVEAT


def card_of(record, weights, record_path):
    """The model card of ``weights``, from the run's results record."""
    _, meta = io.read_weights(weights)
    pre = meta["preprocess"]
    normalisation = ("per-pixel mean image of the training set subtracted (2015 paper, "
                     "Sec. 4.2)" if "mean_image" in pre else
                     f"per-channel mean {pre.get('mean')} and std {pre.get('std')}")
    data = record["data"]
    return {
        "model": record["model"],
        "file": f"{record['model']}.params",
        "sha256": sha256_of(weights),
        "classes": data["classes"],
        "input_size": data["image_shape"][0],
        "data": {"name": "CIFAR-10, the shared JPEG copy (cifar10-jpg.tar.gz)",
                 "splits": data["splits"], "caveat": JPEG_CAVEAT},
        "recipe": _recipe_name(record),
        "config": record["config"],
        "command": record["command"],
        "test_accuracy": record["test_accuracy"],
        "test_images": data["splits"]["test"],
        "selected_epoch": record["selected_epoch"],
        "selection": record["selection"],
        "machine": {k: record["machine"][k] for k in ("cpu", "isa", "cores")
                    if k in record["machine"]},
        "wall_min": record["wall_min"],
        # a run stopped and resumed (--resume) sums its segments' wall times
        "segments": 1 + len(record.get("resumed", [])),
        "updates": record["total_iterations"],
        "train_img_s": round(record["train_img_s"], 1),
        "trained": record["finished"][:10],
        "record": os.path.relpath(record_path, os.path.dirname(os.path.dirname(
            os.path.abspath(record_path)))),
        "preprocess": {"color": "RGB", "scale": "1/255", "normalisation": normalisation,
                       "resize": None, "note": "the exact arrays are in the weights file's "
                       "metadata; evaluate, export and predict read them from there"},
    }


def _recipe_name(record):
    """The named recipe and the command's overrides of it, e.g. ``paper, --epochs 45``."""
    words = shlex.split(record["command"])[3:]  # after `gluonres train MODEL`
    name, overrides, skip = "paper", [], False
    for i, word in enumerate(words):
        if skip:
            skip = False
        elif word == "--recipe":
            name, skip = words[i + 1], True
        elif word in ("--data", "--out"):
            skip = True
        elif word not in ("--json", "--no-progress"):
            overrides.append(word)
    return name + (f", {' '.join(overrides)}" if overrides else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("record", help="results/NAME.json of a finished training run")
    args = p.parse_args(argv)
    with open(args.record) as f:
        record = json.load(f)
    rel = os.path.normpath(record["files"]["weights"])  # relative to the record, inside
    if os.path.isabs(rel) or rel.startswith(".."):
        raise SystemExit(f"{args.record}: its weights path {rel!r} leaves the results folder")
    weights = os.path.join(os.path.dirname(args.record), rel)
    card = card_of(record, weights, args.record)
    target = os.path.join(pretrained.FOLDER, card["file"])
    shutil.copyfile(weights, target + ".tmp")
    os.replace(target + ".tmp", target)
    write_text(os.path.join(pretrained.FOLDER, f"{card['model']}.json"),
               json.dumps(card, indent=1) + "\n")
    print(f"shipped {record['model']}: {100 * card['test_accuracy']:.2f}% -> {target}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
