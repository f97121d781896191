"""The desktop window driven offscreen on real photos: drop to search, thumbnails, wizard, cancel, empty state."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QImage
from PySide6.QtWidgets import QApplication

from engine.library import Library
from tests import photos
from tests.gui.conftest import PHOTOS


def _drop(window, mime: QMimeData) -> None:
    """What a file manager's drag does: enter (Qt only delivers a drop where one was accepted), drop."""
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:
        enter = QDragEnterEvent(QPointF(20, 20), *args)  # PySide6 >= 6.12 (where a QPoint is deprecated)
    except TypeError:
        enter = QDragEnterEvent(QPoint(20, 20), *args)  # before 6.12
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), *args)
    assert QApplication.sendEvent(window, drop) and drop.isAccepted()


def test_window_starts_with_the_library(make_window, qtbot, indexed_library):
    window = make_window(indexed_library)
    qtbot.waitUntil(lambda: f"{PHOTOS} photos" in window.library_status.text(), timeout=10_000)
    assert "model v1" in window.library_status.toolTip() and "Default model" in window.library_status.text()
    assert not window.is_empty_state()
    assert window.k_spin.value() == 50


def test_settings_persist_k_geometry_and_library(make_window, qtbot, indexed_library, tmp_path):
    window = make_window(indexed_library)
    window.k_spin.setValue(7)
    window.resize(720, 520)  # inside the offscreen screen (800 x 600), which a restore clamps to
    window.close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert settings.value("library") == str(indexed_library)
    again = make_window(None)  # the library location comes from the settings
    assert again.library_path == indexed_library
    assert again.k_spin.value() == 7 and again.size() == window.size()
    qtbot.waitUntil(lambda: f"{PHOTOS} photos" in again.library_status.text(), timeout=10_000)


def test_drop_of_an_edited_copy_finds_the_original_first_with_thumbnails(make_window, qtbot, indexed_library,
                                                                        photo_set):
    window = make_window(indexed_library)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo_set["edits"]["resized"]))])
    _drop(window, mime)
    model = window.model
    qtbot.waitUntil(lambda: model.rowCount() == PHOTOS, timeout=20_000)  # k=50 > library size
    assert model.item(0).path == str(photo_set["originals"][3])
    tooltip = model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert tooltip.startswith("Same photo") and "Hamming distance" not in tooltip  # words first
    window.search_panel.advanced_button.click()  # Advanced open: the figures too
    tooltip = model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "score" in tooltip and "Hamming distance" in tooltip
    assert model.item(0).thumb and os.path.exists(model.item(0).thumb)

    assert model.data(model.index(0), Qt.ItemDataRole.DecorationRole) is model.placeholder or model.thumbnail_loaded(0)
    qtbot.waitUntil(lambda: model.thumbnail_loaded(0), timeout=10_000)
    icon = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    assert isinstance(icon, QIcon) and not icon.isNull() and icon is not model.placeholder
    qtbot.waitUntil(lambda: not window.query_label.pixmap().isNull(), timeout=10_000)

    # Image data (a browser drag, a paste) is searched through a temporary file.
    mime = QMimeData()
    mime.setImageData(QImage(str(photo_set["originals"][5])))
    assert window.accept_mime(mime)
    qtbot.waitUntil(lambda: model.rowCount() and model.item(0).path == str(photo_set["originals"][5]),
                    timeout=20_000)


def test_result_menu_copies_the_path_and_finds_lookalikes_of_a_result(make_window, qtbot, indexed_library,
                                                                       photo_set):
    window = make_window(indexed_library)
    window.k_spin.setValue(5)
    window.search(str(photo_set["originals"][7]))
    model = window.model
    qtbot.waitUntil(lambda: model.rowCount() == 5, timeout=20_000)
    menu = window.result_menu(model.index(2))
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert set(actions) == {"Open", "Reveal in file manager", "Copy path", "Preview", "Compare with the query",
                            "Find lookalikes of this", "Mark similar to the query", "Mark dissimilar to the query",
                            "Move to Trash…", "Move to Folder…", "Copy to Folder…"}  # app.file_actions
    third = model.item(2).path
    actions["Copy path"].trigger()
    assert QApplication.clipboard().text() == third
    actions["Find lookalikes of this"].trigger()
    qtbot.waitUntil(lambda: model.rowCount() == 5 and model.item(0).path == third, timeout=20_000)


def test_empty_state_for_a_missing_and_an_empty_library(make_window, qtbot, tmp_path, default_model_dir):
    window = make_window(tmp_path / "nowhere")
    qtbot.waitUntil(window.is_empty_state, timeout=10_000)
    assert "No library" in window.library_status.text()
    assert not (tmp_path / "nowhere").exists()  # looking never creates a library

    with Library(tmp_path / "empty") as library:
        library.install_model(default_model_dir)
    window = make_window(tmp_path / "empty")
    qtbot.waitUntil(lambda: window.is_empty_state() and "0 photos" in window.library_status.text(),
                    timeout=10_000)
    qtbot.mouseClick(window.empty_button, Qt.MouseButton.LeftButton)
    assert window.wizard is not None and window.wizard.isVisible()
    window.wizard.reject()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)


def test_wizard_indexes_folders_end_to_end(make_window, qtbot, tmp_path, photo_set):
    window = make_window(tmp_path / "new-library")
    qtbot.waitUntil(window.is_empty_state, timeout=10_000)
    window.open_wizard()
    wizard = window.wizard
    assert not wizard.button(wizard.WizardButton.NextButton).isEnabled()  # no folder yet
    wizard.folders_page.add_folder(photo_set["dir"])
    wizard.folders_page.add_folder(photo_set["broken"])
    wizard.next()  # the options page, filled once the library has been read
    qtbot.waitUntil(wizard.options_page.isComplete, timeout=10_000)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.summary_page.count == PHOTOS + 2, timeout=10_000)
    assert "image files in 2 folder(s)" in wizard.summary_page.label.text()
    wizard.next()  # the commit page's "Index"
    page = wizard.progress_page
    qtbot.waitUntil(page.isComplete, timeout=30_000)
    assert page.error is None
    report = page.report
    assert (report.found, report.added, report.skipped, report.cancelled) == (PHOTOS + 2, PHOTOS, 2, False)
    assert page.skipped.count() == 2 and "half.jpg" in page.skipped.item(0).text() + page.skipped.item(1).text()
    assert f"{PHOTOS} indexed" in page.stage.text()
    wizard.accept()
    qtbot.waitUntil(lambda: not window.is_empty_state() and f"{PHOTOS} photos" in window.library_status.text(),
                    timeout=10_000)
    window.search(str(photo_set["edits"]["cropped"]))
    qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=20_000)
    assert window.model.item(0).path == str(photo_set["originals"][3])


def test_cancel_during_indexing_stops_cleanly_and_leaves_the_library_usable(make_window, qtbot, tmp_path,
                                                                            photo_set, default_model_dir):
    path = tmp_path / "cancelled"
    window = make_window(path, wizard_options={"model_provider": lambda: default_model_dir,
                                               "indexer_options": {"workers": 1, "batch_size": 2}})
    window.open_wizard()
    wizard = window.wizard
    wizard.folders_page.add_folder(photo_set["dir"])
    wizard.next()
    qtbot.waitUntil(wizard.options_page.isComplete, timeout=10_000)
    wizard.next()
    wizard.next()
    page = wizard.progress_page

    def cancel_once_indexing(progress):
        if progress.phase == "indexing" and progress.done >= 1 and page.cancel_button.isEnabled():
            qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)

    window.indexing.progress.connect(cancel_once_indexing)
    qtbot.waitUntil(page.isComplete, timeout=30_000)
    assert page.report is not None and page.report.cancelled
    assert page.report.added < PHOTOS
    assert "Cancelled" in page.stage.text()
    assert not window.indexing.is_busy()
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)

    with Library(path) as library:  # usable: what was committed is searchable
        assert library.status()["images"] == page.report.added
        if page.report.added:
            assert library.search_file(photo_set["originals"][0])
