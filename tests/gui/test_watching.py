"""Indexing in the background and watching folders, driven through the window on real photos."""

from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QWizard

from engine.index import Indexer, indexed_suffixes
from engine.library import Library
from tests import photos
from tests.gui.conftest import PHOTOS


@pytest.fixture
def options(default_model_dir):
    """Wizard/service options for these tests: the session's model, one decoder, a short debounce."""
    return {"model_provider": lambda: default_model_dir, "indexer_options": {"workers": 1}, "watch_debounce": 0.3}


@pytest.fixture
def small_library(tmp_path, default_model_dir):
    """A library of four photos in one root (a fresh one per test: watching writes to it)."""
    root = tmp_path / "watched"
    for i in range(4):
        photos.save(photos.scene(600 + i, (320, 240)), root / f"w{i}.jpg", quality=90)
    with Library(tmp_path / "library") as library:
        library.install_model(default_model_dir)
        Indexer(library, workers=0).run([root])
    return tmp_path / "library", root


def _watching(window, qtbot):
    qtbot.waitUntil(window.indexing.is_watching, timeout=10_000)
    assert window.indexing.watcher.wait_ready(10)


def _status_images(window) -> int:
    return int(window._status.get("images") or 0)


def test_a_photo_copied_into_a_watched_folder_becomes_searchable(make_window, qtbot, small_library, photo_set,
                                                                 options):
    path, root = small_library
    window = make_window(path, wizard_options=options)
    assert window.watch_action.isChecked()  # on by default
    _watching(window, qtbot)
    assert window.indexing.watcher.roots == [str(root)]

    copy = root / "new" / "copied.jpg"
    copy.parent.mkdir()
    shutil.copy(photo_set["originals"][9], copy)
    qtbot.waitUntil(lambda: _status_images(window) == 5, timeout=30_000)
    window.k_spin.setValue(3)
    window.search(str(photo_set["originals"][9]))
    qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=20_000)
    assert window.model.item(0).path == str(copy)

    (root / "w1.jpg").unlink()
    qtbot.waitUntil(lambda: _status_images(window) == 4, timeout=30_000)
    with Library(path) as library:
        assert library.store.image_by_path(str(root / "w1.jpg")) is None


def test_watching_can_be_turned_off_and_the_choice_persists(make_window, qtbot, small_library, options, tmp_path):
    path, root = small_library
    window = make_window(path, wizard_options=options)
    _watching(window, qtbot)
    window.watch_action.trigger()
    assert not window.watch_action.isChecked() and not window.indexing.is_watching()
    photos.save(photos.scene(620, (320, 240)), root / "unseen.jpg")
    qtbot.wait(1500)  # several debounce periods: nothing may be applied
    assert not window.indexing.is_busy()
    with Library(path, readonly=True) as library:
        assert library.store.image_by_path(str(root / "unseen.jpg")) is None
    window.close()
    assert QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat).value("watch/enabled") in (
        False, "false")
    again = make_window(path, wizard_options=options)
    qtbot.waitUntil(lambda: _status_images(again) == 4, timeout=10_000)
    assert not again.watch_action.isChecked() and not again.indexing.is_watching()
    again.watch_action.trigger()  # back on: watching starts with the roots it knows
    _watching(again, qtbot)
    again.close()  # the watcher's threads (not QThreads, so not seen by the fixture) end with the window
    assert not [t.name for t in threading.enumerate() if t.name == "lookalike-watch"]
    assert not [t for t in threading.enumerate() if type(t).__module__.startswith("watchdog")]


def test_indexing_goes_on_when_the_wizard_is_hidden_and_shows_in_the_status_bar(make_window, qtbot, tmp_path,
                                                                                photo_set, default_model_dir):
    path = tmp_path / "background"
    options = {"model_provider": lambda: default_model_dir,
               "indexer_options": {"workers": 1, "batch_size": 2}, "watch_debounce": 0.3}
    window = make_window(path, wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    wizard.folders_page.add_folder(photo_set["dir"])
    wizard.next()
    qtbot.waitUntil(wizard.options_page.isComplete, timeout=10_000)
    wizard.next()
    wizard.next()  # Index
    assert window.indexing.is_indexing()
    assert wizard.button(QWizard.WizardButton.CancelButton).text() == "Hide"
    labels = []
    window.indexing.progress.connect(lambda p: labels.append(window.indexing_label.text()))
    qtbot.waitUntil(lambda: window.indexing.last_progress is not None
                    and window.indexing.last_progress.phase == "indexing", timeout=30_000)
    wizard.reject()  # "Hide"
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)
    assert window.indexing.is_indexing()
    assert window.indexing_bar.isVisible() and window.indexing_cancel.isVisible()

    window.open_wizard()  # again, while it runs: straight to the progress page
    wizard = window.wizard
    assert wizard.currentId() == wizard.progress_id
    page = wizard.progress_page
    qtbot.waitUntil(page.isComplete, timeout=60_000)
    assert page.report is not None and page.report.added == PHOTOS and not page.report.cancelled
    assert f"{PHOTOS} indexed" in page.stage.text()
    assert any(text.startswith("Indexing ") and f"/ {PHOTOS}" in text for text in labels), labels
    assert not window.indexing_bar.isVisible()
    qtbot.waitUntil(lambda: f"{PHOTOS} photos" in window.library_status.text(), timeout=10_000)
    assert "Indexing done" in window.statusBar().currentMessage()
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)
    _watching(window, qtbot)  # the new root is watched once indexed


def test_cancel_from_the_status_bar_and_quitting_while_indexing(make_window, qtbot, tmp_path, photo_set,
                                                                default_model_dir):
    path = tmp_path / "quitting"
    options = {"model_provider": lambda: default_model_dir,
               "indexer_options": {"workers": 1, "batch_size": 2}, "watch_debounce": 0.3}
    window = make_window(path, wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    wizard.folders_page.add_folder(photo_set["dir"])
    wizard.next()
    qtbot.waitUntil(wizard.options_page.isComplete, timeout=10_000)
    wizard.next()
    wizard.next()
    wizard.reject()
    qtbot.waitUntil(lambda: window.indexing.last_progress is not None
                    and window.indexing.last_progress.phase == "indexing"
                    and window.indexing.last_progress.done >= 1, timeout=30_000)
    qtbot.mouseClick(window.indexing_cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.indexing.is_indexing(), timeout=30_000)
    report = window.indexing.report
    assert report.cancelled and report.added < PHOTOS
    assert "Indexing cancelled" in window.statusBar().currentMessage()

    window.open_wizard()  # not running any more: the wizard starts from the folders
    assert window.wizard.currentId() == window.wizard.folders_id
    qtbot.waitUntil(lambda: window.wizard.folders_page.folders() == [str(photo_set["dir"])], timeout=10_000)
    window.wizard.next()
    qtbot.waitUntil(window.wizard.options_page.isComplete, timeout=10_000)
    window.wizard.next()
    window.wizard.next()  # index again, then quit in the middle
    qtbot.waitUntil(lambda: window.indexing.last_progress is not None
                    and window.indexing.last_progress.phase == "indexing", timeout=30_000)
    window.close()  # cancels and waits: the fixture fails the test if a thread is left
    assert not window.indexing.is_busy() and not window.indexing.is_indexing()
    with Library(path) as library:
        assert library.store.last_run()["status"] in ("cancelled", "complete")
        assert library.status()["images"] >= report.added


def test_wizard_options_reach_the_library_and_the_settings(make_window, qtbot, tmp_path, default_model_dir):
    root = tmp_path / "mixed"
    for i in range(3):
        photos.save(photos.scene(640 + i, (320, 240)), root / f"j{i}.jpg")
    photos.save(photos.scene(650, (320, 240)), root / "p.png")
    photos.save(photos.scene(651, (320, 240)), root / "Private" / "secret.jpg")
    asked_bits = []

    def provider(bits):
        asked_bits.append(bits)
        return default_model_dir

    path = tmp_path / "options-library"
    window = make_window(path, wizard_options={"model_provider": provider, "indexer_options": {},
                                               "watch_debounce": 0.3})
    window.open_wizard()
    wizard = window.wizard
    wizard.folders_page.add_folder(root)
    wizard.next()
    page = wizard.options_page
    qtbot.waitUntil(page.isComplete, timeout=10_000)
    assert not page.bits_combo.isVisible()  # under Advanced, closed at first
    page.advanced.button.click()
    assert page.bits_combo.isVisible() and page.bits_combo.currentData() == 64  # a new library: choose
    assert [page.device_combo.itemData(i) for i in range(2)] == ["auto", "cpu"]
    page.bits_combo.setCurrentIndex(page.bits_combo.findData(32))
    page.device_combo.setCurrentIndex(page.device_combo.findData("cpu"))
    page.threads_spin.setValue(1)
    page.exclusion_edit.setText("Private")
    page.exclusion_edit.returnPressed.emit()
    page.exclusion_edit.setText("*.tmp")
    page.exclusion_edit.returnPressed.emit()
    page.exclusions.setCurrentRow(1)
    page.remove_selected_exclusions()
    assert page.exclusion_patterns() == ["Private"]
    page.type_boxes["PNG"].setChecked(False)
    for box in page.type_boxes.values():
        box.setChecked(False)
    assert not page.isComplete()  # at least one type
    for name, box in page.type_boxes.items():
        box.setChecked(name != "PNG")
    wizard.next()
    summary = wizard.summary_page
    qtbot.waitUntil(lambda: summary.count is not None, timeout=10_000)
    assert summary.count == 3  # the JPEGs outside Private
    text = summary.options_label.text()
    assert "Leaving out: Private" in text and "32-bit" in text and "CPU · 1 decoder" in text and "PNG" not in text
    wizard.next()
    qtbot.waitUntil(wizard.progress_page.isComplete, timeout=60_000)
    assert wizard.progress_page.report.added == 3 and asked_bits == [32]
    assert window.indexing.indexer_options() == {"workers": 1, "providers": "cpu"}
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert int(settings.value("indexing/threads")) == 1 and settings.value("indexing/provider") == "cpu"
    with Library(path) as library:
        assert library.store.exclusions() == ["Private"]
        assert ".png" not in indexed_suffixes(library.store) and ".jpg" in indexed_suffixes(library.store)

    window.open_wizard()  # the library's choices come back; its model is shown, not chosen
    wizard = window.wizard
    qtbot.waitUntil(lambda: wizard.folders_page.folders() == [str(root)], timeout=10_000)
    wizard.next()
    page = wizard.options_page
    qtbot.waitUntil(page.isComplete, timeout=10_000)
    assert page.exclusion_patterns() == ["Private"] and not page.type_boxes["PNG"].isChecked()
    page.advanced.button.click()
    assert not page.bits_combo.isVisible() and "Default model" in page.model_label.text()
    assert "64-bit codes" in page.model_label.toolTip()
    assert page.device_combo.currentData() == "cpu" and page.threads_spin.value() == 1
    wizard.reject()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)


def test_durations_and_time_left_read_naturally():
    from app.indexing import format_duration, time_left

    assert [format_duration(s) for s in (None, 0.4, 42, 185, 7500)] == ["–", "0 s", "42 s", "3 min 05 s", "2 h 05 min"]
    assert format_duration(185, compact=True) == "3 min"
    assert time_left(0.36) == "almost done"  # not "about 0 s left"
    assert time_left(185) == "about 3 min 05 s left" and time_left(185, compact=True) == "ETA 3 min"
