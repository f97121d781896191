"""Run a model version with ONNX Runtime: TensorRT or CUDA when present, else the CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import EnvironmentProblem
from engine.imageio import RESIZES

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
CPU_CHUNK = 8


def _cuda_driver_present() -> bool:
    """True when an NVIDIA driver is loadable, so trying the GPU providers makes sense.

    Without this check ONNX Runtime prints a page of errors for each provider it cannot load.
    """
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def choose_providers(requested: str | list[str] = "auto") -> tuple[list[str], str]:
    """Provider list to try, best first, and a one-line reason for the choice.

    ``requested`` is "auto", "cpu", "cuda", "tensorrt" or an explicit list of ONNX Runtime
    provider names.
    """
    import onnxruntime as ort  # why: ONNX Runtime is slow to import; only choosing providers and encoding need it

    available = ort.get_available_providers()
    if isinstance(requested, list):
        wanted = [p for p in requested if p in available]
        if CPU_PROVIDER not in wanted:
            wanted.append(CPU_PROVIDER)
        return wanted, "as configured"
    requested = requested.lower()
    if requested == "cpu":
        return [CPU_PROVIDER], "CPU requested"
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if requested == "cuda":
        gpu = [p for p in gpu if p == "CUDAExecutionProvider"]
    elif requested == "tensorrt":
        gpu = [p for p in gpu if p == "TensorrtExecutionProvider"]
    elif requested != "auto":
        raise ValueError(f"unknown provider choice {requested!r}")
    if not gpu:
        return [CPU_PROVIDER], "this ONNX Runtime build has no GPU providers"
    if not _cuda_driver_present():
        return [CPU_PROVIDER], "no NVIDIA driver found"
    return gpu + [CPU_PROVIDER], "GPU providers available"


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs from a model version's manifest."""

    path: Path
    manifest: dict

    @property
    def input_size(self) -> int:
        return int(self.manifest["input_size"])

    @property
    def resize(self) -> str:
        return self.manifest.get("resize", "center-crop")

    @property
    def bits(self) -> int:
        return int(self.manifest["bits"])

    @property
    def feature_dim(self) -> int:
        return int(self.manifest["feature_dim"])

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "ModelInfo":
        model_dir = Path(model_dir)
        try:
            manifest = json.loads((model_dir / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise EnvironmentProblem(f"model folder {model_dir} is unreadable: {exc}") from exc
        if not (model_dir / "model.onnx").is_file():
            raise EnvironmentProblem(f"model folder {model_dir} has no model.onnx")
        problem = _manifest_problem(manifest)
        if problem:
            raise EnvironmentProblem(f"model folder {model_dir}: its manifest.json {problem}")
        return cls(model_dir, manifest)


def _model_source(path: Path) -> str | bytes:
    """What ONNX Runtime loads: the path, or the file's bytes when the path is not UTF-8
    (a library in a folder with an old archive's name: ONNX Runtime takes only UTF-8 paths)."""
    try:
        str(path).encode("utf-8")
        return str(path)
    except UnicodeEncodeError:
        return path.read_bytes()


MANIFEST_FORMAT = 1  # the manifest.json layout this engine reads (docs/ARCHITECTURE.md)


def _manifest_problem(manifest) -> str | None:
    """What makes a manifest unusable here (a newer format, an unknown resize...), or None."""
    if not isinstance(manifest, dict):
        return "is not a JSON object"
    version = manifest.get("format", MANIFEST_FORMAT)
    if version != MANIFEST_FORMAT or isinstance(version, bool):
        return (f"has format {version!r}; this Lookalike reads format {MANIFEST_FORMAT} "
                "(a newer Lookalike may have written it)")
    resize = manifest.get("resize", "center-crop")
    if resize not in RESIZES:
        return f"has resize {resize!r}; this Lookalike knows {', '.join(RESIZES)}"
    for key, low, high in (("input_size", 8, 4096), ("bits", 1, 4096), ("feature_dim", 1, 1 << 16)):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"has {key} {value!r}; expected a whole number from {low} to {high}"
    return None


class Encoder:
    """One ONNX Runtime session over a model version: pixels in, code logits and features out."""

    def __init__(self, model_dir: str | os.PathLike, *, providers: str | list[str] = "auto",
                 threads: int | None = None, spin: bool = True, cache_dir: str | os.PathLike | None = None):
        """``threads`` None uses every core; ``spin`` False stops idle threads from burning a
        core while they wait (wanted when decoding shares the machine during indexing)."""
        import onnxruntime as ort  # why: as in choose_providers

        self.info = ModelInfo.load(model_dir)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted, why = choose_providers(providers)
        provider_options = [self._options_for(p, cache_dir) for p in wanted]
        try:
            self._session = ort.InferenceSession(
                _model_source(self.info.path / "model.onnx"), options, providers=wanted,
                provider_options=provider_options)
        except Exception as exc:  # ONNX Runtime raises its own untyped errors
            raise EnvironmentProblem(f"cannot load model {self.info.path}: {exc}") from exc
        self.provider = self._session.get_providers()[0]
        if self.provider == CPU_PROVIDER and wanted[0] != CPU_PROVIDER:
            why = f"{wanted[0]} failed to initialise"
        log.info("encoder: %s on %s (%s; %d threads)", self.info.manifest.get("name"), self.provider, why,
                 options.intra_op_num_threads)
        self.provider_reason = why

    @staticmethod
    def _options_for(provider: str, cache_dir) -> dict:
        if provider == "TensorrtExecutionProvider" and cache_dir is not None:
            # Building a TensorRT engine takes minutes; keep it between runs.
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
                    "trt_fp16_enable": "True"}
        return {}

    def encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, S, S, 3) RGB to (code logits float32 (N, K), features float32 (N, D))."""
        if pixels.ndim == 3:
            pixels = pixels[None]
        size = self.info.input_size
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (size, size, 3):
            raise ValueError(f"encoder expects uint8 (N, {size}, {size}, 3), got {pixels.dtype} {pixels.shape}")
        # On the CPU, batching buys no speed but multiplies ONNX Runtime's activation arena
        # (per image; docs/BENCHMARKS.md, "Figures quoted by the code"), so run small chunks there.
        step = len(pixels) if self.provider != CPU_PROVIDER else CPU_CHUNK
        outputs = [self._session.run(["code_logits", "feature"], {"pixels": np.ascontiguousarray(pixels[i:i + step])})
                   for i in range(0, len(pixels), step)]
        if len(outputs) == 1:
            return outputs[0][0], outputs[0][1]
        return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])
