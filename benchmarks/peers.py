"""Optional comparators for ``gluonres bench``: OpenVINO and PyTorch, in their own env.

Run by the benchmark with the peer interpreter (``make peers`` builds .venv-peers); it
reads one JSON request per line on standard input and answers one JSON line:

* ``{"cmd": "info"}`` -> versions;
* ``{"cmd": "setup", "name": "openvino_fwd" | "torch_fwd" | "torch_train", ...}`` builds
  the variant (``model``, ``batch``, ``threads``, ``onnx`` path, ``shape``);
* ``{"cmd": "time", "name": ..., "iters": n}`` -> ``{"seconds": s, "cpu": [c0, c1],
  "wall": [w0, w1]}`` for ``n`` calls: the process's CPU time and the monotonic clock at
  the sample's start and end, so the benchmark can tell how much CPU this process used
  while it sat idle between samples.

Errors come back as ``{"error": message}`` so the benchmark can skip that variant and
keep the others.
"""
import json
import os
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# gluonres's trainable-parameter counts of the option-A CIFAR ResNets (tests/test_models.py)
GLUONRES_PARAMS = {"resnet20_cifar": 269_722, "resnet32_cifar": 464_154,
                   "resnet44_cifar": 658_586, "resnet56_cifar": 853_018,
                   "resnet110_cifar": 1_727_962, "resnet1202_cifar": 19_421_274}

variants = {}


def info():
    # the malloc settings the benchmark started this process with (glibc ignores a bad
    # tunable silently; the record shows what was passed)
    out = {"glibc_tunables": os.environ.get("GLIBC_TUNABLES")}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = None
    try:
        import openvino
        out["openvino"] = openvino.__version__
    except ImportError:
        out["openvino"] = None
    return out


def setup_openvino(req):
    import numpy as np
    import openvino as ov
    core = ov.Core()
    model = core.read_model(req["onnx"])
    model.reshape(req["shape"])  # the exported batch dimension is dynamic; fix it
    compiled = core.compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": req["threads"],
        "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    x = np.random.uniform(-1, 1, req["shape"]).astype("float32")
    return lambda: request.infer({0: x}), "FP32, PERFORMANCE_HINT=LATENCY"


def _torch_model(req):
    import torch
    from torch_resnet import CifarResNet, trainable_params
    name = req["model"]
    if name not in GLUONRES_PARAMS:
        raise ValueError(f"no PyTorch counterpart of {name} (option-A CIFAR ResNets only)")
    torch.set_num_threads(req["threads"])
    torch.manual_seed(0)
    model = CifarResNet(int(name[len("resnet"):-len("_cifar")]))
    count = trainable_params(model)
    if count != GLUONRES_PARAMS[name]:
        raise ValueError(f"PyTorch {name} has {count} parameters, gluonres "
                         f"{GLUONRES_PARAMS[name]}: not the same architecture")
    x = torch.empty(req["shape"]).uniform_(-1, 1)
    return torch, model, x, f"same architecture: {count} trainable parameters"


def setup_torch_fwd(req):
    torch, model, x, note = _torch_model(req)
    model.eval()

    def run():
        with torch.no_grad():
            model(x)
    return run, note + "; eager, no_grad"


def setup_torch_train(req):
    torch, model, x, note = _torch_model(req)
    model.train()
    y = torch.arange(x.shape[0]) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return run, note + "; eager"


SETUP = {"openvino_fwd": setup_openvino, "torch_fwd": setup_torch_fwd,
         "torch_train": setup_torch_train}


def handle(req):
    if req["cmd"] == "info":
        return info()
    if req["cmd"] == "setup":
        run, note = SETUP[req["name"]](req)
        variants[req["name"]] = run
        return {"ok": True, "note": note}
    if req["cmd"] == "time":
        run = variants[req["name"]]
        cpu0, wall0 = time.process_time(), time.monotonic()
        start = time.perf_counter()
        for _ in range(req["iters"]):
            run()
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "cpu": [cpu0, time.process_time()],
                "wall": [wall0, time.monotonic()]}
    raise ValueError(f"unknown command {req['cmd']!r}")


def main():
    for line in sys.stdin:
        try:
            reply = handle(json.loads(line))
        except ImportError as err:
            reply = {"error": f"not installed in the peer environment ({err})"}
        except Exception as err:  # reported to the benchmark, which skips the variant
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
