"""Shared pytest fixtures: the default model, the shipped one (no torch) or built once per session."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default model version folder (model.onnx + manifest.json), 64 bits, seed 0: a copy of the
    shipped one (tests/test_shipped_model.py checks a rebuild matches it), else built here."""
    from engine.default_model import shipped_default_model

    out = tmp_path_factory.mktemp("models") / "efficientnet-lite0-lsh"
    shipped = shipped_default_model()
    if shipped is not None:
        shutil.copytree(shipped, out)
        return out
    from trainer.default_model import build_default_model  # torch is slow to import: only when asked

    with warnings.catch_warnings():
        # torch 2.14 deprecates the TorchScript ONNX exporter, which we use on purpose because it
        # keeps parameter names (head_weight/head_bias); both notices come from inside export.
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        build_default_model(out, bits=64, seed=0)
    return out
