"""The Duplicates view, offscreen on real files: planted groups found, keeper changed, others trashed when confirmed."""

from __future__ import annotations

import os
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import engine.duplicates
from app.duplicates_view import PathRole
from tests.gui.acting import catalogued, confirmation, idle


def _open(window, qtbot):
    window.file_actions.duplicates_action.trigger()
    dialog = window.duplicates_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def _find(dialog, qtbot, strictness="near"):
    dialog.strictness_combo.setCurrentIndex(dialog.strictness_combo.findData(strictness))
    dialog.find_button.click()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=60_000)
    return [{m.path for m in g.members} for g in dialog.groups]


def _member_rows(dialog, number):
    top = dialog.tree.topLevelItem(number)
    return [top.child(row) for row in range(top.childCount())]


def test_finds_planted_groups_and_trashes_the_others_afterconfirmation(make_window, qtbot, acting_library):
    library, files, trash = acting_library
    window = make_window(library)
    dialog = _open(window, qtbot)
    scene0 = {files["scene0"], files["resized"], files["q60"], files["png"]}
    scene3 = {files["scene3"], files["backup"]}
    assert _find(dialog, qtbot, "exact") == [scene3]
    groups = _find(dialog, qtbot, "near")
    assert sorted(groups, key=len) == [scene3, scene0]
    assert dialog.tree.topLevelItemCount() == 2 and "2 groups, 4 other copies" in dialog.summary.text()

    big = next(n for n, g in enumerate(dialog.groups) if len(g.members) == 4)
    group = dialog.groups[big]
    # largest resolution, then the largest file: one of the 640 x 480 ones, not the resized copy
    assert group.keeper != files["resized"]
    keeper_row = next(item for item in _member_rows(dialog, big) if item.data(0, PathRole) == group.keeper)
    assert "Keep" in keeper_row.text(1) and keeper_row.font(0).bold()
    # thumbnails arrive
    qtbot.waitUntil(lambda: all(not item.icon(0).isNull() for item in _member_rows(dialog, big)), timeout=10_000)

    # the person keeps the original instead (select it, Keep This One)
    original_row = next(item for item in _member_rows(dialog, big) if item.data(0, PathRole) == files["scene0"])
    dialog.tree.setCurrentItem(original_row)
    dialog.keep_button.click()
    assert group.keeper == files["scene0"] and "Keep" in original_row.text(1)
    assert "Keep" not in keeper_row.text(1) or keeper_row is original_row

    # compare: the group side by side
    compare = dialog.compare(big)
    qtbot.waitUntil(lambda: all(pane.shown is not None for pane in compare.panes), timeout=10_000)
    assert len(compare.panes) == 4 and compare.photos[0].path == group.keeper  # the keeper first
    compare.close()

    # only the big group checked; the question first, and No leaves every file
    dialog.set_checked([big])
    others = sorted(scene0 - {files["scene0"]})
    dialog.trash_button.click()
    box = confirmation(window, qtbot)
    assert "Move 3 photos" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    idle(window, qtbot)
    assert all(os.path.isfile(p) for p in scene0 | scene3)

    dialog.trash_button.click()
    confirmation(window, qtbot).trash_button.click()
    idle(window, qtbot)
    assert all(not os.path.exists(p) and (trash / "files" / os.path.basename(p)).is_file() for p in others)
    assert os.path.isfile(files["scene0"]) and all(os.path.isfile(p) for p in scene3)  # the keeper, the unchecked
    assert not any(catalogued(library, p) for p in others)
    qtbot.waitUntil(lambda: len(dialog.groups) == 1, timeout=5_000)  # the group of one is gone
    assert {m.path for m in dialog.groups[0].members} == scene3 and dialog.tree.topLevelItemCount() == 1

    # Undo from the view puts them back
    dialog.undo_button.click()
    idle(window, qtbot)
    assert all(os.path.isfile(p) and catalogued(library, p) for p in others)
    dialog.close()
    qtbot.waitUntil(lambda: window.duplicates_dialog is None, timeout=5_000)
    # the closed view no longer listens: the window's next action reaches only the window
    qtbot.wait(50)  # the dialog's deleteLater
    window.file_actions.undo()
    idle(window, qtbot)
    assert "nothing to undo" in window.statusBar().currentMessage()  # the view's undo was the last


def test_cancel_stops_a_run(make_window, qtbot, acting_library, monkeypatch):
    library, files, _ = acting_library
    window = make_window(library)
    dialog = _open(window, qtbot)
    slow = engine.duplicates.member

    def slow_member(path):  # reading the groups' headers takes a while: time to press Cancel
        time.sleep(0.3)
        return slow(path)

    monkeypatch.setattr(engine.duplicates, "member", slow_member)
    dialog.find_button.click()
    assert dialog.is_running() and dialog.cancel_button.isEnabled() and not dialog.find_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.progress.isVisible(), timeout=1_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)
    assert "Cancelled" in dialog.summary.text()
    assert dialog.groups == [] and dialog.tree.topLevelItemCount() == 0
    assert dialog.find_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert all(os.path.isfile(p) for p in files.values())


def test_closing_the_window_during_a_run_leaves_no_thread(make_window, qtbot, acting_library, monkeypatch):
    library, _, _ = acting_library
    window = make_window(library)
    dialog = _open(window, qtbot)
    slow = engine.duplicates.member
    monkeypatch.setattr(engine.duplicates, "member", lambda path: (time.sleep(0.2), slow(path))[1])
    dialog.find_button.click()
    window.close()  # shutdown cancels the run and waits: the no_thread_left fixture checks nothing runs on


def test_thousands_of_groups_are_shown_a_chunk_at_a_time(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from app.duplicates_view import DuplicateGroup, DuplicatesDialog
    from app.file_actions import FileActions
    from engine.duplicates import Member

    runner = FileActions(tmp_path / "library")
    dialog = DuplicatesDialog(tmp_path / "library", runner, QSettings(str(tmp_path / "s.ini"),
                                                                      QSettings.Format.IniFormat))
    qtbot.addWidget(dialog)
    dialog.show()
    count = 3 * dialog.FILL_CHUNK + 7
    groups = [DuplicateGroup([Member(str(tmp_path / f"g{g}" / f"p{i}.jpg"), 1000 + i, 0, 100) for i in range(2)],
                             str(tmp_path / f"g{g}" / "p0.jpg"), 0.95) for g in range(count)]
    dialog._on_found(groups)
    assert dialog.tree.topLevelItemCount() == dialog.FILL_CHUNK  # the rest come on later turns
    dialog.set_checked([1, count - 1])  # a group not shown yet keeps its state for when it is
    qtbot.waitUntil(lambda: dialog.tree.topLevelItemCount() == count, timeout=10_000)
    # thumbnails only for the rows on screen; scrolling asks for the rest as they come
    requested = set(dialog._requested)
    assert 0 < len(requested) < 100
    last = dialog.tree.topLevelItem(count - 1)
    dialog.tree.scrollToItem(last.child(1))
    qtbot.waitUntil(lambda: str(tmp_path / f"g{count - 1}" / "p1.jpg") in dialog._requested, timeout=5_000)
    assert len(dialog._requested) < 200
    assert dialog.checked_groups() == [1, count - 1]
    assert last.checkState(0) == Qt.CheckState.Checked and "Keep" in last.child(0).text(1)
    last.setCheckState(0, Qt.CheckState.Unchecked)  # as the person's click does
    assert dialog.checked_groups() == [1]
    dialog.shutdown()
