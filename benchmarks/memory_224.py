"""The recorded peak-memory table at 224 px (docs/performance.md, "Peak memory at 224 px").

    .venv/bin/python benchmarks/memory_224.py [FOLDER]

Measures training and evaluation peak RSS of resnet50 and efficientnet_b0, each in a
fresh process (:func:`gluonres.measure.memory.peak_memory`), then runs `gluonres train
efficientnet_b0` and `gluonres evaluate` end to end under ``/usr/bin/time -v`` on a small
folder of random 224x224 images (made in FOLDER, default a temporary one: 2 classes of 32
training and 16 test images). Writes results/memory-224.json. Memory does not depend on
what else the machine runs; the seconds in the record do.
"""
import os
import shlex
import sys
import tempfile

import cv2
import numpy as np

from gluonres.measure.memory import write_peak_memory


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLUONRES = os.path.join(os.path.dirname(sys.executable), "gluonres")


def random_folder(root, per_split=(("train", 32), ("test", 16)), size=224, seed=0):
    """Random RGB images in ``root/split/class/i.png``, two classes."""
    rng = np.random.default_rng(seed)
    for split, count in per_split:
        for cls in ("a", "b"):
            folder = os.path.join(root, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                cv2.imwrite(os.path.join(folder, f"{i}.png"), image)
    return root


if __name__ == "__main__":
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="memory224-")
    folder = random_folder(os.path.join(work, "folder224"))
    run = os.path.join(work, "run-b32")
    end_to_end = [
        [GLUONRES, "train", "efficientnet_b0", "--data", folder, "--epochs", "1",
         "--batch-size", "32", "--out", run, "--no-progress"],
        [GLUONRES, "evaluate", "efficientnet_b0", "--weights",
         os.path.join(run, "weights.params"), "--data", folder]]
    write_peak_memory(os.path.join(REPO, "results", "memory-224.json"),
                      command=shlex.join([os.path.relpath(sys.executable, REPO),
                                          "benchmarks/memory_224.py", *sys.argv[1:]]),
                      end_to_end=end_to_end)
