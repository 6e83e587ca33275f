"""Measurements: ``timing`` (the one interleaved timer), ``bench`` (every way to run a
model, side by side), ``peers`` (GluonCV, PyTorch, OpenVINO), ``memory`` (peak memory of a
training step), ``int8`` (FP32 against INT8), ``accuracy`` (a weights file on a test set),
``records`` (a run folder into ``results/``)."""
