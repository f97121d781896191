"""Open a photo, or its folder, with the desktop's default application; say so when nothing opens it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.paths import display_path, file_url

# An opener that fails (no application for the type) says so within this long; one still
# running after it is the application itself (xdg-open without a desktop waits for it).
OPENER_WATCH_S = 10.0
POLL_MS = 100


def open_file(path: str, parent: QWidget, copy_path: Callable[[str], None]) -> None:
    """Open the file at ``path`` with its default application."""
    _launch(path, path, "open", parent, copy_path)


def reveal_file(path: str, parent: QWidget, copy_path: Callable[[str], None]) -> None:
    """Show the folder holding ``path`` in the file manager."""
    _launch(os.path.dirname(path) or ".", path, "reveal", parent, copy_path)


def opener_command(target: str) -> list[str] | None:
    """The desktop's opener for ``target`` on a free desktop (its exit status tells whether an
    application took it, which QDesktopServices.openUrl does not); None elsewhere."""
    if sys.platform in ("darwin", "win32"):
        return None
    if shutil.which("xdg-open"):
        return ["xdg-open", target]
    if shutil.which("gio"):
        return ["gio", "open", target]
    return None


def _launch(target: str, path: str, action: str, parent: QWidget, copy_path: Callable[[str], None]) -> None:
    command = opener_command(target)
    if command is None:
        # Qt finds the desktop's way (Launch Services, the shell, a portal), or returns False.
        if not QDesktopServices.openUrl(QUrl.fromEncoded(file_url(target).encode("ascii"))):
            cannot_open(parent, path, action, "this system has no program that opens files "
                                              "(on Linux: xdg-open, from the xdg-utils package)", copy_path)
        return
    try:
        opener = _Opener(command)
    except OSError as exc:
        cannot_open(parent, path, action, f"{command[0]} could not run: {exc.strerror or exc}", copy_path)
        return
    _OpenerWatch(opener, parent, path, action, copy_path)


class _Opener:
    """One opener process, reaped by a thread of its own however long the application it
    became runs; what it said on failure is kept (its stderr goes to a file, not a pipe, so
    the application never writes into a pipe that this process may have closed)."""

    def __init__(self, command: list[str]):
        self._errors = tempfile.TemporaryFile()
        try:
            # A session of its own: the application it starts outlives this window.
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=self._errors, start_new_session=True)
        except OSError:
            self._errors.close()
            raise
        self.status: int | None = None
        self.message = ""
        self.ended = threading.Event()
        threading.Thread(target=self._reap, name="lookalike-opener", daemon=True).start()

    def _reap(self) -> None:
        status = self.process.wait()
        with self._errors as errors:
            if status:
                errors.seek(0)
                lines = errors.read(4096).decode("utf-8", "replace").strip().splitlines()
                # "gio: file:///...: Failed to find default application ...": the file is named already
                self.message = (lines[-1].rsplit(": ", 1)[-1] if lines
                                else f"{self.process.args[0]} ended with status {status}")
        self.status = status
        self.ended.set()


class _OpenerWatch(QObject):
    """Polls an opener on the GUI thread until it ends (a failure is said) or OPENER_WATCH_S passes."""

    def __init__(self, opener: _Opener, parent: QWidget, path: str, action: str, copy_path: Callable[[str], None]):
        super().__init__(parent)
        self._opener = opener
        self._path, self._action, self._copy_path = path, action, copy_path
        self._deadline = time.monotonic() + OPENER_WATCH_S
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._poll)
        self._timer.start(POLL_MS)

    def _poll(self) -> None:
        ended = self._opener.ended.is_set()
        if not ended and time.monotonic() < self._deadline:
            return
        self._timer.stop()
        if ended and self._opener.status:
            cannot_open(self.parent(), self._path, self._action,
                        f"no application is set up to open it ({self._opener.message})", self._copy_path)
        self.deleteLater()


def cannot_open(parent: QWidget, path: str, action: str, reason: str,
                copy_path: Callable[[str], None]) -> QMessageBox:
    """Say in the window that ``path`` (or its folder) did not open, and offer to copy its path."""
    name = display_path(os.path.basename(path))
    what = f"Could not open {name}." if action == "open" else f"Could not show the folder of {name}."
    box = QMessageBox(QMessageBox.Icon.Warning, "Cannot open" if action == "open" else "Cannot reveal",
                      what, QMessageBox.StandardButton.Close, parent)
    box.setInformativeText(f"{reason[:1].upper()}{reason[1:]}.\n\nCopy its path to open it with a program of "
                           f"your choice:\n{display_path(path)}")
    copy = box.addButton("Copy path", QMessageBox.ButtonRole.ActionRole)
    copy.clicked.connect(lambda: copy_path(path))
    box.setDefaultButton(copy)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
