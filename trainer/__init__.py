"""Lookalike's trainer: backbones, hash heads, the default model and ONNX export (torch side)."""

import engine  # noqa: F401  (before onnxruntime, which the export's parity check imports: no telemetry)
