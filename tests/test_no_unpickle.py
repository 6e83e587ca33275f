"""No code path unpickles a file a user passes in: an AST audit of the package, and the
CIFAR-10 binary batches (plain bytes) in place of the pickled "python version"."""
import ast
import os

import numpy as np
import pytest

import gluonres
from gluonres import data
from gluonres.errors import DataError


PACKAGE = os.path.dirname(gluonres.__file__)
#: Modules that unpickle (or run code from) what they read.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal", "torch"}
#: Readers of MXNet's own params format, by file: one place each, reviewed.
PARAMS_READERS = {("io.py", "mx.nd.load"), ("runtime.py", "net.collect_params().load")}


def _dotted(node):
    """``a.b.c`` of a call's function ('...()' for a call in the chain)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return "?"


def audit(source, filename):
    """Every unsafe read in ``source``, as ``'file:line: what'`` strings."""
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            problems += [f"{where}: imports {n}" for n in names
                         if n.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            if func.split(".")[-1] in ("read_pickle", "from_pickle", "loads") and \
                    not func.startswith("json."):
                problems.append(f"{where}: calls {func}")
            elif func in ("np.load", "numpy.load"):
                safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                           and k.value.value is False for k in node.keywords)
                if not safe:
                    problems.append(f"{where}: {func} without allow_pickle=False")
            elif func.endswith(("nd.load", "ndarray.load", "collect_params().load",
                                "load_parameters", "load_params")) and \
                    (os.path.basename(filename), func) not in PARAMS_READERS:
                problems.append(f"{where}: {func} outside the reviewed params readers")
    return problems


def test_the_package_never_unpickles():
    problems = []
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    problems += audit(f.read(), os.path.relpath(path, PACKAGE))
    assert problems == []


@pytest.mark.parametrize("source, found", [
    ("import pickle", "imports pickle"),
    ("from joblib import load", "imports joblib"),
    ("import numpy as np\nnp.load(p)", "np.load without allow_pickle=False"),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", "np.load without allow_pickle=False"),
    ("import pandas as pd\npd.read_pickle(p)", "calls pd.read_pickle"),
    ("import mxnet as mx\nmx.nd.load(p)", "mx.nd.load outside the reviewed params readers"),
    ("net.load_parameters(p)", "net.load_parameters outside the reviewed params readers"),
])
def test_the_audit_finds_each_unsafe_read(source, found):
    assert [p.split(": ", 1)[1] for p in audit(source, "x.py")] == [found]


def test_the_audit_accepts_the_safe_forms():
    assert audit("import numpy as np\nnp.load(p, allow_pickle=False)\njson.loads(s)",
                 "x.py") == []
    assert audit("import mxnet as mx\nmx.nd.load(p)", "io.py") == []


# ---------------------------------------------------------------------------- CIFAR-10 binary
def write_batch(path, images, labels):
    """A CIFAR-10 binary batch: per image a label byte, then the R, G and B planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    np.concatenate([labels[:, None].astype(np.uint8), planes], axis=1).tofile(path)


def test_cifar10_binary_batches_decode_exactly(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    parts = []
    for name, n in (("data_batch_1.bin", 5), ("data_batch_2.bin", 3), ("test_batch.bin", 4)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        write_batch(folder / name, images, labels)
        parts.append((images, labels))
    d = data.load(str(folder), progress=False)
    np.testing.assert_array_equal(d.train.images, np.concatenate([parts[0][0], parts[1][0]]))
    np.testing.assert_array_equal(d.train.labels, np.concatenate([parts[0][1], parts[1][1]]))
    np.testing.assert_array_equal(d.test.images, parts[2][0])
    np.testing.assert_array_equal(d.test.labels, parts[2][1])
    assert d.classes == data.CIFAR10_CLASSES and not d.train.lossy


def test_cifar10_binary_class_names_and_damage(tmp_path):
    folder = tmp_path / "batches"
    folder.mkdir()
    images = np.zeros((2, 32, 32, 3), np.uint8)
    write_batch(folder / "data_batch_1.bin", images, np.array([0, 2]))
    (folder / "batches.meta.txt").write_text("a\nb\nc\n\n")
    assert data.load(str(folder), progress=False).classes == ["a", "b", "c"]
    (folder / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="label 2 but only 2 class names; fix batches.meta.txt"):
        data.load(str(folder), progress=False)
    os.remove(folder / "batches.meta.txt")
    with open(folder / "data_batch_1.bin", "r+b") as f:
        f.truncate(3073 + 100)
    with pytest.raises(DataError, match="not a whole number of 3073-byte records.*extract"):
        data.load(str(folder), progress=False)


def test_python_version_batches_are_refused_unread(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x04 not read")  # a pickle's header
    with pytest.raises(DataError, match="pickles that gluonres never loads.*binary version"):
        data.load(str(folder), progress=False)
