"""The package's import rules (docs/architecture.md), read from the source with ``ast``.

Every import statement counts, also one inside a function: a deferred import still ties
the layers together. Each rule is also run on a small bad example, to show that it
catches what it is there to catch.
"""
import ast

import pytest

from helpers import REPO


PACKAGE = REPO / "gluonres"

# what each layer may import from the package, besides itself and the base modules
BASE = ("gluonres.errors", "gluonres._env", "gluonres._files", "gluonres._lazy",
        "gluonres._untrusted", "gluonres.machine")
RULES = {
    # the models import nothing above them
    "gluonres.models": ("gluonres.blocks",),
    "gluonres.blocks": (),
    # training does not import deploy, measure, experiments or the command line
    "gluonres.train": ("gluonres.models", "gluonres.blocks", "gluonres.data", "gluonres.io",
                       "gluonres.analysis", "gluonres.pretrained", "gluonres.importers"),
    "gluonres.data": (),
    "gluonres.analysis": ("gluonres.models", "gluonres.blocks", "gluonres.data"),
}
# running an export loads none of this (gluonres predict on a machine without model code)
RUNTIME = "gluonres.deploy.runtime"
RUNTIME_FORBIDDEN = ("gluonres.models", "gluonres.blocks", "gluonres.train",
                     "gluonres.deploy.exporter", "gluonres.deploy.quantize",
                     "gluonres.analysis", "gluonres.measure", "gluonres.experiments",
                     "gluonres.cli")


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source, name, is_package=False, known=None):
    """The package modules that ``source`` (module ``name``) imports, anywhere in it.

    ``from gluonres.x import y`` counts as importing ``gluonres.x.y`` when that is a
    module (in ``known``), else ``gluonres.x``.
    """
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gluonres"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            if not base.startswith("gluonres"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if known is not None and sub in known else base)
    found.discard(name)
    return found


def package_graph():
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p.read_text(), module_name(p), p.name == "__init__.py",
                                       known) for p in paths}


def layer_of(module):
    return next((layer for layer in RULES if module == layer or
                 module.startswith(layer + ".")), None)


def within(module, prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_violations(graph):
    """``module -> imported`` pairs that break :data:`RULES`."""
    bad = []
    for module, imported in graph.items():
        layer = layer_of(module)
        if layer is None:
            continue
        allowed = (layer,) + BASE + RULES[layer]
        bad += [(module, i) for i in sorted(imported) if not within(i, allowed)]
    return bad


def cli_violations(graph):
    """Library modules that import the command line (``python -m gluonres`` may)."""
    shell = ("gluonres.cli", "gluonres.__main__")
    return [(m, i) for m, imported in graph.items() if not within(m, shell)
            for i in sorted(imported) if within(i, ("gluonres.cli",))]


def loaded_by(graph, module):
    """Every package module that importing ``module`` loads: its imports, transitively,
    and the ``__init__`` of every package on the way."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        parents = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]
        for n in [m] + parents:
            if n not in seen and n in graph:
                seen.add(n)
                todo += sorted(graph[n])
    return seen


def runtime_violations(graph):
    return sorted(m for m in loaded_by(graph, RUNTIME) if within(m, RUNTIME_FORBIDDEN))


def cycles(graph):
    """Import cycles, one per strongly connected component of two or more modules."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return package_graph()


def test_the_graph_sees_every_module_and_its_imports(graph):
    assert len(graph) > 50
    assert "gluonres.models.registry" in graph["gluonres.models.cifar"]
    assert "gluonres.train.step" in graph["gluonres.train.loop"]


def test_models_import_nothing_above_them(graph):
    assert layer_violations(graph) == []
    bad = dict(graph, **{"gluonres.models.cifar": imports_of(
        "from gluonres.train import fit\n", "gluonres.models.cifar")})
    assert layer_violations(bad) == [("gluonres.models.cifar", "gluonres.train")]


def test_train_imports_neither_deploy_nor_experiments(graph):
    bad_source = ("def export_at_the_end(net):\n"
                  "    from gluonres.deploy import exporter\n"
                  "    from ..experiments import records\n")
    bad = dict(graph, **{"gluonres.train.loop": imports_of(bad_source, "gluonres.train.loop",
                                                           known=set(graph))})
    assert layer_violations(bad) == [("gluonres.train.loop", "gluonres.deploy.exporter"),
                                     ("gluonres.train.loop", "gluonres.experiments.records")]


def test_nothing_in_the_library_imports_the_cli(graph):
    assert cli_violations(graph) == []
    bad = dict(graph, **{"gluonres.measure.bench": imports_of(
        "from gluonres.cli import main\n", "gluonres.measure.bench")})
    assert cli_violations(bad) == [("gluonres.measure.bench", "gluonres.cli")]


def test_the_runtime_loads_no_model_training_or_export_code(graph):
    assert runtime_violations(graph) == []
    # a harmless-looking import in a package the runtime needs drags the models in
    bad = dict(graph, **{"gluonres.data.preprocess": graph["gluonres.data.preprocess"] | {
        "gluonres.models.registry"}})
    assert "gluonres.models.registry" in runtime_violations(bad)


def test_no_import_cycles(graph):
    assert cycles(graph) == []
    bad = dict(graph, **{"gluonres.data.splits": graph["gluonres.data.splits"] | {
        "gluonres.data.loading"}})
    assert ["gluonres.data.loading", "gluonres.data.splits"] in cycles(bad)
