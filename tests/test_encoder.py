"""ONNX Runtime sessions: GPU providers when present, a clean CPU fallback when not."""

import logging

import numpy as np
import onnxruntime as ort
import pytest

from engine import encoder as encoder_module
from engine.encoder import CPU_PROVIDER, Encoder, choose_providers


def test_auto_without_a_driver_chooses_the_cpu_and_says_why(monkeypatch):
    monkeypatch.setattr(encoder_module, "_cuda_driver_present", lambda: False)
    providers, why = choose_providers("auto")
    assert providers == [CPU_PROVIDER]
    assert why in ("no NVIDIA driver found", "this ONNX Runtime build has no GPU providers")


def test_auto_with_a_driver_prefers_tensorrt_then_cuda(monkeypatch):
    monkeypatch.setattr(encoder_module, "_cuda_driver_present", lambda: True)
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU_PROVIDER])
    assert choose_providers("auto")[0] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU_PROVIDER]
    assert choose_providers("cuda")[0] == ["CUDAExecutionProvider", CPU_PROVIDER]
    assert choose_providers("cpu")[0] == [CPU_PROVIDER]
    with pytest.raises(ValueError):
        choose_providers("quantum")


def test_a_gpu_provider_that_fails_to_start_falls_back_to_the_cpu(monkeypatch, default_model_dir, caplog):
    # On this machine the CUDA provider library is present but no GPU or CUDA runtime is:
    # ONNX Runtime must drop to the CPU, and we must report the CPU, not what we asked for.
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this ONNX Runtime build has no CUDA provider to fail")
    monkeypatch.setattr(encoder_module, "_cuda_driver_present", lambda: True)
    with caplog.at_level(logging.INFO, logger="engine.encoder"):
        enc = Encoder(default_model_dir, providers="cuda", threads=1)
    assert enc.provider == CPU_PROVIDER
    assert "failed to initialise" in enc.provider_reason
    assert any("CPUExecutionProvider" in r.getMessage() for r in caplog.records)
    logits, features = enc.encode(np.zeros((2, enc.info.input_size, enc.info.input_size, 3), np.uint8))
    assert logits.shape == (2, enc.info.bits) and features.shape == (2, enc.info.feature_dim)


def test_encoder_rejects_pixels_of_the_wrong_shape(default_model_dir):
    enc = Encoder(default_model_dir, providers="cpu", threads=1)
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((1, 100, 100, 3), np.uint8))
    features = enc.encode(np.full((1, 224, 224, 3), 128, np.uint8))[1]
    assert np.isclose(np.linalg.norm(features), 1.0, atol=1e-4)
