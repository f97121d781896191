"""Model version folders: read and replace the linear hash head inside model.onnx (no torch),
keep a copy of the head beside it for searches, and say what a version's fine stage ranks by."""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path, write_bytes
from engine.errors import EnvironmentProblem

log = logging.getLogger(__name__)

HEAD_WEIGHT = "head_weight"
HEAD_BIAS = "head_bias"
# The head's arrays beside model.onnx, written at install: a search in the head's space reads
# them with np.load (no onnx import, no protobuf parse of a 17 MB file per query).
HEAD_FILES = {HEAD_WEIGHT: "head_weight.npy", HEAD_BIAS: "head_bias.npy"}
# What a version's fine stage ranks the Hamming pool by (manifest "rerank"); a manifest
# without it (every version written before this field) means "features".
DEFAULT_RERANK = "features"
RERANK_SPACES = ("features", "code")


def rerank_space(manifest: dict) -> str:
    """The manifest's "rerank": "features" or "code"; missing or unknown values mean "features"."""
    value = manifest.get("rerank", DEFAULT_RERANK)
    if value not in RERANK_SPACES:
        log.warning("model %s names an unknown re-rank space %r; ranking by features", manifest.get("name"), value)
        return DEFAULT_RERANK
    return value


def plain_name(manifest: dict, created_at: str | None = None, *, today: _dt.date | None = None) -> str:
    """A version as a person names it: "Default model" (no labels), else "Trained on 36 pairs,
    2 Dec" (the year too when it is not this year's); technical_name says the rest."""
    head = manifest.get("head") or {}
    pairs = head.get("pairs")
    if not pairs:
        return "Default model"
    text = f"Trained on {int(pairs):,} pair{'s' if int(pairs) != 1 else ''}"
    try:
        when = _dt.datetime.fromisoformat(str(created_at or manifest.get("created_at"))).astimezone()
    except (TypeError, ValueError):
        return text
    today = today or _dt.date.today()
    date = f"{when.day} {when:%b}" + ("" if when.year == today.year else f" {when.year}")
    return f"{text}, {date}"


def technical_name(version: int, manifest: dict) -> str:
    """"v2 efficientnet-lite0-itq, 64-bit codes, itq head": what plain_name leaves out."""
    head = manifest.get("head") or {}
    parts = [f"v{version} {manifest.get('name', '?')}", f"{manifest.get('bits', '?')}-bit codes"]
    if head.get("kind"):
        parts.append(f"{head['kind']} head" + (f" ({head['mode']} mode)" if head.get("mode") else ""))
    parts.append(f"re-ranked by {rerank_space({**manifest, 'rerank': manifest.get('rerank') or DEFAULT_RERANK})}")
    return ", ".join(parts)


def _load(model_dir: Path):
    import onnx  # why: onnx (and protobuf) is slow to import; only refits and activations need it, never a search

    try:
        return onnx.load(str(Path(model_dir) / "model.onnx"))
    except Exception as exc:  # onnx raises protobuf's untyped errors
        raise EnvironmentProblem(f"cannot read {model_dir}/model.onnx: {exc}") from exc


def _initializers(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def read_head(model_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(W [D, K], b [K]) of the model's linear hash head."""
    from onnx import numpy_helper  # why: as in _load

    inits = _initializers(_load(Path(model_dir)))
    try:
        weight = numpy_helper.to_array(inits[HEAD_WEIGHT]).astype(np.float32)
        bias = numpy_helper.to_array(inits[HEAD_BIAS]).astype(np.float32)
    except KeyError as exc:
        raise EnvironmentProblem(f"{model_dir}/model.onnx has no linear hash head ({exc} missing)") from exc
    return weight, bias


def write_head_arrays(model_dir: str | os.PathLike, weight: np.ndarray, bias: np.ndarray) -> None:
    """Save the head as plain .npy files beside model.onnx (atomically: readers never see half)."""
    for name, array in ((HEAD_WEIGHT, weight), (HEAD_BIAS, bias)):
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        write_bytes(Path(model_dir) / HEAD_FILES[name], buffer.getvalue())


def load_head_arrays(model_dir: str | os.PathLike, feature_dim: int, bits: int
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """(W [D, K], b [K]) from the .npy files, or None when they are missing or not what the
    manifest says (a library folder is untrusted input: no pickles, shapes and values checked)."""
    arrays = []
    for name, shape in ((HEAD_WEIGHT, (feature_dim, bits)), (HEAD_BIAS, (bits,))):
        path = Path(model_dir) / HEAD_FILES[name]
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a link could point anywhere
                log.warning("ignoring %s: not a plain file", path)
                return None
            # mapped, so a huge file is refused by its header before anything is read
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            return None
        if array.dtype != np.float32 or array.shape != shape:
            log.warning("ignoring %s: %s %s, expected float32 %s", path, array.dtype, array.shape, shape)
            return None
        array = np.array(array)
        if not np.isfinite(array).all():
            log.warning("ignoring %s: values that are not finite", path)
            return None
        arrays.append(array)
    return arrays[0], arrays[1]


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
    import onnx  # why: as in _load
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
    with atomic_path(target_dir / "model.onnx") as tmp:
        onnx.save(model, str(tmp))
    manifest = json.loads((source_dir / "manifest.json").read_text())
    manifest.update(manifest_updates)
    manifest["created_at"] = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    write_manifest(target_dir, manifest)
    return manifest


def write_manifest(model_dir: Path, manifest: dict) -> None:
    write_bytes(model_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
