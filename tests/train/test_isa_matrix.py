"""Every family trains and predicts on every oneDNN ISA level this CPU offers.

oneDNN picks its kernels (and with them its memory layouts) by the CPU: a graph verified on
an AVX2 machine crashed on AVX-512 (16-channel blocked layouts, a reference pooling kernel
and a fused BatchNorm backward that cannot be created for the layout it produced). So for
one network of every family the worker (tests/isa_worker.py) takes a training pass of the
fused graph that ``gluonres train`` runs and of the unfused static graph, and a pass of the
fused inference graph, in a fresh process per ISA level: ``DNNL_MAX_CPU_ISA=AVX2``,
``AVX512_CORE`` and the CPU's own. The variable can only lower the level, so a level this
CPU lacks (it reports the same kernels as a lower one) is skipped, saying so.
"""
import json
import os
import signal
import subprocess
import sys

import pytest


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

LEVELS = ("AVX2", "AVX512_CORE", "native")

# (id, model, kwargs, input size): one network of each family that trains
CASES = [
    ("plain", "plain20_cifar", {}, 32),
    ("v1_A", "resnet20_cifar", {}, 32),
    ("v1_B", "resnet20_cifar", {"shortcut": "B"}, 32),
    ("v1_C", "resnet20_cifar", {"shortcut": "C"}, 32),
    ("v1_bottleneck", "cifar_resnet", {"depth": 29, "bottleneck": True}, 32),
    ("v2_basic", "resnet20_cifar_v2", {}, 32),
    ("v2_bottleneck", "cifar_resnet", {"depth": 29, "bottleneck": True, "preact": True}, 32),
    *[(f"arrangement_{a}", "resnet20_cifar", {"arrangement": a}, 32)
      for a in ("bn_after_add", "relu_before_add", "relu_preact")],
    *[(f"shortcut_op_{op}", "resnet20_cifar", {"shortcut_op": op}, 32)
      for op in ("scale", "exclusive_gate", "shortcut_gate", "dropout")],
    ("lenet5", "lenet5", {}, 32),
    ("alexnet", "alexnet", {"classes": 10, "input_size": 64}, 64),
    ("vgg16", "vgg16", {"classes": 10, "input_size": 32}, 32),
    ("inception_v3", "inception_v3", {"classes": 10, "input_size": 75}, 75),
    ("densenet121", "densenet121", {"classes": 10, "input_size": 32}, 32),
    ("efficientnet_b0", "efficientnet_b0", {"classes": 10, "input_size": 32}, 32),
    ("imagenet_plain18", "plain18", {"classes": 10}, 64),
    ("imagenet_v1_basic", "resnet18", {"classes": 10}, 64),
    ("imagenet_v1_bottleneck", "resnet50", {"classes": 10}, 64),
    ("imagenet_v2_basic", "resnet18_v2", {"classes": 10}, 64),
    ("imagenet_v2_bottleneck", "resnet50_v2", {"classes": 10}, 64),
]

# Largest difference, relative to the reference tensor's largest magnitude. Float32
# kernels reorder sums (and inference folds BatchNorm into the weights), which moves the
# last digits; a wrong graph (a bad layout, a lost gradient) moves the leading ones. A
# gradient is compared with the float64 truth, and may be as far from it as GRAD_SLACK
# times the imperative float32 pass is: backpropagating through a stack of BatchNorms of a
# random network amplifies float32 rounding (median 0.2-1%, up to ~20% for some
# parameters, the same without oneDNN), and two float32 graphs that sum in different
# orders land at different points of that spread.
OUTPUT_TOL = 1e-3
GRAD_TOL = 2e-3
GRAD_SLACK = 10

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def _env(level):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DNNL_MAX_CPU_ISA", None)
    if level != "native":
        env["DNNL_MAX_CPU_ISA"] = level
    return env


def _isa_name(level):
    """The kernels oneDNN reports it runs at ``level`` (its verbose 'isa:' line)."""
    probe = ("import mxnet as mx; mx.nd.Convolution(mx.nd.ones((1, 3, 8, 8)), "
             "mx.nd.ones((8, 3, 3, 3)), kernel=(3, 3), num_filter=8, "
             "no_bias=True).wait_to_read()")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**_env(level), "DNNL_VERBOSE": "1"}, timeout=120)
    for line in proc.stdout.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    raise AssertionError(f"oneDNN reported no ISA at level {level}: {proc.stdout[-500:]}"
                         f"{proc.stderr[-500:]}")


@pytest.fixture(scope="module")
def isa_names():
    return {level: _isa_name(level) for level in LEVELS}


_RESULTS = {}


def _results(level):
    """Every case at ``level``, in fresh processes (once per test session).

    A process that dies (a kernel's SIGFPE, say) is charged to the case it was running,
    and the cases after it run in a new process, so one crash hides no other result.
    """
    if level not in _RESULTS:
        todo = [{"id": i, "model": m, "kwargs": k, "size": s} for i, m, k, s in CASES]
        lines = {}
        while todo:
            proc = subprocess.run([sys.executable, os.path.join(HERE, "isa_worker.py"),
                                   json.dumps(todo)], capture_output=True, text=True,
                                  env=_env(level), timeout=1800)
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    record = json.loads(line)
                    lines[record["case"]] = record
            todo = [c for c in todo if c["id"] not in lines]
            if todo:
                code = proc.returncode
                how = (f"killed by {signal.Signals(-code).name}" if code < 0
                       else f"exit code {code}")
                tail = proc.stderr.strip().splitlines()[-3:]
                lines[todo[0]["id"]] = {"case": todo[0]["id"],
                                        "error": f"the process died ({how}) {tail}"}
                todo = todo[1:]
        _RESULTS[level] = lines
    return _RESULTS[level]


@pytest.mark.parametrize("case", [c[0] for c in CASES])
@pytest.mark.parametrize("level", LEVELS)
def test_fused_graphs_train_and_predict(level, case, isa_names):
    lower = [lv for lv in LEVELS[:LEVELS.index(level)] if isa_names[lv] == isa_names[level]]
    if lower:
        pytest.skip(f"DNNL_MAX_CPU_ISA can only lower the level: this CPU runs the same "
                    f"kernels at {level} as at {lower[0]} ({isa_names[level]})")
    r = _results(level)[case]
    where = f"{case} at {level} ({isa_names[level]})"
    assert "error" not in r, f"{where}: {r.get('error')}"
    for graph in ("fused", "static"):
        assert isinstance(r[f"{graph}_loss"], float), f"{where}: {graph} loss {r[f'{graph}_loss']}"
        assert abs(r[f"{graph}_loss"] - r["imperative_loss"]) <= 1e-3 * abs(r["imperative_loss"])
        assert r[f"{graph}_out"] < OUTPUT_TOL, f"{where}: {graph} outputs differ {r}"
        for param, err in r[f"{graph}_grad"].items():
            allowed = max(GRAD_TOL, GRAD_SLACK * r["imperative_grad"][param])
            assert err <= allowed, (f"{where}: the {graph} graph's gradient of {param} is "
                                    f"{err:.2e} from the {r['reference']} reference (allowed "
                                    f"{allowed:.2e}, imperative float32: "
                                    f"{r['imperative_grad'][param]:.2e})")
    # the reference itself is sound: imperative float32 is near it for most parameters
    assert sorted(r["imperative_grad"].values())[len(r["imperative_grad"]) // 2] < 0.05, where
    assert r["inference_out"] < OUTPUT_TOL, f"{where}: fused inference differs {r}"
