"""What Lookalike writes on the machine: the library, its cache and its settings, nothing else (it is offline)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import photos

WINDOW_SCRIPT = """
import sys
from PySide6.QtWidgets import QApplication
from app.main_window import MainWindow

app = QApplication([])
window = MainWindow(sys.argv[1], warm_up=True)
window.show()
done = []
window.search_thread.resultsReady.connect(lambda *args: done.append(args))
window.search(sys.argv[2])
while not done:
    app.processEvents()
window.close()
"""


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.mark.slow
def test_nothing_is_written_outside_the_library_cache_and_settings(tmp_path, default_model_dir):
    home = tmp_path / "home"
    home.mkdir()
    cache = tmp_path / "cache"  # the app's cache: the default model, numba's compiled kernels
    (cache / "models").mkdir(parents=True)
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    library = tmp_path / "library"
    root = tmp_path / "photos"
    for i in range(4):
        photos.save(photos.scene(2400 + i, (320, 240)), root / f"p{i}.jpg")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "ORT_"))}
    env.update(HOME=str(home), TMPDIR=str(scratch), LOOKALIKE_CACHE_DIR=str(cache), QT_QPA_PLATFORM="offscreen")
    before = _files_under(tmp_path)

    def run(*args: str) -> None:
        proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr

    run("-m", "app.cli", "index", "--library", str(library), str(root))
    run("-m", "app.cli", "search", "--library", str(library), str(root / "p0.jpg"))
    run("-m", "app.cli", "status", "--library", str(library))
    run("-c", WINDOW_SCRIPT, str(library), str(root / "p1.jpg"))

    written = _files_under(tmp_path) - before
    allowed = (library, cache, home / ".config" / "Lookalike", home / ".cache" / "lookalike")
    stray = sorted(str(p) for p in written if not any(p.is_relative_to(folder) for folder in allowed))
    # ONNX Runtime's PyPI builds write a device id and a telemetry queue under
    # ~/.cache/Microsoft/DeveloperTools/.onnxruntime unless told not to.
    assert stray == [], "\n".join(stray)
    assert _files_under(scratch) == set()
