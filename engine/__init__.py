"""Lookalike's engine: decode, encode, store, search and index photos (no Qt, no torch)."""

import os

__version__ = "0.1.0"

# ONNX Runtime's PyPI builds start Microsoft's telemetry when imported: a device id and an event
# queue under ~/.cache/Microsoft/DeveloperTools and upload attempts. An offline photo app must
# not; the switch only works if set before onnxruntime is first imported, hence here.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
