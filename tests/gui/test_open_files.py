"""Open and Reveal of a result: the desktop's opener runs, and when nothing opens the file the window says so."""

from __future__ import annotations

import os

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox


def _opener(folder, body: str):
    """A fake xdg-open, first on PATH, that records what it was asked to open."""
    folder.mkdir(exist_ok=True)
    script = folder / "xdg-open"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{folder}/asked"\n{body}\n')
    script.chmod(0o755)
    return folder / "asked"


def _boxes(window) -> list[QMessageBox]:
    return [box for box in window.findChildren(QMessageBox) if box.isVisible()]


@pytest.fixture
def result_path(photo_set):
    return str(photo_set["originals"][5])


@pytest.mark.parametrize("action", ["open", "reveal"])
def test_nothing_to_open_with_is_said_in_the_window_with_a_copy_path_button(make_window, qtbot, tmp_path,
                                                                           indexed_library, monkeypatch, action,
                                                                           result_path):
    asked = _opener(tmp_path / "bin", "echo \"xdg-open: no method available for opening '$1'\" >&2\nexit 3")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    window = make_window(indexed_library)
    (window.open_result if action == "open" else window.reveal_result)(result_path)
    qtbot.waitUntil(lambda: len(_boxes(window)) == 1, timeout=10_000)
    box = _boxes(window)[0]
    target = result_path if action == "open" else os.path.dirname(result_path)
    assert asked.read_text().splitlines() == [target]
    text = box.text() + "\n" + box.informativeText()
    assert os.path.basename(result_path) in text and "no method available" in text
    copy = next(button for button in box.buttons() if button.text() == "Copy path")
    copy.click()
    assert QApplication.clipboard().text() == result_path
    qtbot.waitUntil(lambda: not _boxes(window), timeout=5_000)


@pytest.mark.qt_log_ignore("does not support QPlatformServices::openDocument",  # offscreen says no
                           "This plugin does not support propagateSizeHints")
def test_without_any_opener_the_window_says_so(make_window, qtbot, tmp_path, indexed_library, monkeypatch,
                                               result_path):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no xdg-open, no gio: Qt's openUrl fails
    window = make_window(indexed_library)
    window.open_result(result_path)
    qtbot.waitUntil(lambda: len(_boxes(window)) == 1, timeout=10_000)
    box = _boxes(window)[0]
    assert os.path.basename(result_path) in box.text()
    box.reject()


def test_an_opener_that_works_shows_nothing(make_window, qtbot, tmp_path, indexed_library, monkeypatch,
                                            result_path):
    asked = _opener(tmp_path / "bin", "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    window = make_window(indexed_library)
    window.open_result(result_path)
    window.reveal_result(result_path)
    qtbot.waitUntil(lambda: asked.exists() and len(asked.read_text().splitlines()) == 2, timeout=10_000)
    assert sorted(asked.read_text().splitlines()) == sorted([result_path, os.path.dirname(result_path)])
    qtbot.wait(500)  # the opener's end has been seen
    assert not _boxes(window)
