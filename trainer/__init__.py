"""Lookalike's trainer: backbones, hash heads, the default model and ONNX export (torch side)."""
