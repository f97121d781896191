"""Refining results in the window, offscreen on real photos: marks re-rank at once, as `lookalike search` does."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from PIL import Image, ImageEnhance
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QColor

from app import cli
from app.labeling import DISSIMILAR, FEEDBACK_SOURCE, PAIR_SOURCE, SIMILAR
from app.results import MARK_COLOURS, MarkRole
from app.theme import palette
from engine.index import Indexer
from engine.library import Library
from engine.store import Store
from tests import photos
from tests.gui.test_window import _drop

KINDS, PER_KIND = 4, 5  # kinds of photo, each a scene and its variations
PHOTOS = KINDS * PER_KIND


def _variations(base: Image.Image) -> list[Image.Image]:
    """A scene as a person's library holds it several times: reframed, mirrored, lighter, tilted."""
    w, h = base.size
    return [base,
            base.crop((w // 8, h // 8, w - w // 8, h - h // 8)).resize((w, h)),
            base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            ImageEnhance.Brightness(base).enhance(1.3),
            base.rotate(8).crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w, h))]


@pytest.fixture(scope="module")
def kinds_library(tmp_path_factory, default_model_dir):
    """(library, {kind: [paths]}): KINDS kinds of PER_KIND photos each, indexed."""
    base = tmp_path_factory.mktemp("refine-window")
    kinds = {}
    for kind in range(KINDS):
        scene = photos.scene(720 + kind, (320, 240))
        kinds[kind] = [str(photos.save(image, base / "photos" / f"k{kind}_{i}.jpg", quality=90))
                       for i, image in enumerate(_variations(scene)[:PER_KIND])]
    with Library(base / "library") as library:
        library.install_model(default_model_dir)
        assert Indexer(library, workers=0).run([base / "photos"]).added == PHOTOS
    return base / "library", kinds


@pytest.fixture
def library(tmp_path, kinds_library):
    """A private copy (the marks write labels)."""
    path = tmp_path / "library"
    shutil.copytree(kinds_library[0], path)
    return path, kinds_library[1]


def _paths(window) -> list[str]:
    return [window.model.item(row).path for row in range(window.model.rowCount())]


def _wait_results(window, qtbot) -> list[str]:
    qtbot.waitUntil(lambda: window.results_are_current() and window.model.rowCount() > 0, timeout=30_000)
    return _paths(window)


def _cli_paths(capsys, library, *args) -> list[str]:
    capsys.readouterr()
    assert cli.main(["search", "--library", str(library), "--json", *args]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    return [result["path"] for result in json.loads(line)["results"]]


def _labels(path) -> dict[tuple[str, str], tuple[int, str]]:
    with Store.open(path, create=False) as store:
        return {row.key: (row.label, row.source) for row in store.label_rows()}


def _key(path, a, b) -> tuple[str, str]:
    with Store.open(path, create=False) as store:
        return tuple(sorted((store.image_by_path(a).content_hash, store.image_by_path(b).content_hash)))


def _select(window, qtbot, path) -> None:
    """Give the grid the keyboard with the tile of ``path`` selected (as a click does)."""
    row = window.model.row_of(path)
    assert row >= 0, path
    window.view.selectionModel().clearSelection()
    window.view.setCurrentIndex(window.model.index(row))
    window.activateWindow()
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus, timeout=5_000)


def _mean_rank(order: list[str], paths: list[str]) -> float:
    return sum(order.index(p) for p in paths) / len(paths)


def _frame_colour(window, path) -> QColor:
    """The colour drawn just inside the top edge of a tile, halfway along it."""
    rect = window.view.visualRect(window.model.index(window.model.row_of(path)))
    image = window.view.viewport().grab().toImage()
    return image.pixelColor(rect.center().x(), rect.top() + 2)


def _close(a: QColor, b: QColor, tolerance: int = 40) -> bool:
    return max(abs(a.red() - b.red()), abs(a.green() - b.green()), abs(a.blue() - b.blue())) <= tolerance


def test_marks_refine_at_once_last_store_labels_and_rank_as_the_cli(make_window, qtbot, library, capsys):
    path, kinds = library
    window = make_window(path)
    window.k_spin.setValue(PHOTOS)
    query = kinds[0][0]
    window.search(query)
    plain = _wait_results(window, qtbot)
    assert plain == _cli_paths(capsys, path, "-k", str(PHOTOS), query)  # the window ranks as the CLI
    assert not window.refine_bar.isVisible()

    # S on a tile of the kind ranked last: the rest of that kind moves up, at once
    far = max((1, 2, 3), key=lambda kind: _mean_rank(plain, kinds[kind]))
    liked, others = kinds[far][0], kinds[far][1:]
    _select(window, qtbot, liked)
    qtbot.keyClick(window.view, Qt.Key.Key_S)
    assert window.marks() == {liked: SIMILAR}
    assert window.model.data(window.model.index(window.model.row_of(liked)), MarkRole) == SIMILAR  # before the search
    refined = _wait_results(window, qtbot)
    assert _mean_rank(refined, others) < _mean_rank(plain, others) - 2  # 15.0 -> 7.25 here
    assert window.refine_bar.isVisible() and window.refine_label.text() == "Refined by 1 similar"
    assert window.selected_paths() == [liked]  # the person stays where they were
    qtbot.waitUntil(lambda: _labels(path).get(_key(path, query, liked)) == (SIMILAR, FEEDBACK_SOURCE),
                    timeout=10_000)

    # The mark is drawn, in the light and the dark palette, and survives a re-render
    for theme in ("light", "dark"):
        window.view.setPalette(palette(theme))
        assert _close(_frame_colour(window, liked), MARK_COLOURS[SIMILAR]), theme
        unmarked = next(p for p in refined if p not in (liked, query))
        assert not _close(_frame_colour(window, unmarked), MARK_COLOURS[SIMILAR]), theme
    window.set_thumbnail_size("small")
    assert window.model.mark(window.model.row_of(liked)) == SIMILAR
    assert _close(_frame_colour(window, liked), MARK_COLOURS[SIMILAR])
    window.set_thumbnail_size("medium")

    # D: the photo leaves the results; the label is stored; the ranking is the CLI's with --like/--unlike
    near = next(p for p in refined if p not in kinds[0] and p not in kinds[far])
    _select(window, qtbot, near)
    qtbot.keyClick(window.view, Qt.Key.Key_D)
    assert window.model.data(window.model.index(window.model.row_of(near)), MarkRole) == DISSIMILAR
    both = _wait_results(window, qtbot)
    assert near not in both and len(both) == PHOTOS - 1
    assert window.refine_label.text() == "Refined by 1 similar, 1 dissimilar"
    assert both == _cli_paths(capsys, path, "-k", str(PHOTOS), "--like", liked, "--unlike", near, query)
    qtbot.waitUntil(lambda: _labels(path).get(_key(path, query, near)) == (DISSIMILAR, FEEDBACK_SOURCE),
                    timeout=10_000)

    # U on the similar one: its mark and its label go, the other mark and label stay
    _select(window, qtbot, liked)
    qtbot.keyClick(window.view, Qt.Key.Key_U)
    assert window.marks() == {near: DISSIMILAR}
    assert window.model.mark(window.model.row_of(liked)) == 0
    unmarked = _wait_results(window, qtbot)
    assert unmarked == _cli_paths(capsys, path, "-k", str(PHOTOS), "--unlike", near, query)
    assert not _close(_frame_colour(window, liked), MARK_COLOURS[SIMILAR])
    qtbot.waitUntil(lambda: _key(path, query, liked) not in _labels(path), timeout=10_000)
    assert _labels(path) == {_key(path, query, near): (DISSIMILAR, FEEDBACK_SOURCE)}
    assert window.refine_label.text() == "Refined by 1 dissimilar"

    # Clear: the plain ranking again; the labels stay
    window.clear_refinement_button.click()
    assert _wait_results(window, qtbot) == plain
    assert not window.refine_bar.isVisible() and window.marks() == {}
    assert _labels(path) == {_key(path, query, near): (DISSIMILAR, FEEDBACK_SOURCE)}


def test_unmarking_puts_back_the_label_the_pair_had(make_window, qtbot, library):
    path, kinds = library
    query, result = kinds[1][0], kinds[1][2]
    with Store.open(path, create=False) as store:
        a, b = (store.image_by_path(p).content_hash for p in (query, result))
        store.add_label(a, b, DISSIMILAR, source=PAIR_SOURCE)  # labelled in the pair view once
    key = _key(path, query, result)
    window = make_window(path)
    window.search(query)
    _wait_results(window, qtbot)
    window.mark_results([result], SIMILAR)
    qtbot.waitUntil(lambda: _labels(path)[key] == (SIMILAR, FEEDBACK_SOURCE), timeout=10_000)
    window.mark_results([result], DISSIMILAR)  # marked again, the other way
    qtbot.waitUntil(lambda: _labels(path)[key] == (DISSIMILAR, FEEDBACK_SOURCE), timeout=10_000)
    _wait_results(window, qtbot)
    window.unmark_results([result])
    qtbot.waitUntil(lambda: _labels(path)[key] == (DISSIMILAR, PAIR_SOURCE), timeout=10_000)
    assert window.marks() == {}


def test_several_dropped_photos_search_together_as_the_cli(make_window, qtbot, library, capsys):
    path, kinds = library
    window = make_window(path)
    window.k_spin.setValue(10)
    together = [kinds[0][0], kinds[2][0], kinds[3][1]]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(p) for p in together])
    _drop(window, mime)
    results = _wait_results(window, qtbot)
    assert window.query_caption.text().startswith("3 photos, searched together")
    qtbot.waitUntil(lambda: not window.query_label.pixmap().isNull(), timeout=10_000)
    assert window.labeling.shown_query == tuple(together)
    assert results == _cli_paths(capsys, path, "-k", "10", "--together", *together)

    # marks refine a query of several photos too, as --like does
    liked = next(p for p in results if p not in together)
    window.mark_results([liked], SIMILAR)
    refined = _wait_results(window, qtbot)
    assert refined == _cli_paths(capsys, path, "-k", "10", "--like", liked, "--together", *together)
    qtbot.waitUntil(lambda: all(_labels(path).get(_key(path, q, liked)) == (SIMILAR, FEEDBACK_SOURCE)
                                for q in together), timeout=10_000)

    # and with the search controls changed, as the CLI's options say (Hamming order only)
    window.rerank_check.setChecked(False)
    hamming = _wait_results(window, qtbot)
    assert hamming == _cli_paths(capsys, path, "-k", "10", "--rerank", "none", "--like", liked, "--together",
                                 *together)
    assert window.marks() == {liked: SIMILAR}  # a setting changed: the marks stay


def test_open_with_several_files_and_a_paste_of_several_paths_search_together(make_window, qtbot, library,
                                                                              monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from app.main_window import queries_from_mime

    path, kinds = library
    window = make_window(path)
    chosen = [kinds[1][0], kinds[3][0]]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(lambda *args, **kwargs: (chosen, "")))
    window.open_file()
    _wait_results(window, qtbot)
    assert window.labeling.shown_query == tuple(chosen)
    assert window.query_caption.text().startswith("2 photos")

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    mime = QMimeData()
    mime.setText("\n".join([kinds[2][0], str(notes), "file://" + kinds[2][1]]))
    assert queries_from_mime(mime) == [kinds[2][0], kinds[2][1]]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(notes)), QUrl.fromLocalFile(kinds[0][0])])
    assert queries_from_mime(mime) == [kinds[0][0]]  # one photo: an ordinary search


def test_several_selected_tiles_are_marked_at_once_and_the_bar_unmarks_one(make_window, qtbot, library):
    path, kinds = library
    window = make_window(path)
    window.k_spin.setValue(PHOTOS)
    query = kinds[2][0]
    window.search(query)
    plain = _wait_results(window, qtbot)
    first, second = plain[5], plain[9]
    _select(window, qtbot, first)
    window.view.selectionModel().select(window.model.index(window.model.row_of(second)),
                                        window.view.selectionModel().SelectionFlag.Select)
    qtbot.keyClick(window.view, Qt.Key.Key_D)
    assert window.marks() == {first: DISSIMILAR, second: DISSIMILAR}
    refined = _wait_results(window, qtbot)
    assert first not in refined and second not in refined
    assert window.refine_label.text() == "Refined by 2 dissimilar"

    # gone from the grid, a dissimilar mark is taken back from the bar's Unmark menu
    window.unmark_menu.aboutToShow.emit()
    entries = {action.text(): action for action in window.unmark_menu.actions()}
    assert set(entries) == {f"{os.path.basename(p)} (dissimilar)" for p in (first, second)}
    entries[f"{os.path.basename(second)} (dissimilar)"].trigger()
    again = _wait_results(window, qtbot)
    assert second in again and first not in again
    assert window.marks() == {first: DISSIMILAR}
