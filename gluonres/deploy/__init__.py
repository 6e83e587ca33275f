"""Deployment: ``exporter`` writes a self-describing export (symbol, params, manifest,
optional ONNX and INT8), ``quantize`` makes the oneDNN INT8 graph, ``runtime`` runs an
export from its files alone, ``engines`` runs it on mxnet, ONNX Runtime or OpenVINO.

Names are imported on first use, so that ``gluonres.deploy.runtime`` and
``gluonres.deploy.engines`` (what ``gluonres predict`` runs) never load the exporter, the
models or the training code.
"""
from gluonres._lazy import lazy_exports


__getattr__ = lazy_exports(__name__, {
    name: "exporter" for name in ("image_spec", "default_classes", "export",
                                  "export_onnx", "ExportCallback")})
