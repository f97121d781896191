"""ONNX export of a HashingNet per the model file contract, and a torch/onnxruntime parity check."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_path
from trainer.model import HashingNet

INPUT_NAME = "pixels"
OUTPUT_NAMES = ("code_logits", "feature")
HEAD_INITIALIZERS = ("head_weight", "head_bias")

# Parity thresholds: float32 ORT vs torch on CPU differ by ~1e-6; anything near these is a bug.
MAX_FEATURE_DIFF = 1e-3
MIN_BIT_AGREEMENT = 0.99


class ParityError(AssertionError):
    """The exported ONNX graph does not compute what the torch model computes."""


def export_onnx(model: HashingNet, path: str | os.PathLike, *, opset: int = 17) -> None:
    """Write ``model`` as a single self-contained .onnx file with a dynamic batch axis.

    Uses the TorchScript exporter (``dynamo=False``) because it keeps parameter names, so the
    head initializers come out named ``head_weight``/``head_bias``; the names are verified
    after export and the file is rewritten atomically.
    """
    import onnx  # why: onnx is slow to import; only an export needs it (see engine.models)

    path = Path(path)
    model = model.eval()
    size = model.input_size
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # F.pad's export reverses its pad list with a step -1 Slice that the folder skips;
        # harmless (ORT folds it at load) but repeated for every node, so silenced here.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            model, (dummy,), str(tmp),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAMES[0]: {0: "N"}, OUTPUT_NAMES[1]: {0: "N"}},
            opset_version=opset,
            do_constant_folding=True,
            export_params=True,
            keep_initializers_as_inputs=False,
        )
        # Checked before the rename: a failed check leaves ``path`` as it was.
        proto = onnx.load(str(tmp))
        names = {init.name for init in proto.graph.initializer}
        missing = [n for n in HEAD_INITIALIZERS if n not in names]
        if missing:
            raise RuntimeError(f"exported graph lacks initializers {missing}; the engine could not refit its head")
        onnx.checker.check_model(proto)
        expected = {OUTPUT_NAMES[0]: model.bits, OUTPUT_NAMES[1]: model.feature_dim}
        got = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
        if any(got.get(name, [None, None])[1] != dim for name, dim in expected.items()):
            raise RuntimeError(f"exported outputs have shapes {got}, expected [N, {expected}]")


def replace_head(onnx_path: str | os.PathLike, weight: np.ndarray, bias: np.ndarray) -> None:
    """Overwrite the ``head_weight``/``head_bias`` initializers of an exported file, atomically."""
    import onnx  # why: as in export_onnx
    from onnx import numpy_helper

    path = Path(onnx_path)
    proto = onnx.load(str(path))
    new = {"head_weight": np.asarray(weight, dtype=np.float32), "head_bias": np.asarray(bias, dtype=np.float32)}
    for init in proto.graph.initializer:
        if init.name in new:
            old_shape = tuple(init.dims)
            if old_shape != new[init.name].shape:
                raise ValueError(f"{init.name} is {old_shape} in {path}, not {new[init.name].shape}")
            init.CopyFrom(numpy_helper.from_array(new.pop(init.name), init.name))
    if new:
        raise ValueError(f"{path} has no initializers {sorted(new)}")
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


def torch_outputs(model: HashingNet, pixels_uint8: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(code_logits, feature) from the torch model, in batches to bound memory."""
    model = model.eval()
    logits, feats = [], []
    with torch.no_grad():
        for i in range(0, len(pixels_uint8), batch):
            lo, fe = model(torch.from_numpy(np.ascontiguousarray(pixels_uint8[i:i + batch])))
            logits.append(lo.numpy())
            feats.append(fe.numpy())
    return np.concatenate(logits), np.concatenate(feats)


def onnx_outputs(onnx_path: str | os.PathLike, pixels_uint8: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(code_logits, feature) from onnxruntime on the CPU provider."""
    import onnxruntime as ort  # why: only the parity check runs ONNX Runtime

    opts = ort.SessionOptions()
    # Two cores are shared on the build machines; more threads only contend.
    opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    logits, feats = [], []
    for i in range(0, len(pixels_uint8), batch):
        lo, fe = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(pixels_uint8[i:i + batch])})
        logits.append(lo)
        feats.append(fe)
    return np.concatenate(logits), np.concatenate(feats)


def check_parity(model: HashingNet, onnx_path: str | os.PathLike, pixels_uint8: np.ndarray) -> dict:
    """Run torch and onnxruntime on the same pixels; raise :class:`ParityError` if they disagree.

    Returns ``{"max_abs_feature", "max_abs_logits", "bit_agreement", "n"}``.
    """
    pixels_uint8 = np.asarray(pixels_uint8)
    if pixels_uint8.dtype != np.uint8 or pixels_uint8.ndim != 4 or pixels_uint8.shape[-1] != 3:
        raise ValueError(f"pixels must be uint8 [N, S, S, 3], got {pixels_uint8.dtype} {pixels_uint8.shape}")
    t_logits, t_feat = torch_outputs(model, pixels_uint8)
    o_logits, o_feat = onnx_outputs(onnx_path, pixels_uint8)
    result = {
        "max_abs_feature": float(np.abs(t_feat - o_feat).max()),
        "max_abs_logits": float(np.abs(t_logits - o_logits).max()),
        "bit_agreement": float(((t_logits > 0) == (o_logits > 0)).mean()),
        "n": int(len(pixels_uint8)),
    }
    if result["max_abs_feature"] > MAX_FEATURE_DIFF or result["bit_agreement"] < MIN_BIT_AGREEMENT:
        raise ParityError(f"ONNX export does not match torch: {result}")
    return result
