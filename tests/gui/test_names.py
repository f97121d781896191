"""The window with a file name that is not UTF-8: shown with a replacement character, opened, copied,
labelled and filtered by its real name."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication

from engine.index import Indexer
from engine.library import Library
from tests import photos

FILE = os.fsdecode(b"\xe9t\xe9.jpg")
FOLDER = os.fsdecode(b"d\xe9j\xe0")


@pytest.fixture(scope="module")
def latin1_library(tmp_path_factory, default_model_dir):
    base = tmp_path_factory.mktemp("gui-names")
    root = base / "photos"
    try:
        photos.save(photos.scene(850, (320, 240)), root / FOLDER / FILE, quality=90)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    for i in range(3):
        photos.save(photos.scene(851 + i, (320, 240)), root / f"p{i}.jpg", quality=90)
    with Library(base / "library") as library:
        library.install_model(default_model_dir)
        assert Indexer(library, workers=0).run([root]).added == 4
    return base / "library", root / FOLDER / FILE


def test_a_non_utf8_result_is_shown_replaced_and_opened_copied_and_labelled_by_its_real_name(
        make_window, qtbot, latin1_library, monkeypatch, tmp_path):
    library_path, photo = latin1_library
    window = make_window(library_path)
    window.k_spin.setValue(4)
    window.search(str(photo))
    model = window.model
    qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=20_000)
    assert model.item(0).path == str(photo)
    assert model.data(model.index(0), Qt.ItemDataRole.DisplayRole) == "\ufffdt\ufffd.jpg"
    assert "d\ufffdj\ufffd/\ufffdt\ufffd.jpg" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "\ufffdt\ufffd.jpg" in window.query_caption.text()

    # Without a desktop opener on PATH, Qt's openUrl gets a URL holding every byte.
    (tmp_path / "no-opener").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-opener"))
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(bytes(url.toEncoded())) or True)
    menu = window.result_menu(model.index(0))
    actions = {a.text(): a for a in menu.actions() if a.text()}
    actions["Open"].trigger()
    actions["Reveal in file manager"].trigger()
    raw = os.fsencode(photo)
    assert opened == [b"file://" + raw.replace(b"\xe9", b"%E9").replace(b"\xe0", b"%E0"),
                      b"file://" + os.path.dirname(raw).replace(b"\xe9", b"%E9").replace(b"\xe0", b"%E0")]
    # With one (xdg-open), it gets the path's own bytes.
    opener = tmp_path / "bin" / "xdg-open"
    opener.parent.mkdir()
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{tmp_path}/asked"\n')
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", str(opener.parent))
    actions["Open"].trigger()
    actions["Reveal in file manager"].trigger()
    qtbot.waitUntil(lambda: (tmp_path / "asked").exists()
                    and len((tmp_path / "asked").read_bytes().splitlines()) == 2, timeout=10_000)
    assert sorted((tmp_path / "asked").read_bytes().splitlines()) == sorted([raw, os.path.dirname(raw)])
    actions["Copy path"].trigger()
    mime = QApplication.clipboard().mimeData()
    assert bytes(mime.data("text/plain")) == raw
    assert bytes(mime.urls()[0].toEncoded()) == opened[0]

    # The thumbnail shows, and a drop of the copied URL searches the same file.
    qtbot.waitUntil(lambda: model.thumbnail_loaded(0), timeout=10_000)
    dropped = QMimeData()
    dropped.setUrls([QUrl.fromEncoded(opened[0])])
    from app.main_window import query_from_mime

    assert query_from_mime(dropped) == str(photo)

    # The folder filter holds the real folder; the search under it finds the photo.
    window.set_search_folder(os.path.dirname(photo))
    assert window.search_folder() == os.path.dirname(photo)
    assert window.folder_combo.currentText().endswith("d\ufffdj\ufffd")
    qtbot.waitUntil(lambda: model.rowCount() == 1 and model.item(0).path == str(photo), timeout=20_000)
    window.set_search_folder(None)
    qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=20_000)

    # Feedback on a result with such a name labels that very photo.
    query = str(model.item(1).path)
    window.search(query)
    # The labeling side learns of the search after the grid does: wait for both.
    qtbot.waitUntil(lambda: model.rowCount() == 4 and model.item(0).path == query
                    and window.labeling.shown_query == query, timeout=20_000)
    row = next(i for i in range(4) if model.item(i).path == str(photo))
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    menu = window.result_menu(model.index(row))
    {a.text(): a for a in menu.actions() if a.text()}["Mark similar to the query"].trigger()
    qtbot.waitUntil(lambda: any("Marked" in m or "Not labelled" in m for m in messages), timeout=20_000)
    assert any(m.startswith("Marked \ufffdt\ufffd.jpg similar") for m in messages), messages
    window.close()
    with Library(library_path) as library:
        (label,) = library.store.label_rows()
        assert str(photo) in (label.path_a, label.path_b)


def test_the_wizard_keeps_a_non_utf8_folder_by_its_real_name(qtbot, tmp_path):
    from app.index_wizard import FoldersPage

    folder = tmp_path / FOLDER
    page = FoldersPage()
    qtbot.addWidget(page)
    page.add_folder(folder)
    page.add_folder(tmp_path / "plain")
    page.add_folder(folder)  # once only
    assert page.folders() == [str(folder), str(tmp_path / "plain")]
    assert page.list.item(0).text().endswith("d\ufffdj\ufffd")
    page.list.item(1).setSelected(True)
    page.remove_selected()
    assert page.folders() == [str(folder)]


def test_a_non_utf8_result_is_previewed_and_compared_with_its_facts(make_window, qtbot, latin1_library):
    library_path, photo = latin1_library
    window = make_window(library_path)
    window.k_spin.setValue(4)
    window.search(str(photo))
    qtbot.waitUntil(lambda: window.model.rowCount() == 4, timeout=20_000)
    window.preview_result(0)
    pane = window.preview.pane
    qtbot.waitUntil(lambda: pane.shown is not None, timeout=10_000)
    assert pane.path == str(photo) and (pane.info.width, pane.info.height) == (320, 240)
    assert "\ufffdt\ufffd.jpg" in window.preview.info_label.text()
    window.preview.close()
    compare = window.compare_results([1])
    qtbot.waitUntil(lambda: all(p.info is not None for p in compare.panes), timeout=10_000)
    assert compare.panes[0].info.path == str(photo) and "d\ufffdj\ufffd" in compare.info_labels[0].text()
    compare.close()
