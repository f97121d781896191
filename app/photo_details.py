"""The results' photo facts (size, resolution, date taken, camera), read off the GUI thread and kept for tooltips and sorting."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal

from app.background import run_in_thread

_BATCH = 64  # facts sent to the window per report: tooltips fill in while a long list is read


def read_infos(paths: Sequence[str], cancel: threading.Event, report) -> dict:
    """engine.photo_info.PhotoInfo of each path (header reads, no pixels), sent in batches to
    ``report``; stops early when ``cancel`` is set. Runs in a worker thread."""
    from engine.photo_info import read_photo_info  # Pillow: in the worker thread

    batch: dict = {}
    for path in paths:
        if cancel.is_set():
            break
        batch[path] = read_photo_info(path)
        if len(batch) >= _BATCH:
            report(batch)
            batch = {}
    return batch


class PhotoDetails(QObject):
    """Facts of photos by path, read on demand in one thread at a time; a new ``want`` replaces
    the list still being read (the paths read so far stay known)."""

    known = Signal()  # more facts are known
    complete = Signal()  # every path of the last ``want`` is known

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.infos: dict = {}  # path -> PhotoInfo
        self._task = None
        self._wanted: list[str] = []
        self._failure: str | None = None
        self._closed = False

    def missing(self, paths: Sequence[str]) -> list[str]:
        return [path for path in paths if path not in self.infos]

    def want(self, paths: Sequence[str]) -> bool:
        """Read the facts of ``paths`` not known yet; True when every one is known already."""
        self._wanted = self.missing(paths)
        if not self._wanted:
            return True
        if self._task is not None:
            self._task.cancel.set()  # it ends soon; ``_ended`` starts the new list
        elif not self._closed:
            self._start()
        return False

    def forget(self) -> None:
        """Drop every fact (the files may have changed: the library was updated)."""
        self.infos.clear()

    def _start(self) -> None:
        paths, cancel = list(self._wanted), threading.Event()
        self._failure = None
        self._task = run_in_thread(lambda report: read_infos(paths, cancel, report), self._add,
                                   self._on_failed, what="reading the photos' details", progress=self._add,
                                   cancel=cancel, after=self._ended, parent=self)

    def _on_failed(self, message: str) -> None:
        self._failure = message  # a bug (read_photo_info raises for none of the files): logged

    def _add(self, batch: dict) -> None:
        if batch:
            self.infos.update(batch)
            self.known.emit()

    def _ended(self) -> None:
        self._task = None
        self._wanted = [] if self._failure else self.missing(self._wanted)
        if self._closed:
            return
        if self._wanted:
            self._start()
        else:
            self.complete.emit()

    def shutdown(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.stop()
