"""Helpers of the GUI tests that act on files: the catalog's view of a path, the trash question, keys."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from engine.store import Store


def catalogued(library, path) -> bool:
    with Store.open(library, create=False, readonly=True) as store:
        return store.image_by_path(path) is not None


def press(window, qtbot, widget, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)  # shortcuts go to the active window
    widget.setFocus()
    qtbot.keyClick(widget, key, modifier)


def confirmation(window, qtbot) -> QMessageBox:
    runner = window.file_actions.runner
    qtbot.waitUntil(lambda: runner.confirmation is not None and runner.confirmation.isVisible(), timeout=10_000)
    return runner.confirmation


def idle(window, qtbot) -> None:
    qtbot.waitUntil(lambda: not window.file_actions.runner.is_busy(), timeout=60_000)
