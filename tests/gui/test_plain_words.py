"""The window in plain words, measured as a person sees it: similarity on the tiles, the Strict <-> Loose line, a small window."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor

from app.results import BelowFloorRole, SIMILARITY_COLOURS, SimilarityRole
from engine.similarity import DEFAULT_FLOOR, LABELS, SAME, VERY
from tests.similar_photos import indexed_planted


@pytest.fixture(scope="module")
def planted_library(tmp_path_factory, default_model_dir):
    return indexed_planted(tmp_path_factory.mktemp("plain-words"), default_model_dir)


def _search(window, qtbot, query) -> list:
    window.search(str(query))
    qtbot.waitUntil(lambda: window.results_are_current() and window.model.rowCount() > 0, timeout=30_000)
    return [window.model.item(row) for row in range(window.model.rowCount())]


def _close(colour: QColor, expected: QColor, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour.getRgb()[:3], expected.getRgb()[:3]))


def test_copies_read_alike_and_unrelated_photos_sit_below_the_line(make_window, qtbot, planted_library):
    path, photos = planted_library
    window = make_window(path)
    items = _search(window, qtbot, photos["query"])
    by_path = {item.path: item for item in items}
    copies = [str(p) for p in [photos["query"], *photos["copies"].values()]]
    unrelated = [str(p) for p in photos["unrelated"].values()]
    assert all(by_path[p].similarity >= VERY for p in copies)
    assert all(by_path[p].similarity < DEFAULT_FLOOR for p in unrelated)
    model = window.model
    # the line: the copies lead, the unrelated pictures follow it, dimmed
    assert model.lookalike_count() == len(copies)
    assert [model.index(r).data(BelowFloorRole) for r in range(len(items))] == \
        [0] * len(copies) + [1] + [2] * (len(items) - len(copies) - 1)
    assert window.search_panel.strictness_caption.text() == f"Similar or closer: {len(copies)} of {len(items)} results"
    assert window.statusBar().currentMessage().startswith(f"{len(copies)} lookalikes, {len(items) - len(copies)} less alike")

    # what is on screen: each tile's pill in its level's colour; the line on the first tile below it
    qtbot.waitUntil(lambda: window.view.viewport().isVisible(), timeout=5_000)
    shot = window.view.viewport().grab().toImage()
    for row in (0, len(copies) - 1):
        rect = window.view.visualRect(model.index(row))
        level = model.index(row).data(SimilarityRole)
        pill = shot.pixelColor(rect.right() - 8, rect.top() + 6)
        assert _close(pill, SIMILARITY_COLOURS[level]), (row, pill.name())
    first_below = window.view.visualRect(model.index(len(copies)))
    line = shot.pixelColor(first_below.left() + 1, first_below.center().y())
    assert _close(line, window.view.palette().highlight().color())
    dimmed = shot.pixelColor(first_below.center())
    plain = window.view.visualRect(model.index(0))
    assert dimmed.lightness() > 128 or dimmed != shot.pixelColor(plain.center())


def test_the_slider_moves_the_line_without_searching_again(make_window, qtbot, planted_library, tmp_path):
    path, photos = planted_library
    window = make_window(path)
    items = _search(window, qtbot, photos["query"])
    request = window.search_thread.current_request
    slider = window.search_panel.strictness_slider
    assert window.search_panel.floor() == DEFAULT_FLOOR
    slider.setValue(slider.minimum())  # Strict: only the same photo
    same = sum(1 for item in items if item.similarity == SAME)
    assert window.model.lookalike_count() == same and window.search_panel.floor() == SAME
    assert window.search_panel.strictness_caption.text().startswith("Only the same photo")
    slider.setValue(slider.maximum())  # Loose
    assert window.model.lookalike_count() >= len(photos["copies"]) + 1
    assert window.search_thread.current_request == request  # the same results, the line moved
    window.close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    again = make_window(path)
    assert again.search_panel.strictness_slider.value() == slider.maximum()
    assert int(settings.value("search/floor")) == again.search_panel.floor()


def test_tooltips_put_the_words_first_and_the_figures_under_advanced(make_window, qtbot, planted_library):
    path, photos = planted_library
    window = make_window(path)
    _search(window, qtbot, photos["query"])
    tip = window.model.index(0).data(3)  # ToolTipRole
    assert tip.startswith(LABELS[SAME]) and "Hamming" not in tip
    assert not window.search_panel.advanced_box.isVisible()
    window.search_panel.advanced_button.click()
    assert window.search_panel.advanced_box.isVisible() and window.rerank_check.isVisible()
    assert "64-bit code" in window.search_panel.candidates_note.text()
    assert "Hamming distance" in window.model.index(0).data(3)


@pytest.mark.parametrize("advanced", [False, True])
def test_a_small_window_gives_the_grid_three_columns(make_window, qtbot, planted_library, advanced):
    path, photos = planted_library
    window = make_window(path)
    if advanced:
        window.search_panel.advanced_button.click()
    window.resize(800, 600)
    _search(window, qtbot, photos["query"])
    qtbot.waitUntil(lambda: window.view.viewport().width() > 0, timeout=5_000)
    columns = window.view.viewport().width() // window.view.gridSize().width()
    assert columns >= 3, (window.splitter.sizes(), window.view.viewport().width())
    # growing the window gives the grid the room; the left panel stops at its widest
    window.resize(1400, 800)
    qtbot.waitUntil(lambda: window.splitter.sizes()[1] > 1000, timeout=5_000)
    assert window.splitter.sizes()[0] <= window.LEFT_WIDTH


def test_with_re_ranking_off_the_dimming_follows_the_words(make_window, qtbot, planted_library):
    path, photos = planted_library
    window = make_window(path)
    window.rerank_check.setChecked(False)  # Hamming order: the words need not fall down the list
    items = _search(window, qtbot, photos["query"])
    model = window.model
    below = [model.index(row).data(BelowFloorRole) for row in range(len(items))]
    assert [b == 0 for b in below] == [item.similarity >= DEFAULT_FLOOR for item in items]
    assert below.count(1) == 1 and model.lookalike_count() == below.count(0)
