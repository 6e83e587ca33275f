"""Run an export on another inference engine: ONNX Runtime or OpenVINO, beside mxnet.

``load(folder, engine)`` returns the same :class:`~gluonres.deploy.runtime.Exported` as
:func:`~gluonres.deploy.runtime.load_exported`, with the same preprocessing, classes and
``predict``; only its forward pass runs elsewhere:

* ``mxnet``: the exported symbol and params (what ``gluonres predict`` always ran);
* ``onnxruntime``, ``openvino``: the export's ONNX file (``gluonres export --onnx``), on
  CPU, float32, on the threads mxnet uses (:func:`gluonres.machine.threads`).

Both are optional (``pip install 'gluonres[engines]'``). The ONNX file is untrusted input
like the rest of the folder: it is read once through the runtime's checks (confined to
the folder, its SHA-256 from the manifest, the byte limit) and the engine gets those very
bytes, never the path; before an engine parses it, :func:`check_onnx` refuses operators
that no gluonres export contains, tensors stored in other files, subgraphs, and a graph
that does not take one image of the manifest's size and colour to one logit per class. Like
:mod:`~gluonres.deploy.runtime`, this module imports no model code.
"""
import importlib
import math
import os

import numpy as np

from gluonres._untrusted import limit, over_limit
from gluonres.deploy import runtime
from gluonres.errors import CorruptFileError, GluonresError
from gluonres.machine import threads


#: Every engine, mxnet (the reference) first.
ENGINES = ("mxnet", "onnxruntime", "openvino")
#: What installs the optional engines.
INSTALL = "pip install 'gluonres[engines]'"
#: The ONNX operators of every graph ``gluonres export --onnx`` writes (default domain):
#: all registered families, option-A shortcuts (the zero channels) included;
#: ``tests/deploy/test_engines.py`` checks that the list covers them. A file with any
#: other operator is refused before an engine parses it.
ONNX_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Concat", "ConstantOfShape", "Conv",
    "Equal", "Expand", "Flatten", "Gemm", "GlobalAveragePool", "Identity", "MaxPool", "Mul",
    "Range", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Squeeze", "Tanh"})
#: OpenVINO's compile settings (and mxnet's thread count): float32 (no bf16 where the CPU
#: has it, so outputs stay within 1e-4 of mxnet), one stream for one synchronous request,
#: threads not pinned to cores, as mxnet's and ONNX Runtime's are not (pinned, they
#: cannot move off a core that other work holds: on a machine shared with a training run
#: that was up to 1.4x slower at batch 128, never faster).
OPENVINO_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                   "ENABLE_CPU_PINNING": False}
# compiled OpenVINO models kept per batch size (predict: its batch and the remainder)
_OPENVINO_SHAPES = 4


class EngineUnavailable(GluonresError):
    """An engine that cannot run this export here: not installed, or no ONNX file."""


def version(engine):
    """The installed version of ``engine``'s package, or ``None`` if it is not installed."""
    from importlib import metadata
    try:
        return metadata.version(engine)
    except metadata.PackageNotFoundError:
        return None


def settings(engine):
    """How :func:`load` configures ``engine`` (for records): threads and options."""
    if engine == "onnxruntime":
        return {"threads": threads(), "inter_op_threads": 1, "allow_spinning": 0,
                "provider": "CPUExecutionProvider"}
    if engine == "openvino":
        return {"threads": threads(), **OPENVINO_CONFIG, "device": "CPU",
                "shape": "static per batch size"}
    return {"threads": threads(), "graph": "exported symbol, hybridized (static memory)"}


def _import(engine):
    try:
        return importlib.import_module(engine)
    except ImportError:
        raise EngineUnavailable(f"--engine {engine} needs the {engine} package, which is not "
                                f"installed; {INSTALL}") from None


def load(folder, engine="mxnet", variant="fp32"):
    """Load an export folder to run on ``engine``, after the runtime's checks.

    Parameters
    ----------
    folder : str
        Written by ``gluonres export`` (``--onnx`` for the engines other than mxnet).
    engine : {'mxnet', 'onnxruntime', 'openvino'}, default 'mxnet'
    variant : {'fp32', 'int8'}, default 'fp32'
        ``'int8'`` (the oneDNN graph) runs on mxnet only.

    Returns
    -------
    gluonres.deploy.runtime.Exported
        ``predict`` and ``forward`` run on ``engine``; ``net`` is ``None`` on the others.

    Raises
    ------
    EngineUnavailable
        If the engine's package is not installed, or the export holds no ONNX file.
    GluonresError
        For an unknown engine, or ``int8`` on another engine than mxnet.
    CorruptFileError
        For a manifest, file or graph that fails its checks.
    """
    if engine not in ENGINES:
        raise GluonresError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "mxnet":
        return runtime.load_exported(folder, variant)
    if variant != "fp32":
        raise GluonresError(f"the {variant} graph runs on mxnet only ({engine} runs the "
                            "export's float32 ONNX file); drop --int8 or use --engine mxnet")
    manifest = runtime.read_manifest(folder, verify=False)
    name = manifest["files"].get("onnx")
    if name is None:
        raise EngineUnavailable(f"{folder!r} holds no ONNX file, which --engine {engine} "
                                "runs; re-export with --onnx")
    module = _import(engine)
    data = onnx_bytes(folder, manifest)
    shown = os.path.join(folder, name)
    size = manifest["image"]["size"]
    try:
        run = (_OnnxRuntime(data) if engine == "onnxruntime" else
               _OpenVINO(module, data, [runtime.image_channels(manifest), *size]))
    except Exception as err:  # the engine's own error types; their text is not repeated
        raise CorruptFileError(f"{engine} cannot load {shown!r} ({type(err).__name__}); "
                               "re-export the model with --onnx") from None
    classes = len(manifest["classes"])
    if run.output_shape[1:] != [classes]:  # as the engine inferred it, before any run
        raise CorruptFileError(f"{shown!r} outputs shape {run.output_shape}, but "
                               f"{runtime.MANIFEST} lists {classes} classes (one logit "
                               "each); re-export the model with --onnx")
    return runtime.Exported(folder, manifest, "fp32", None, engine=engine, run=run)


def onnx_bytes(folder, manifest):
    """The export's ONNX file, checked: every other listed file against its SHA-256, the
    ONNX bytes against theirs (read once, then used), then :func:`check_onnx`.

    Raises
    ------
    CorruptFileError
        For a file that fails its checks.
    """
    name = manifest["files"]["onnx"]
    runtime.verify_files(folder, manifest, skip=(name,))
    data = runtime._member_bytes(folder, manifest, name)
    check_onnx(data, os.path.join(folder, name), manifest["image"]["size"],
               runtime.image_channels(manifest))
    return data


def _numpy(x):
    """A batch as contiguous float32 numpy (an NDArray is copied out once)."""
    if not isinstance(x, np.ndarray):
        x = x.asnumpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def check_onnx(data, shown, image_size, channels=3):
    """Check an ONNX model's bytes before an engine parses them.

    Parameters
    ----------
    data : bytes
    shown : str
        The file, for messages.
    image_size : (int, int)
        The manifest's ``[height, width]``.
    channels : int, default 3
        The manifest's input channels (:func:`~gluonres.deploy.runtime.image_channels`).

    Raises
    ------
    EngineUnavailable
        If the ``onnx`` package (which reads the file for the checks) is not installed.
    CorruptFileError
        For a file that is not an ONNX model, operators outside :data:`ONNX_OPS` (or in
        another domain), a tensor stored outside the file, a subgraph, a graph that
        does not take ``data`` ``(N, channels, H, W)`` to one output, or one above
        ``graph_elements`` of :data:`gluonres._untrusted.LIMITS`.

    Notes
    -----
    The output's shape is checked by :func:`load` once the engine has loaded the graph,
    before it runs: ``onnx``'s shape inference cannot follow the option-A shortcut's
    zero channels, whose shape is computed from the input's.
    """
    try:
        import onnx
    except ImportError:
        raise EngineUnavailable(f"checking {shown!r} needs the onnx package, which is not "
                                f"installed; {INSTALL}") from None

    def bad(problem):
        return CorruptFileError(f"{shown!r} {problem}; re-export the model with --onnx")

    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf's DecodeError and kin; never quoted
        raise bad("is not a readable ONNX model") from None
    graph = model.graph
    ops = {(n.domain, n.op_type) for n in graph.node}
    unknown = sorted(runtime._short(f"{d}.{op}" if d else op, 30) for d, op in ops
                     if d not in ("", "ai.onnx") or op not in ONNX_OPS)
    if unknown:
        raise bad(f"contains operators that no gluonres export contains ({', '.join(unknown[:5])})")
    if model.functions or graph.sparse_initializer:
        raise bad("defines functions or sparse tensors, which no gluonres export holds")
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.ByteSize() or len(attr.graphs):  # If / Loop / Scan bodies
                raise bad("contains subgraphs, which no gluonres export holds")
            tensors += [attr.t] + list(attr.tensors)
    # a tensor in another file would be read from a path this check never saw
    if any(t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in tensors):
        raise bad("stores tensors in other files (external data); an export reads only "
                  "its own checked files")
    height, width = image_size
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]

    def dims(value):
        t = value.type.tensor_type
        return ([d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
                if t.HasField("shape") else None), t.elem_type

    in_dims = [dims(i) for i in inputs]
    if [i.name for i in inputs] != ["data"] or in_dims[0][1] != onnx.TensorProto.FLOAT or \
            in_dims[0][0] is None or in_dims[0][0][1:] != [channels, height, width]:
        raise bad(f"does not take a {width}x{height} {runtime.color_name(channels)} image as "
                  f"float32 `data` (N, {channels}, {height}, {width}), as the manifest says")
    if len(graph.output) != 1:
        raise bad(f"has {len(graph.output)} outputs, not one (the logits)")
    # as for the mxnet graph: parameters and node outputs for one image, where the
    # shapes follow from the graph (the option-A zero channels' depend on the input)
    one = onnx.ModelProto()
    one.CopyFrom(model)
    one.graph.input[[i.name for i in one.graph.input].index("data")] \
        .type.tensor_type.shape.dim[0].dim_value = 1
    try:
        inferred = onnx.shape_inference.infer_shapes(one, data_prop=True).graph.value_info
    except Exception:  # onnx's inference errors; never quoted
        raise bad("has shapes that do not fit together") from None
    elements = sum(math.prod(t.dims) for t in graph.initializer)
    for value in inferred:
        shape = dims(value)[0]
        if shape and None not in shape:
            elements += math.prod(shape)
    if elements > limit("graph_elements"):
        raise CorruptFileError(over_limit(
            "graph_elements", f"{shown!r} needs too much memory: the element count of its "
            "parameters and node outputs for one image", elements))


class _OnnxRuntime:
    """ONNX Runtime's forward pass: numpy in, numpy logits out."""

    def __init__(self, data):
        self.session = runtime.onnx_session(data)
        shape = self.session.get_outputs()[0].shape  # symbolic dimensions are strings
        self.output_shape = [d if isinstance(d, int) else None for d in shape]

    def __call__(self, x):
        return self.session.run(None, {"data": _numpy(x)})[0]


class _OpenVINO:
    """OpenVINO's forward pass, compiled for each batch size it meets (a static shape is
    what OpenVINO's CPU plugin runs fastest; the export's batch dimension is dynamic)."""

    def __init__(self, ov, data, shape):
        self.core = ov.Core()
        self.model = self.core.read_model(data)  # the checked bytes: no path, no re-read
        self.shape = list(shape)  # of one image: [C, H, W]
        self.config = {**OPENVINO_CONFIG, "INFERENCE_NUM_THREADS": threads()}
        self.requests = {}
        # an unusable file fails here, at load time
        shape = self._request(1).model_outputs[0].get_partial_shape()
        self.output_shape = [None] + [d.get_length() if d.is_static else None
                                      for d in shape][1:]

    def _request(self, batch):
        request = self.requests.get(batch)
        if request is None:
            if len(self.requests) >= _OPENVINO_SHAPES:
                self.requests.pop(next(iter(self.requests)))
            self.model.reshape([batch, *self.shape])
            compiled = self.core.compile_model(self.model, "CPU", self.config)
            request = self.requests[batch] = compiled.create_infer_request()
        return request

    def __call__(self, x):
        x = _numpy(x)
        request = self._request(x.shape[0])
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()
