"""Model version folders: read and replace the linear hash head inside model.onnx (no torch)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path

import numpy as np

from engine.atomic import write_bytes
from engine.errors import EnvironmentProblem

HEAD_WEIGHT = "head_weight"
HEAD_BIAS = "head_bias"


def _load(model_dir: Path):
    import onnx  # imported here: only refits and activations need it, never a search

    try:
        return onnx.load(str(Path(model_dir) / "model.onnx"))
    except Exception as exc:  # onnx raises protobuf's untyped errors
        raise EnvironmentProblem(f"cannot read {model_dir}/model.onnx: {exc}") from exc


def _initializers(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def read_head(model_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(W [D, K], b [K]) of the model's linear hash head."""
    from onnx import numpy_helper

    inits = _initializers(_load(Path(model_dir)))
    try:
        weight = numpy_helper.to_array(inits[HEAD_WEIGHT]).astype(np.float32)
        bias = numpy_helper.to_array(inits[HEAD_BIAS]).astype(np.float32)
    except KeyError as exc:
        raise EnvironmentProblem(f"{model_dir}/model.onnx has no linear hash head ({exc} missing)") from exc
    return weight, bias


def head_logits(features: np.ndarray, weight: np.ndarray, bias: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """The head's code logits for stored features, as the ONNX graph computes them."""
    out = np.empty((features.shape[0], weight.shape[1]), dtype=np.float32)
    for start in range(0, features.shape[0], chunk):
        block = np.asarray(features[start:start + chunk], dtype=np.float32)
        out[start:start + chunk] = block @ weight + bias
    return out


def write_with_head(source_dir: str | os.PathLike, target_dir: str | os.PathLike, weight: np.ndarray,
                    bias: np.ndarray, manifest_updates: dict) -> dict:
    """Copy a model folder, replacing its head's weights and updating its manifest."""
    import onnx
    from onnx import numpy_helper

    source_dir, target_dir = Path(source_dir), Path(target_dir)
    model = _load(source_dir)
    inits = _initializers(model)
    old_w, old_b = inits.get(HEAD_WEIGHT), inits.get(HEAD_BIAS)
    if old_w is None or old_b is None:
        raise EnvironmentProblem(f"{source_dir}/model.onnx has no linear hash head to replace")
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    if weight.ndim != 2 or weight.shape[0] != old_w.dims[0] or bias.shape != (weight.shape[1],):
        raise ValueError(f"head shape {weight.shape}/{bias.shape} does not fit features of {old_w.dims[0]} dims")
    old_w.CopyFrom(numpy_helper.from_array(weight, HEAD_WEIGHT))
    old_b.CopyFrom(numpy_helper.from_array(bias, HEAD_BIAS))
    # A new code length changes the declared width of the code output too.
    for output in model.graph.output:
        if output.name == "code_logits":
            output.type.tensor_type.shape.dim[1].dim_value = weight.shape[1]
    shutil.rmtree(target_dir, ignore_errors=True)
    target_dir.mkdir(parents=True)
    onnx.save(model, str(target_dir / "model.onnx"))
    manifest = json.loads((source_dir / "manifest.json").read_text())
    manifest.update(manifest_updates)
    manifest["created_at"] = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    write_manifest(target_dir, manifest)
    return manifest


def write_manifest(model_dir: Path, manifest: dict) -> None:
    write_bytes(model_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
