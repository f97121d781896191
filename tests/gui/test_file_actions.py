"""Acting on results in the window, offscreen on real files: trash only when confirmed, move, undo, keep the best."""

from __future__ import annotations

import os

from PySide6.QtCore import QItemSelectionModel, QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.file_actions import KEEP_RULE, PREFER_FORMATS
from tests.gui.acting import catalogued, confirmation, idle, press


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


def test_trash_asks_first_and_undo_puts_the_photos_back(make_window, qtbot, acting_library):
    library, files, trash = acting_library
    window = make_window(library)
    shown = _search(window, qtbot, files["scene1"])
    victims = [files["scene2"], files["scene4"]]
    assert set(victims) <= set(shown)
    _select(window, victims)
    size = sum(os.path.getsize(p) for p in victims)

    # Delete asks; Cancel: nothing moves, nothing leaves the results or the catalog
    press(window, qtbot, window.view, Qt.Key.Key_Delete)
    box = confirmation(window, qtbot)
    assert "Move 2 photos" in box.text() and f"{size / 1e3:.1f} KB" in box.text()
    assert "Undo" in box.informativeText()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)  # Enter alone never trashes
    box.button(QMessageBox.StandardButton.Cancel).click()
    idle(window, qtbot)
    assert all(os.path.isfile(p) for p in victims)
    assert set(victims) <= set(_paths(window)) and all(catalogued(library, p) for p in victims)
    assert not (trash / "files").exists() or not any((trash / "files").iterdir())

    # Closing the question with Escape is a no as well
    window.file_actions.trash_selected()
    confirmation(window, qtbot).reject()
    idle(window, qtbot)
    assert all(os.path.isfile(p) for p in victims)

    # Yes: gone from their folder, into the trash, out of the results and the catalog at once
    window.file_actions.trash_selected()
    confirmation(window, qtbot).trash_button.click()
    qtbot.waitUntil(lambda: not set(victims) & set(_paths(window)), timeout=30_000)
    idle(window, qtbot)
    for path in victims:
        name = os.path.basename(path)
        assert not os.path.exists(path)
        assert (trash / "files" / name).is_file() and (trash / "info" / f"{name}.trashinfo").is_file()
        assert not catalogued(library, path)
    assert "Moved 2 photos" in window.statusBar().currentMessage()
    assert len(_paths(window)) == len(shown) - 2

    # Ctrl+Z (the results grid has the keyboard): back in place, catalogued, in the results again
    press(window, qtbot, window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: all(os.path.isfile(p) for p in victims), timeout=30_000)
    idle(window, qtbot)
    assert all(catalogued(library, p) for p in victims)
    assert not any((trash / "files").iterdir()) and not any((trash / "info").iterdir())
    qtbot.waitUntil(lambda: window.results_are_current() and set(victims) <= set(_paths(window)), timeout=30_000)


def test_move_to_a_folder_follows_the_library_and_undo_moves_back(make_window, qtbot, acting_library, tmp_path,
                                                                  monkeypatch):
    library, files, _ = acting_library
    window = make_window(library)
    _search(window, qtbot, files["scene1"])
    moving = [files["scene5"], files["backup"]]
    outside = tmp_path / "sorted"
    outside.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(outside))
    _select(window, moving)
    window.file_actions.move_action.trigger()
    qtbot.waitUntil(lambda: not set(moving) & set(_paths(window)), timeout=30_000)
    idle(window, qtbot)
    for path in moving:
        assert not os.path.exists(path) and (outside / os.path.basename(path)).is_file()
        assert not catalogued(library, path)  # moved out of the library's folders: forgotten

    window.file_actions.undo()
    idle(window, qtbot)
    assert all(os.path.isfile(p) and catalogued(library, p) for p in moving)
    assert not any(outside.iterdir())


def test_copy_paths_select_all_and_mark_the_selection(make_window, qtbot, acting_library):
    library, files, _ = acting_library
    window = make_window(library)
    shown = _search(window, qtbot, files["scene1"], k=4)
    press(window, qtbot, window.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
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

    # a marked photo trashed: it leaves the marks too (its label stays), the bar counts the rest
    window.file_actions.trash([others[0]])
    confirmation(window, qtbot).trash_button.click()
    idle(window, qtbot)
    assert window.marks() == {p: 1 for p in others[1:]} and others[0] not in _paths(window)
    assert window.refine_label.text() == "Refined by 2 similar"


def test_rubber_band_selects_the_tiles_it_covers(make_window, qtbot, acting_library):
    library, files, _ = acting_library
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


def test_select_all_but_the_best_frames_the_keeper_and_selects_the_others(make_window, qtbot, acting_library):
    library, files, _ = acting_library
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


def test_where_the_trash_cannot_restore_the_question_says_so(make_window, qtbot, acting_library, monkeypatch):
    library, files, _ = acting_library
    monkeypatch.setattr("engine.actions.trash_restorable", lambda: False)
    window = make_window(library)
    _search(window, qtbot, files["scene1"], k=3)
    window.file_actions.trash([files["scene2"]])
    box = confirmation(window, qtbot)
    assert "Move 1 photo (" in box.text() and "cannot put them back" in box.informativeText()
    box.reject()
    idle(window, qtbot)
    assert os.path.isfile(files["scene2"])


def test_no_file_action_while_the_window_indexes(make_window, qtbot, acting_library, monkeypatch):
    library, files, _ = acting_library
    window = make_window(library)
    monkeypatch.setattr(window.indexing, "is_indexing", lambda: True)
    window.file_actions.trash([files["scene2"]])
    assert window.file_actions.runner.confirmation is None and not window.file_actions.runner.is_busy()
    assert "being indexed" in window.statusBar().currentMessage()
    assert os.path.isfile(files["scene2"])


def test_removing_rows_keeps_the_other_tiles_and_their_thumbnails(qtbot, tmp_path):
    from app.results import ResultsModel
    from app.workers import ResultItem

    model = ResultsModel()
    items = [ResultItem(str(tmp_path / f"p{i}.jpg"), 1.0 - i / 1000, i, None) for i in range(400)]
    for scattered in (False, True):
        model.set_results(items)
        for row in range(len(items)):
            model._icons[row] = model.placeholder  # as if every thumbnail had loaded
        gone = [items[i].path for i in (range(0, 400, 3) if scattered else range(10, 60))]
        assert model.remove_paths(gone) == len(gone)
        left = [item for item in items if item.path not in set(gone)]
        assert [model.item(row) for row in range(model.rowCount())] == left
        assert sorted(model._icons) == list(range(len(left)))  # re-keyed to the rows left, none reloaded
    model.shutdown()


def test_trashing_the_query_photo_says_so_and_undo_brings_it_back(make_window, qtbot, acting_library):
    from app.main_window import QUERY_GONE

    library, files, trash = acting_library
    window = make_window(library)
    query = files["scene1"]
    shown = _search(window, qtbot, query)
    assert query in shown  # the photo finds itself first
    _select(window, [query])
    window.file_actions.trash_selected()
    confirmation(window, qtbot).trash_button.click()
    qtbot.waitUntil(lambda: query not in _paths(window), timeout=30_000)
    idle(window, qtbot)
    assert not os.path.exists(query)
    assert window.query_caption.text().endswith(QUERY_GONE)  # said where the photo was shown
    assert len(_paths(window)) == len(shown) - 1  # the other results stay

    press(window, qtbot, window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: os.path.isfile(query), timeout=30_000)
    qtbot.waitUntil(lambda: window.results_are_current() and query in _paths(window), timeout=30_000)
    assert not window.query_caption.text().endswith(QUERY_GONE)
