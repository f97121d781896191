"""Preview, compare and sort in the window, offscreen on real photos: Space and the arrows, synchronized zoom, the photos' facts, a corrupt file."""

from __future__ import annotations

import os

import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from engine.index import Indexer
from engine.library import Library
from tests import photos

TAKEN = "2019:05:01 09:15:30"


def _rotated_with_exif(path):
    """A JPEG stored sideways (EXIF orientation 6) with DateTimeOriginal, Make and Model: upright 1200 x 1600."""
    upright = photos.scene(52, (1200, 1600))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R6"
    exif.get_ifd(0x8769)[0x9003] = TAKEN
    path.parent.mkdir(parents=True, exist_ok=True)
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif.tobytes())
    return path


@pytest.fixture(scope="module")
def preview_library(tmp_path_factory, default_model_dir):
    """(library, {name: path}): photos of several sizes, one EXIF-rotated, one corrupted after indexing."""
    base = tmp_path_factory.mktemp("preview")
    folder = base / "photos"
    scene = photos.scene(50, (1600, 1200))
    paths = {
        "big": photos.save(scene, folder / "big.jpg", quality=97),
        "small": photos.save(scene.resize((800, 600)), folder / "small.jpg", quality=80),
        "png": photos.save(photos.scene(51, (640, 480)), folder / "other.png"),
        "rotated": _rotated_with_exif(folder / "rotated.jpg"),
        "broken": photos.save(photos.scene(53, (1000, 750)), folder / "broken.jpg", quality=90),
    }
    with Library(base / "library") as library:
        library.install_model(default_model_dir)
        assert Indexer(library, workers=0).run([folder]).added == len(paths)
    # Damaged after indexing: still in the catalog and on disk, no longer a photo.
    data = paths["broken"].read_bytes()
    paths["broken"].write_bytes(data[:600] + b"\0" * 3000)
    return base / "library", {name: str(path) for name, path in paths.items()}


def _searched(window, qtbot, query):
    window.search(query)
    qtbot.waitUntil(lambda: window.model.rowCount() == 5 and window.results_are_current(), timeout=30_000)
    return [window.model.item(row).path for row in range(window.model.rowCount())]


def _row(window, path):
    return window.model.row_of(path)


def test_space_previews_the_current_result_and_the_arrows_move(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    results = _searched(window, qtbot, paths["big"])
    view = window.view
    view.setFocus()
    view.setCurrentIndex(window.model.index(0))
    qtbot.keyClick(view, Qt.Key.Key_Space)
    preview = window.preview
    assert preview is not None and preview.isVisible()
    assert preview.pane.path == results[0] == paths["big"]
    qtbot.waitUntil(lambda: preview.pane.shown is not None, timeout=10_000)
    # While one photo is looked at, the next one's draft is decoded: the arrow shows it at once.
    assert results[1] == paths["small"]  # its copy
    qtbot.waitUntil(lambda: results[1] in preview.drafts, timeout=10_000)
    qtbot.keyClick(preview, Qt.Key.Key_Right)
    assert preview.pane.path == results[1] and view.currentIndex().row() == 1
    assert preview.pane.shown is not None and preview.pane.shown.path == results[1]

    qtbot.keyClick(preview, Qt.Key.Key_Right)
    assert preview.pane.path == results[2] and view.currentIndex().row() == 2
    qtbot.keyClick(preview, Qt.Key.Key_Left)
    qtbot.keyClick(preview, Qt.Key.Key_Left)
    assert preview.pane.path == results[0] and view.currentIndex().row() == 0
    qtbot.keyClick(preview, Qt.Key.Key_Left)  # stays on the first
    assert preview.pane.path == results[0]
    qtbot.waitUntil(lambda: preview.pane.shown is not None and preview.pane.shown.path == results[0],
                    timeout=10_000)
    assert "1 of 5" in preview.info_label.text()
    qtbot.keyClick(preview, Qt.Key.Key_Escape)
    assert not preview.isVisible()


def test_preview_shows_a_draft_then_every_pixel_when_zoomed_in(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    _searched(window, qtbot, paths["big"])
    window.preview_result(_row(window, paths["big"]))
    pane = window.preview.pane
    qtbot.waitUntil(lambda: pane.shown is not None, timeout=10_000)
    screen = window.preview.screen().size()
    # a draft no larger than needed for the screen: JPEG's DCT scaling halves 1600 x 1200 here
    assert pane.shown.is_draft and pane.shown.image.width() < 1600
    assert pane.shown.image.width() >= min(1600, screen.width()) or pane.shown.image.height() >= screen.height()
    assert (pane.shown.width, pane.shown.height) == (1600, 1200)
    pane.actual_size()
    qtbot.waitUntil(pane.is_full_resolution, timeout=10_000)
    assert (pane.shown.image.width(), pane.shown.image.height()) == (1600, 1200)


def test_preview_of_an_exif_rotated_photo_is_upright_with_its_facts(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    _searched(window, qtbot, paths["rotated"])
    window.preview_result(_row(window, paths["rotated"]))
    pane = window.preview.pane
    qtbot.waitUntil(lambda: pane.info is not None, timeout=10_000)
    assert (pane.shown.width, pane.shown.height) == (1200, 1600)
    assert pane.shown.image.height() > pane.shown.image.width()  # upright: portrait
    text = window.preview.info_label.text()
    assert "1200 × 1600" in text and "Canon EOS R6" in text and "4 May 2019" not in text
    assert "1 May 2019, 09:15" in text and "same photo" in text.lower()


def test_compare_shows_the_query_and_a_result_with_their_facts(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    _searched(window, qtbot, paths["big"])
    row = _row(window, paths["rotated"])
    view = window.view
    view.setFocus()
    view.setCurrentIndex(window.model.index(row))
    qtbot.keyClick(view, Qt.Key.Key_C)
    assert len(window.compare_windows) == 1
    compare = window.compare_windows[0]
    assert [photo.path for photo in compare.photos] == [paths["big"], paths["rotated"]]
    assert len(compare.panes) == 2
    qtbot.waitUntil(lambda: all(pane.info is not None for pane in compare.panes), timeout=10_000)
    query_info, result_info = (pane.info for pane in compare.panes)
    assert (query_info.width, query_info.height, query_info.format) == (1600, 1200, "JPEG")
    assert query_info.file_size == os.path.getsize(paths["big"])
    assert (result_info.width, result_info.height) == (1200, 1600)
    assert result_info.taken_at == "2019-05-01T09:15:30" and result_info.camera == "Canon EOS R6"
    query_text, result_text = (label.text() for label in compare.info_labels)
    assert "The query" in query_text and "1600 × 1200" in query_text and "big.jpg" in query_text
    score = window.model.item(row).score
    assert "Canon EOS R6" in result_text and "taken 1 May 2019, 09:15" in result_text
    assert f"score {score:.2f}" in result_text and os.path.dirname(paths["rotated"]) in result_text
    compare.close()
    qtbot.waitUntil(lambda: not window.compare_windows, timeout=5_000)


def _wheel(widget, at: QPointF, notches: int) -> None:
    event = QWheelEvent(at, widget.mapToGlobal(at), QPoint(), QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def _drag(widget, start: QPointF, end: QPointF) -> None:
    for kind, at, buttons in ((QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton),
                              (QEvent.Type.MouseMove, end, Qt.MouseButton.LeftButton),
                              (QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)):
        event = QMouseEvent(kind, at, widget.mapToGlobal(at), Qt.MouseButton.LeftButton, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)


def test_compare_of_selected_results_zooms_and_pans_them_together(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    _searched(window, qtbot, paths["big"])
    rows = [_row(window, paths["big"]), _row(window, paths["small"]), _row(window, paths["png"])]
    compare = window.compare_results(rows)
    assert len(compare.panes) == 3 and all(not photo.is_query for photo in compare.photos)
    # the photos and their facts in (the facts' lines under a pane take its height: all in, one size)
    qtbot.waitUntil(lambda: all(pane.shown is not None and pane.info is not None for pane in compare.panes),
                    timeout=10_000)
    big, small, png = compare.panes

    _wheel(big, QPointF(big.width() / 2, big.height() / 2), 2)  # two notches in, at the centre
    assert big.zoom == pytest.approx(1.25 ** 2)
    assert small.zoom == png.zoom == big.zoom  # relative to each one's fit: the same part shows
    before = (small.cx, small.cy)
    _drag(small, QPointF(60, 60), QPointF(30, 40))  # drag left and up: the view moves right and down
    assert small.cx > before[0]  # (cy stays 0.5 while the photos' height fits the tall panes)
    assert (big.cx, big.cy) == (small.cx, small.cy) == (png.cx, png.cy)
    # 100 % of the big photo: the small one (half the pixels a side) shows the same part, at 200 %
    compare.panes[0].actual_size()
    assert small.zoom == big.zoom
    assert small.scale() == pytest.approx(2 * big.scale(), rel=0.02), [(p.width(), p.height(), p.shown.width, p.shown.height, p.zoom, p.fit_scale()) for p in compare.panes]  # panes may differ by a pixel
    qtbot.waitUntil(big.is_full_resolution, timeout=10_000)  # every pixel once zoomed past the draft
    qtbot.keyClick(compare, Qt.Key.Key_0)
    assert big.zoom == small.zoom == png.zoom == 1.0
    compare.close()


def test_sort_by_file_size_reorders_without_searching_again(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    by_similarity = _searched(window, qtbot, paths["big"])
    request = window.search_thread.current_request
    window.view.setCurrentIndex(window.model.index(_row(window, paths["small"])))
    window.sort_actions["size"].trigger()
    sizes = {path: os.path.getsize(path) for path in by_similarity}
    by_size = sorted(by_similarity, key=lambda path: -sizes[path])
    qtbot.waitUntil(lambda: [window.model.item(r).path for r in range(5)] == by_size, timeout=10_000)
    assert window.search_thread.current_request == request  # no new search
    assert window.sort_button.text() == "Sort: File size"
    assert window.model.item(window.view.currentIndex().row()).path == paths["small"]  # the current photo follows
    tooltip = window.model.data(window.model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "1600 × 1200" in tooltip and "JPEG" in tooltip

    # A new search keeps the order; similarity puts the search's ranking back.
    _searched(window, qtbot, paths["small"])
    qtbot.waitUntil(lambda: [window.model.item(r).path for r in range(5)] == by_size, timeout=10_000)
    window.sort_results("similarity")
    assert window.model.item(0).path in (paths["small"], paths["big"])
    assert [window.model.item(r).score for r in range(5)] == sorted(
        (window.model.item(r).score for r in range(5)), reverse=True)


def test_a_corrupt_file_in_the_preview_shows_a_message(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    _searched(window, qtbot, paths["big"])
    window.preview_result(_row(window, paths["broken"]))
    pane = window.preview.pane
    qtbot.waitUntil(lambda: pane.message.startswith("Cannot show this photo"), timeout=10_000)
    assert pane.shown is None and "Cannot show this photo" in window.preview.info_label.text()
    pane.grab()  # paints the message
    qtbot.keyClick(window.preview, Qt.Key.Key_Right)  # and the preview goes on
    assert window.preview.isVisible()


def _double_click(widget, at: QPoint) -> None:
    """What a mouse sends (QTest.mouseDClick sends no releases, and the view activates an item on
    the release that ends a double-click)."""
    for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick,
                 QEvent.Type.MouseButtonRelease):
        held = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
        QApplication.sendEvent(widget, QMouseEvent(kind, QPointF(at), widget.mapToGlobal(QPointF(at)),
                                                   Qt.MouseButton.LeftButton, held, Qt.KeyboardModifier.NoModifier))


def test_double_click_previews_by_default_and_opens_when_set(make_window, qtbot, preview_library, monkeypatch):
    library, paths = preview_library
    window = make_window(library)
    _searched(window, qtbot, paths["big"])
    opened = []
    monkeypatch.setattr(window, "open_result", opened.append)
    assert window.double_click_action.isChecked()
    viewport = window.view.viewport()
    at = window.view.visualRect(window.model.index(2)).center()
    _double_click(viewport, at)
    assert window.preview is not None and window.preview.isVisible() and window.preview.row == 2
    assert not opened
    window.preview.close()

    window.double_click_action.setChecked(False)
    assert window.settings.value("view/double_click") == "open"
    _double_click(viewport, at)
    assert opened == [window.model.item(2).path]


def test_c_compares_the_selected_results_and_says_when_there_are_too_many(make_window, qtbot, preview_library):
    library, paths = preview_library
    window = make_window(library)
    results = _searched(window, qtbot, paths["big"])
    view, selection = window.view, window.view.selectionModel()
    view.setFocus()
    for row in (0, 3):
        selection.select(window.model.index(row), selection.SelectionFlag.Select)
    menu = window.result_menu(window.model.index(3))
    assert "Compare the 2 selected" in [action.text() for action in menu.actions()]
    qtbot.keyClick(view, Qt.Key.Key_C)
    compare = window.compare_windows[-1]
    assert [photo.path for photo in compare.photos] == [results[0], results[3]]
    assert not any(photo.is_query for photo in compare.photos)
    compare.close()

    for row in range(5):
        selection.select(window.model.index(row), selection.SelectionFlag.Select)
    qtbot.keyClick(view, Qt.Key.Key_C)
    assert "2 to 4 photos: 5 are selected" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.compare_windows, timeout=5_000)
