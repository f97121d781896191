"""Acting on results in the window, offscreen on real files: trash only after a confirmation, move, undo, select all but the best."""

from __future__ import annotations

import importlib
import os
import shutil

import pytest
from PySide6.QtCore import QItemSelectionModel, QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.file_actions import KEEP_RULE, PREFER_FORMATS
from engine.index import Indexer
from engine.library import Library
from engine.store import Store
from tests import photos


def build_library(tmp_path, default_model_dir):
    """Six scenes (640 x 480); scene 0 also resized, recompressed and as a PNG; scene 3 twice
    (a byte copy). Indexed, with the freedesktop trash under tmp_path."""
    root = tmp_path / "photos"
    files = {}
    for i in range(6):
        image = photos.scene(700 + i)
        files[f"scene{i}"] = str(photos.save(image, root / f"scene{i}.jpg", quality=92))
        if i == 0:
            for edit in ("resized", "q60", "png"):
                files[edit] = str(photos.copy_edit(image, edit, root / "edits" / "scene0"))
    shutil.copyfile(files["scene3"], root / "backup-scene3.jpg")
    files["backup"] = str(root / "backup-scene3.jpg")
    library = tmp_path / "library"
    with Library(library) as lib:
        lib.install_model(default_model_dir)
        assert Indexer(lib, workers=0).run([root]).added == len(files)
    return library, files


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """A freedesktop trash under tmp_path (send2trash reads XDG_DATA_HOME when imported)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / "data"))
    (tmp_path / "home").mkdir()
    import send2trash.plat_other

    importlib.reload(send2trash.plat_other)
    yield tmp_path / "home" / "data" / "Trash"
    monkeypatch.undo()
    importlib.reload(send2trash.plat_other)


@pytest.fixture
def setup(tmp_path, default_model_dir, trash_home):
    library, files = build_library(tmp_path, default_model_dir)
    return library, files, trash_home


def _paths(window) -> list[str]:
    return [window.model.item(row).path for row in range(window.model.rowCount())]


def _search(window, qtbot, path, k=10) -> list[str]:
    window.k_spin.setValue(k)
    window.search(path)
    qtbot.waitUntil(lambda: window.results_are_current() and window.model.rowCount() == k, timeout=30_000)
    return _paths(window)


def _select(window, paths) -> None:
    selection = window.view.selectionModel()
    selection.clearSelection()
    for path in paths:
        selection.select(window.model.index(window.model.row_of(path)), QItemSelectionModel.SelectionFlag.Select)


def _catalogued(library, path) -> bool:
    with Store.open(library, create=False, readonly=True) as store:
        return store.image_by_path(path) is not None


def _press(window, qtbot, widget, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)  # shortcuts go to the active window
    widget.setFocus()
    qtbot.keyClick(widget, key, modifier)


def _confirmation(window, qtbot) -> QMessageBox:
    runner = window.file_actions.runner
    qtbot.waitUntil(lambda: runner.confirmation is not None and runner.confirmation.isVisible(), timeout=10_000)
    return runner.confirmation


def _idle(window, qtbot) -> None:
    qtbot.waitUntil(lambda: not window.file_actions.runner.is_busy(), timeout=60_000)


def test_trash_asks_first_and_undo_puts_the_photos_back(make_window, qtbot, setup):
    library, files, trash = setup
    window = make_window(library)
    shown = _search(window, qtbot, files["scene1"])
    victims = [files["scene2"], files["scene4"]]
    assert set(victims) <= set(shown)
    _select(window, victims)
    size = sum(os.path.getsize(p) for p in victims)

    # Delete asks; Cancel: nothing moves, nothing leaves the results or the catalog
    _press(window, qtbot, window.view, Qt.Key.Key_Delete)
    box = _confirmation(window, qtbot)
    assert "Move 2 photos" in box.text() and f"{size / 1e3:.1f} KB" in box.text()
    assert "Undo" in box.informativeText()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)  # Enter alone never trashes
    box.button(QMessageBox.StandardButton.Cancel).click()
    _idle(window, qtbot)
    assert all(os.path.isfile(p) for p in victims)
    assert set(victims) <= set(_paths(window)) and all(_catalogued(library, p) for p in victims)
    assert not (trash / "files").exists() or not any((trash / "files").iterdir())

    # Closing the question with Escape is a no as well
    window.file_actions.trash_selected()
    _confirmation(window, qtbot).reject()
    _idle(window, qtbot)
    assert all(os.path.isfile(p) for p in victims)

    # Yes: gone from their folder, into the trash, out of the results and the catalog at once
    window.file_actions.trash_selected()
    _confirmation(window, qtbot).trash_button.click()
    qtbot.waitUntil(lambda: not set(victims) & set(_paths(window)), timeout=30_000)
    _idle(window, qtbot)
    for path in victims:
        name = os.path.basename(path)
        assert not os.path.exists(path)
        assert (trash / "files" / name).is_file() and (trash / "info" / f"{name}.trashinfo").is_file()
        assert not _catalogued(library, path)
    assert "Moved 2 photos" in window.statusBar().currentMessage()
    assert len(_paths(window)) == len(shown) - 2

    # Ctrl+Z (the results grid has the keyboard): back in place, catalogued, in the results again
    _press(window, qtbot, window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: all(os.path.isfile(p) for p in victims), timeout=30_000)
    _idle(window, qtbot)
    assert all(_catalogued(library, p) for p in victims)
    assert not any((trash / "files").iterdir()) and not any((trash / "info").iterdir())
    qtbot.waitUntil(lambda: window.results_are_current() and set(victims) <= set(_paths(window)), timeout=30_000)


def test_move_to_a_folder_follows_the_library_and_undo_moves_back(make_window, qtbot, setup, tmp_path,
                                                                  monkeypatch):
    library, files, _ = setup
    window = make_window(library)
    _search(window, qtbot, files["scene1"])
    moving = [files["scene5"], files["backup"]]
    outside = tmp_path / "sorted"
    outside.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(outside))
    _select(window, moving)
    window.file_actions.move_action.trigger()
    qtbot.waitUntil(lambda: not set(moving) & set(_paths(window)), timeout=30_000)
    _idle(window, qtbot)
    for path in moving:
        assert not os.path.exists(path) and (outside / os.path.basename(path)).is_file()
        assert not _catalogued(library, path)  # moved out of the library's folders: forgotten

    window.file_actions.undo()
    _idle(window, qtbot)
    assert all(os.path.isfile(p) and _catalogued(library, p) for p in moving)
    assert not any(outside.iterdir())


def test_copy_paths_and_select_all(make_window, qtbot, setup):
    library, files, _ = setup
    window = make_window(library)
    shown = _search(window, qtbot, files["scene1"], k=4)
    _press(window, qtbot, window.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert window.selected_paths() == shown
    window.file_actions.copy_paths_action.trigger()
    from PySide6.QtWidgets import QApplication

    assert QApplication.clipboard().text().splitlines() == shown

    # the tile menu acts on the selection the tile is in: trash, move, copy, mark them all
    others = [p for p in shown if p != files["scene1"]]
    _select(window, others)
    menu = window.result_menu(window.model.index(window.model.row_of(others[0])))
    entries = {a.text(): a for a in menu.actions() if a.text()}
    assert {"Move 3 Photos to Trash…", "Move 3 Photos to Folder…", "Copy 3 Paths", "Select All but the Best",
            "Mark 3 Similar"} <= set(entries)
    entries["Mark 3 Similar"].trigger()
    assert window.marks() == {p: 1 for p in others}
    qtbot.waitUntil(window.results_are_current, timeout=30_000)


def test_rubber_band_selects_the_tiles_it_covers(make_window, qtbot, setup):
    library, files, _ = setup
    window = make_window(library)
    window.resize(1400, 700)
    shown = _search(window, qtbot, files["scene1"], k=4)
    view = window.view
    rects = [view.visualRect(window.model.index(row)) for row in range(3)]
    assert rects[0].top() == rects[2].top()  # one row of tiles
    start = QPoint(rects[0].left() + 2, rects[0].bottom() + 30)  # below the tiles: empty space
    end = QPoint(rects[1].center().x(), rects[1].center().y())
    QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):
        QTest.mouseMove(view.viewport(), start + (end - start) * step / 5)
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert window.selected_paths() == shown[:2]


def test_select_all_but_the_best_frames_the_keeper_and_selects_the_others(make_window, qtbot, setup):
    library, files, _ = setup
    window = make_window(library)
    copies = [files["scene0"], files["resized"], files["q60"], files["png"]]
    shown = _search(window, qtbot, files["scene0"])
    assert set(copies) <= set(shown)
    os.utime(files["resized"], ns=(1_000_000_000, 1_000_000_000))  # the oldest
    settings = window.settings

    def keep(rule: str, formats: str = "") -> str:
        settings.setValue(KEEP_RULE, rule)
        settings.setValue(PREFER_FORMATS, formats)
        _select(window, copies)
        window.file_actions.keep_best_action.trigger()
        qtbot.waitUntil(lambda: window.model.keeper() is not None and not window.file_actions.is_choosing(),
                        timeout=10_000)
        keeper = window.model.keeper()
        assert sorted(window.selected_paths()) == sorted(p for p in copies if p != keeper)
        assert window.model.data(window.model.index(window.model.row_of(keeper)), Qt.ItemDataRole.UserRole + 5)
        window.model.set_keeper(None)
        return keeper

    # largest resolution, then largest file: the original and the q60 copy are both 640 x 480,
    # the original's file is bigger (the PNG is bigger still, but keep it out of this one)
    copies.remove(files["png"])
    assert keep("largest") == files["scene0"]
    copies.append(files["png"])
    assert keep("oldest") == files["resized"]
    assert keep("largest", "png") == files["png"]  # a preferred format first
    assert "Delete moves them to the trash" in window.statusBar().currentMessage()
    assert all(os.path.isfile(p) for p in copies)  # shown, nothing moved
    # every result when fewer than two are selected
    _select(window, [])
    window.file_actions.select_all_but_best()
    qtbot.waitUntil(lambda: window.model.keeper() is not None, timeout=10_000)
    assert len(window.selected_paths()) == len(shown) - 1
