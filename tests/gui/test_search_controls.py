"""The window's search controls on real photos: candidates, re-rank, folder filter, thumbnail size; all persisted."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QObject, QSettings, QSize

from engine.index import Indexer
from engine.library import Library
from tests import photos
from tests.gui.conftest import PHOTOS


@pytest.fixture(scope="module")
def two_root_library(tmp_path_factory, default_model_dir, photo_set):
    """The photo set's originals and, as a second root, a few other photos."""
    base = tmp_path_factory.mktemp("controls")
    other = base / "other"
    for i in range(6):
        photos.save(photos.scene(500 + i, (320, 240)), other / f"o{i}.jpg", quality=90)
    with Library(base / "library") as library:
        library.install_model(default_model_dir)
        Indexer(library, workers=0).run([photo_set["dir"], other])
    return base / "library", str(photo_set["dir"]), str(other)


class ResultsSeen(QObject):
    """Which search request last got its results to the window (connected after the window's own slot,
    so when it hears of a request the grid already shows it)."""

    def __init__(self, window):
        super().__init__(window)
        self.request = -1
        window.search_thread.resultsReady.connect(self.on_results)

    def on_results(self, request_id: int, query_path: str, items: list) -> None:
        self.request = request_id


def _results(window, qtbot, count: int | None = None) -> list:
    """Wait for the answer to the latest request; its items."""
    seen = window.findChild(ResultsSeen) or ResultsSeen(window)
    request = window.search_thread.current_request
    qtbot.waitUntil(lambda: seen.request == request, timeout=20_000)
    model = window.model
    if count is not None:
        assert model.rowCount() == count
    return [model.item(row) for row in range(model.rowCount())]


def test_controls_default_to_auto_pool_and_re_ranking_and_every_folder(make_window, qtbot, two_root_library):
    path, first, second = two_root_library
    window = make_window(path)
    assert window.candidates_combo.currentData() == "pool"
    # the candidates are under Advanced, closed at first
    assert not window.search_panel.is_advanced_open() and not window.candidates_combo.isVisible()
    window.search_panel.advanced_button.click()
    # "Auto" says what it means in a library this small: every photo
    qtbot.waitUntil(lambda: window.pool_spin.text() == "All photos", timeout=10_000)
    assert window.pool_spin.value() == 0
    assert not window.radius_spin.isVisible() and window.pool_spin.isVisible()
    assert window.rerank_check.isChecked()
    assert window.search_folder() is None and window.search_options() == {"rerank": True}
    # The library's roots reach the folder list once its status is read.
    qtbot.waitUntil(lambda: window.folder_combo.findData(second) >= 0, timeout=10_000)
    items = [window.folder_combo.itemText(i) for i in range(window.folder_combo.count())]
    assert items == ["All folders", *sorted([first, second]), "Choose folder…"]


def test_folder_filter_restricts_results_and_changing_it_searches_again(make_window, qtbot, two_root_library,
                                                                        photo_set, monkeypatch):
    path, first, second = two_root_library
    window = make_window(path)
    ResultsSeen(window)
    window.k_spin.setValue(PHOTOS + 6)
    window.search(str(photo_set["originals"][2]))
    items = _results(window, qtbot, PHOTOS + 6)
    assert items[0].path == str(photo_set["originals"][2])
    assert {os.path.dirname(i.path) for i in items} == {first, second}  # both roots compete unfiltered
    window.k_spin.setValue(10)
    _results(window, qtbot, 10)

    qtbot.waitUntil(lambda: window.folder_combo.findData(second) >= 0, timeout=10_000)
    before = window.search_thread.current_request
    window.folder_combo.setCurrentIndex(window.folder_combo.findData(second))
    window.folder_combo.activated.emit(window.folder_combo.currentIndex())  # what a click does
    assert window.search_thread.current_request == before + 1  # the query ran again
    items = _results(window, qtbot, 6)  # k=10 but the folder has 6: all of them, nothing else
    assert all(os.path.dirname(i.path) == second for i in items)
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)

    # "Choose folder…" asks for any folder; one outside the library gives no results.
    from PySide6.QtWidgets import QFileDialog

    sub = os.path.join(second, "nothing-here")
    os.makedirs(sub, exist_ok=True)
    chosen = []
    choose = window.folder_combo.findData(window._CHOOSE_FOLDER)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: chosen.append(a) or sub))
    window.folder_combo.setCurrentIndex(choose)
    window.folder_combo.activated.emit(choose)
    assert chosen and window.search_folder() == sub
    assert window.folder_combo.currentText() == sub
    assert _results(window, qtbot, 0) == []


def test_radius_and_no_rerank_change_the_candidates(make_window, qtbot, two_root_library, photo_set):
    path, first, second = two_root_library
    window = make_window(path)
    ResultsSeen(window)
    window.k_spin.setValue(PHOTOS + 6)
    query = str(photo_set["originals"][4])
    window.search(query)
    everything = _results(window, qtbot, PHOTOS + 6)

    window.search_panel.advanced_button.click()
    window.candidates_combo.setCurrentIndex(window.candidates_combo.findData("radius"))
    assert window.radius_spin.isVisible() and not window.pool_spin.isVisible()
    window.radius_spin.setValue(0)  # only codes identical to the query's
    items = _results(window, qtbot)
    assert window.search_options()["radius"] == 0
    assert items and items[0].path == query and all(i.hamming == 0 for i in items)
    assert len(items) < len(everything)

    window.candidates_combo.setCurrentIndex(window.candidates_combo.findData("pool"))
    window.rerank_check.setChecked(False)
    assert not window.pool_spin.isEnabled()  # without re-ranking there is no pool
    items = _results(window, qtbot, PHOTOS + 6)
    hamming = [i.hamming for i in items]
    assert hamming == sorted(hamming)  # ranked by code distance alone
    assert window.search_options() == {"rerank": False}

    window.rerank_check.setChecked(True)
    window.pool_spin.setValue(3)
    assert window.search_options() == {"rerank": True, "pool": 3}
    items = _results(window, qtbot, PHOTOS + 6)  # k wins over a smaller pool (the engine keeps max(k, pool))
    assert items[0].path == query


def test_controls_and_thumbnail_size_persist(make_window, qtbot, two_root_library, tmp_path):
    path, first, second = two_root_library
    window = make_window(path)
    qtbot.waitUntil(lambda: window.folder_combo.findData(second) >= 0, timeout=10_000)
    window.candidates_combo.setCurrentIndex(window.candidates_combo.findData("radius"))
    window.radius_spin.setValue(9)
    window.pool_spin.setValue(1500)
    window.rerank_check.setChecked(False)
    window.set_search_folder(second)
    assert window.view.iconSize() == QSize(160, 160) and window.thumbnail_size() == "medium"
    window.thumbnail_actions["large"].trigger()
    assert window.view.iconSize() == QSize(240, 240) and window.model.loader.size == QSize(240, 240)
    window.close()

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert settings.value("view/thumbnail_size") == "large"
    again = make_window(path)
    assert again.candidates_combo.currentData() == "radius" and again.radius_spin.value() == 9
    assert again.pool_spin.value() == 1500 and not again.rerank_check.isChecked()
    assert again.search_folder() == second
    assert again.search_options() == {"rerank": False, "radius": 9, "folder": second}
    assert again.thumbnail_size() == "large" and again.view.iconSize() == QSize(240, 240)
    again.thumbnail_actions["small"].trigger()
    assert again.view.iconSize() == QSize(96, 96)
