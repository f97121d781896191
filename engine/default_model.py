"""The default model's folder on this machine: built once (in a torch subprocess) and cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import platformdirs

from engine.atomic import publish_folder
from engine.errors import EnvironmentProblem


def default_model_cache() -> Path:
    """Where the default model is built once per machine and copied into each library."""
    env = os.environ.get("LOOKALIKE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("lookalike", appauthor=False))


def default_model_folder(bits: int = 64) -> Path:
    return default_model_cache() / "models" / f"efficientnet-lite0-lsh-{bits}"


def default_model_built(bits: int = 64) -> bool:
    """Whether the default model for ``bits`` is built on this machine (using it costs no build)."""
    target = default_model_folder(bits)
    return (target / "manifest.json").is_file() and (target / "model.onnx").is_file()


def build_default_model(bits: int = 64, *, quiet: bool = False) -> Path:
    """The default model folder for ``bits``, built (in a torch subprocess) if missing."""
    target = default_model_folder(bits)
    if default_model_built(bits):
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
        raise EnvironmentProblem(f"building the default model failed: {tail[0]}")
    if target.exists():  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        publish_folder(staging, target)
    return target
