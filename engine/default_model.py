"""The default model's folder: shipped with the package (no torch), derived for other code lengths, or built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import platformdirs

from engine.atomic import publish_folder
from engine.errors import EnvironmentProblem

NAME = "efficientnet-lite0-lsh"
BACKBONE_NAME = "efficientnet-lite0"
SHIPPED_BITS = 64
SHIPPED_SEED = 0
# resources/ sits beside engine/ in a checkout, an installed wheel and the PyInstaller bundle.
MODELS_DIR = Path(__file__).resolve().parent.parent / "resources" / "models"
SHIPPED_DIR = MODELS_DIR / f"{NAME}-{SHIPPED_BITS}"
# The mean backbone feature over the calibration photos: with it, an LSH head of any length
# is a few lines of numpy, so no code length needs torch. Beside the model folder, not in it:
# a library copies the model folder whole.
CENTRE_FILE = MODELS_DIR / "efficientnet-lite0-centre.npy"


def default_model_cache() -> Path:
    """Where default models not shipped (other code lengths, or built) are kept per machine."""
    env = os.environ.get("LOOKALIKE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("lookalike", appauthor=False))


def lsh_head_from_centre(centre: np.ndarray, bits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random unit hyperplanes through ``centre``: (W [D, K], b [K]), float32.

    Centring makes each bit split the calibration features roughly in half, where planes
    through the origin would give near-constant bits (ReLU features all lie in one orthant).
    """
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((centre.shape[0], bits))
    weight /= np.linalg.norm(weight, axis=0, keepdims=True)
    bias = -np.asarray(centre, dtype=np.float64) @ weight
    return weight.astype(np.float32), bias.astype(np.float32)


def _complete(folder: Path) -> bool:
    return (folder / "manifest.json").is_file() and (folder / "model.onnx").is_file()


def shipped_default_model() -> Path | None:
    """The package's ready-made default model folder (64-bit codes), or None if not shipped."""
    return SHIPPED_DIR if _complete(SHIPPED_DIR) and CENTRE_FILE.is_file() else None


def build_default_model(bits: int = 64, *, quiet: bool = False) -> Path:
    """The default model folder for ``bits``: the shipped one, derived from it, or built.

    Only a checkout without the shipped files (it has not been built yet) falls back to the
    torch build in a subprocess.
    """
    shipped = shipped_default_model()
    if shipped is not None:
        if bits == SHIPPED_BITS:
            return shipped
        return _derive_from_shipped(shipped, bits)
    return _build_with_torch(bits, quiet=quiet)


def _derive_from_shipped(shipped: Path, bits: int) -> Path:
    """The shipped network with an LSH head of ``bits`` hyperplanes, as the build would make it."""
    from engine import models  # onnx: imported only on this path

    if not 1 <= bits <= 4096:
        raise ValueError(f"a code length of {bits} bits is out of range")
    target = default_model_cache() / "models" / f"{NAME}-{bits}"
    if _complete(target):
        return target
    centre = np.load(CENTRE_FILE, allow_pickle=False)
    weight, bias = lsh_head_from_centre(centre, bits, SHIPPED_SEED)
    manifest = json.loads((shipped / "manifest.json").read_text())
    head = dict(manifest.get("head", {}), seed=SHIPPED_SEED)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + f".{os.getpid()}.tmp")
    models.write_with_head(shipped, staging, weight, bias, {"bits": bits, "head": head})
    _publish(staging, target)
    return target


def _build_with_torch(bits: int, *, quiet: bool) -> Path:
    target = default_model_cache() / "models" / f"{NAME}-{bits}"
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + f".{os.getpid()}.tmp")
    if not quiet:
        print(f"Building the default model ({bits}-bit codes) in {target} ...", file=sys.stderr)
    # A subprocess keeps torch out of this process: the CLI and the window stay quick and light.
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.default_model", str(staging), "--bits", str(bits)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise EnvironmentProblem(f"building the default model failed: {tail[0]} "
                                 "(it needs the training extra: pip install 'lookalike[train]')")
    _publish(staging, target)
    return target


def _publish(staging: Path, target: Path) -> None:
    if _complete(target):  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
        return
    shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover
    publish_folder(staging, target)


def default_model_built(bits: int = 64) -> bool:
    """Whether the default model for ``bits`` is ready without a torch build: shipped, derived
    from the shipped one in a moment with numpy, or built on this machine before."""
    return shipped_default_model() is not None or _complete(default_model_cache() / "models" / f"{NAME}-{bits}")
