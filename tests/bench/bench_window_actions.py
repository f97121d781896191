"""How long the window's file actions take, and how long the window stalls meanwhile: trash, undo, move, find duplicates.

    .venv/bin/python tests/bench/bench_window_actions.py [--photos 400] [--dir DIR] [--probe-ms 10] [--groups 5000]

Builds a library of --photos generated photos (320 x 240 JPEGs, every tenth with a resized
copy; a later run in the same --dir reuses it), opens the real main window on it, searches
for every photo, selects them all and, through the window's own paths (Edit > Move to Trash
with the question answered yes, Edit > Undo, Move to Folder, Undo, the Duplicates view's
Find, then --groups synthetic groups shown in the view), times each action from the click to
its end while a QTimer fires every --probe-ms:
how late each timeout comes is how long the GUI thread was busy. Prints, per action, the
time taken and the worst and p99 delays. The freedesktop trash is a folder under --dir.
Uses the platform Qt picks (set QT_QPA_PLATFORM=offscreen to run without a display).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def build(folder: Path, count: int) -> tuple[Path, Path]:
    from engine.default_model import build_default_model
    from engine.index import Indexer
    from engine.library import Library
    from tests import photos

    root, library = folder / "photos", folder / "library"
    if (library / "catalog.sqlite3").exists():
        return library, root
    for i in range(count):
        image = photos.scene(5000 + i, (320, 240))
        photos.save(image, root / f"p{i:05d}.jpg", quality=90)
        if i % 10 == 0:
            photos.save(image.resize((240, 180)), root / "copies" / f"p{i:05d}-small.jpg", quality=85)
    with Library(library) as lib:
        lib.install_model(build_default_model(64, quiet=True))
        Indexer(lib, workers=min(2, os.cpu_count() or 1)).run([root])
    return library, root


class Probe:
    """A timer every ``ms``: how late each timeout comes (the GUI thread was busy that long)."""

    def __init__(self, ms: int):
        from PySide6.QtCore import QTimer

        self.ms, self.delays, self._last = ms, [], None
        self.timer = QTimer()
        self.timer.setInterval(ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.delays.append(max(0.0, (now - self._last) * 1000 - self.ms))
        self._last = now

    def start(self) -> None:
        self.delays, self._last = [], None
        self.timer.start()

    def stop(self) -> tuple[float, float]:
        self.timer.stop()
        d = np.array(self.delays or [0.0])
        return float(d.max()), float(np.percentile(d, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--probe-ms", type=int, default=10)
    parser.add_argument("--groups", type=int, default=5000, help="synthetic duplicate groups shown at the end")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-window-actions-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_DATA_HOME"] = str(folder / "xdg-data")  # send2trash reads it when imported
    t0 = time.perf_counter()
    library, root = build(folder, args.photos)
    print(f"library: {library} ({time.perf_counter() - t0:.1f} s to build or open)")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("watch/enabled", False)  # the actions alone, not the watcher's batches after them
    window = MainWindow(library, settings=settings, warm_up=False)
    window.resize(1200, 800)
    window.show()
    probe = Probe(args.probe_ms)

    def wait(condition, timeout=600.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit("timed out")
            app.processEvents()
            time.sleep(0.001)

    query = str(root / "p00000.jpg")
    window.k_spin.setValue(10_000)
    window.search(query)
    wait(lambda: window.results_are_current() and window.model.rowCount() > 0)
    shown = window.model.rowCount()
    runner = window.file_actions.runner

    def measure(name: str, start, done) -> None:
        probe.start()
        began = time.perf_counter()
        start()
        wait(done)
        took = time.perf_counter() - began
        worst, p99 = probe.stop()
        print(f"{name:<34s} {took:7.2f} s   window stalls: worst {worst:6.1f} ms, p99 {p99:5.1f} ms")

    def trash_all() -> None:
        window.view.selectAll()
        window.file_actions.trash_action.trigger()
        wait(lambda: runner.confirmation is not None)
        runner.confirmation.trash_button.click()

    print(f"{shown} results on show, {args.probe_ms} ms probe")
    measure(f"trash {shown} (measure, ask, trash)", trash_all, lambda: not runner.is_busy())
    assert window.model.rowCount() == 0, "the trashed photos are still shown"
    measure(f"undo the trash of {shown}", runner.undo,
            lambda: not runner.is_busy() and window.results_are_current() and window.model.rowCount() == shown)
    target = folder / "moved"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()

    def move_all() -> None:
        window.view.selectAll()
        window.file_actions.move(window.selected_paths(), copy=False, folder=str(target))

    measure(f"move {shown} out of the library", move_all, lambda: not runner.is_busy())
    measure(f"undo the move of {shown}", runner.undo,
            lambda: not runner.is_busy() and window.results_are_current() and window.model.rowCount() == shown)
    dialog = window.open_duplicates()
    measure("find duplicates (near)", dialog.find, lambda: not dialog.is_running())
    print(f"  {len(dialog.groups)} groups")

    # Thousands of groups shown: synthetic ones (no files), as a library full of copies gives
    from app.duplicates_view import DuplicateGroup
    from engine.duplicates import Member

    many = [DuplicateGroup([Member(f"/nowhere/g{g}/p{i}.jpg", 100_000 + i, 0, 12_000_000) for i in range(3)],
                           f"/nowhere/g{g}/p0.jpg", 0.95) for g in range(args.groups)]
    measure(f"show {args.groups:,} groups of 3", lambda: dialog._on_found(many),
            lambda: dialog.tree.topLevelItemCount() == len(many))
    window.close()
    app.processEvents()


if __name__ == "__main__":
    main()
