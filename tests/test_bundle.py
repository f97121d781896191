"""packaging/build: the one-folder bundle builds without PyTorch, carries the desktop files and passes its self-test.

Opt-in (LOOKALIKE_TEST_BUNDLE=1): it installs the lean package and PyInstaller into a build
venv and freezes the app, a few minutes and a download; CI runs it as its own step.
"""

from __future__ import annotations

import os
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.bundle,
    pytest.mark.skipif(os.environ.get("LOOKALIKE_TEST_BUNDLE") != "1",
                       reason="builds the PyInstaller bundle (minutes, a download): set LOOKALIKE_TEST_BUNDLE=1"),
    pytest.mark.timeout(1800),
]


def test_the_bundle_builds_and_passes_its_self_test():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    build = subprocess.run([str(ROOT / "packaging" / "build")], capture_output=True, text=True, env=env,
                           timeout=1700, cwd=ROOT)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "Self-test passed" in build.stdout
    bundle = ROOT / "dist" / "lookalike"
    internal = bundle / "_internal"
    assert (internal / "resources" / "models" / "efficientnet-lite0-lsh-64" / "model.onnx").is_file()
    assert not any((internal / name).exists() for name in ("torch", "skimage", "sklearn", "matplotlib"))
    desktop = (bundle / "share" / "applications" / "lookalike.desktop").read_text()
    assert "Exec=lookalike %f" in desktop and "image/x-adobe-dng" in desktop
    assert (bundle / "share" / "icons" / "hicolor" / "scalable" / "apps" / "lookalike.svg").is_file()
    metainfo = ET.parse(bundle / "share" / "metainfo" / "io.github.lookalike.Lookalike.metainfo.xml").getroot()
    assert metainfo.findtext("id") == "io.github.lookalike.Lookalike"
    # It starts on its own, without the source tree or a venv, and answers quickly.
    started = time.monotonic()
    version = subprocess.run([str(bundle / "lookalike"), "--version"], capture_output=True, text=True,
                             env=env, timeout=120, cwd="/")
    assert version.returncode == 0 and version.stdout.startswith("lookalike ")
    size = sum(f.lstat().st_size for f in bundle.rglob('*') if not f.is_symlink() and f.is_file())
    print(f"bundle: {size / 1e6:.0f} MB, "
          f"--version in {time.monotonic() - started:.2f} s")
    # Training is not in the bundle: one line saying how to get it, exit 3.
    train = subprocess.run([str(bundle / "lookalike"), "train", "--library", "/nonexistent"],
                           capture_output=True, text=True, env=env, timeout=120, cwd="/")
    assert train.returncode == 3 and "pip install 'lookalike[train]'" in train.stderr
