"""The one way the window runs work off its GUI thread: a one-shot ``run_in_thread`` and a long-lived ``LibraryThread``.

Rules (docs/ARCHITECTURE.md, "The window's threads"):

- A job is a plain function. Its outcome comes back to the GUI thread as a call of ``done``
  (with the function's result) or of ``failed`` (with a message for the person), never both.
- One failure path, :func:`failure_message`: a LookalikeError is the person's to act on and
  its own text is the message; anything else is a bug, logged with its traceback and reported
  as "<what> failed: <error>" (a bug must reach the window, not vanish with the thread).
- Work that needs the library's catalog connection again and again (search, labels) goes to a
  :class:`LibraryThread`, which owns one Library (one SQLite connection) in a thread of its own
  and runs the calls sent to it in order. One-off work (indexing, a model change, a read of the
  library for a dialog) runs in a :class:`Task` of its own.
- Every thread started here remembers where it was started (``origin``), so a test that leaves
  one running is told which code started it.

Image decoding is the exception: :class:`app.workers.ImageLoader` keeps a pool of droppable
decodes (a null image is its failure), because hundreds of thumbnails want several threads.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import LookalikeError, UserError

log = logging.getLogger(__name__)

_HERE = os.path.abspath(__file__)


def failure_message(what: str, exc: BaseException) -> str:
    """What the person reads when ``what`` (e.g. "deleting the model") failed with ``exc``."""
    if isinstance(exc, LookalikeError):
        return str(exc)
    log.error("%s failed", what, exc_info=exc)
    return f"{what} failed: {exc}"


def started_from() -> str:
    """The caller's frames outside this module, innermost last: where a thread was started."""
    frames = [frame for frame in traceback.extract_stack()[:-1] if os.path.abspath(frame.filename) != _HERE]
    return "".join(traceback.format_list(frames[-6:]))


# ------------------------------------------------------------------ one-shot


class Task(QThread):
    """Runs one function once in a thread of its own (see :func:`run_in_thread`).

    ``cancel`` is the event the function watches, when it can stop early. The task deletes
    itself once it has finished and its outcome was delivered.
    """

    _succeeded = Signal(object)
    _failed = Signal(str)
    _progressed = Signal(object)

    def __init__(self, function: Callable[..., object], *, what: str, cancel: threading.Event | None = None,
                 reports_progress: bool = False, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName(f"lookalike: {what}")
        self.what = what
        self.cancel = cancel if cancel is not None else threading.Event()
        self.origin = started_from()
        self._function = function
        self._reports_progress = reports_progress
        self.ended = False  # its thread has ended and the task is deleted (or about to be)
        self.done: Callable[[object], None] | None = None
        self.failed: Callable[[str], None] | None = None
        self.progress: Callable[[object], None] | None = None
        self.after: Callable[[], None] | None = None
        # bound methods of an object of the GUI thread: queued there from run()
        self._succeeded.connect(self._deliver_result)
        self._failed.connect(self._deliver_failure)
        self._progressed.connect(self._deliver_progress)
        self.finished.connect(self._on_finished)

    def run(self) -> None:
        try:
            result = self._function(self._progressed.emit) if self._reports_progress else self._function()
        except Exception as exc:  # every failure takes the one path, never raised into Qt
            self._failed.emit(failure_message(self.what, exc))
            return
        self._succeeded.emit(result)

    @Slot(object)
    def _deliver_result(self, result: object) -> None:
        if self.done is not None:
            self.done(result)

    @Slot(str)
    def _deliver_failure(self, message: str) -> None:
        if self.failed is not None:
            self.failed(message)

    @Slot(object)
    def _deliver_progress(self, value: object) -> None:
        if self.progress is not None:
            self.progress(value)

    @Slot()
    def _on_finished(self) -> None:
        self.wait()  # finished is sent just before the thread ends: let it end
        self.ended = True
        self.deleteLater()
        if self.after is not None:
            self.after()

    def stop(self) -> None:
        """Ask the function to stop (``cancel``) and wait for its thread; safe once the task
        has deleted itself."""
        self.cancel.set()
        if not self.ended:
            self.wait()


def run_in_thread(function: Callable[..., object], done: Callable[[object], None] | None = None,
                  failed: Callable[[str], None] | None = None, *, what: str,
                  progress: Callable[[object], None] | None = None, cancel: threading.Event | None = None,
                  after: Callable[[], None] | None = None, parent: QObject | None = None) -> Task:
    """Start ``function()`` in a thread; then ``done(result)`` or ``failed(message)`` in the GUI thread.

    With ``progress``, the function is called as ``function(report)`` and each ``report(value)``
    reaches ``progress(value)`` in the GUI thread. ``what`` names the work in a failure message.
    ``after()`` is called in the GUI thread once the thread has ended (after the outcome): set
    here, before the thread starts, so that a quick function cannot end before it is connected.
    """
    task = Task(function, what=what, cancel=cancel, reports_progress=progress is not None, parent=parent)
    task.done, task.failed, task.progress, task.after = done, failed, progress, after
    task.start()
    return task


# ------------------------------------------------------------------ long-lived


@dataclass(eq=False)
class _Call:
    function: Callable[["LibraryWorker"], object]
    what: str
    done: Callable[[object], None] | None
    failed: Callable[[str], None] | None
    stale: Callable[[], bool] | None  # asked in the worker thread: True drops the call unrun


class LibraryWorker(QObject):
    """Lives in a LibraryThread's thread and owns its Library; the calls' functions receive it."""

    _answered = Signal(object, bool, object)  # call, succeeded, result or failure message

    def __init__(self, library_path: str | os.PathLike):
        super().__init__()
        self.path = Path(library_path)
        self._library = None

    def library(self):
        """The Library, opened on first need (it may be created after the window opens);
        UserError when there is none at the path."""
        # numpy and the engine load here, in the worker thread, not before the window's first paint
        from engine.library import Library

        if self._library is None:
            self._library = Library(self.path, create=False)
        return self._library

    def library_or_none(self):
        """The Library, or None when there is none yet at the path."""
        try:
            return self.library()
        except UserError:
            return None

    @Slot(object)
    def _run(self, call: _Call) -> None:
        if call.stale is not None and call.stale():
            return
        try:
            result = call.function(self)
        except Exception as exc:  # every failure takes the one path; the thread lives on
            self._answered.emit(call, False, failure_message(call.what, exc))
            return
        self._answered.emit(call, True, result)

    @Slot()
    def _close(self) -> None:
        if self._library is not None:
            self._library.close()
            self._library = None
        QThread.currentThread().quit()


class LibraryThread(QObject):
    """A thread that owns one Library and runs the calls sent to it, one at a time, in order.

    A Library is one SQLite connection, which belongs to the thread that opened it; and the
    catalog is shared with the indexer and the trainer, so a write may wait for their lock:
    the GUI thread must never be the one waiting.
    """

    _submitted = Signal(object)
    _closing = Signal()

    def __init__(self, library_path: str | os.PathLike, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = LibraryWorker(library_path)
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.thread.origin = started_from()
        self.worker.moveToThread(self.thread)
        self._submitted.connect(self.worker._run)
        self._closing.connect(self.worker._close)
        self.worker._answered.connect(self._deliver)  # queued: answered in the GUI thread
        self.thread.start()

    def call(self, function: Callable[[LibraryWorker], object], done: Callable[[object], None] | None = None,
             failed: Callable[[str], None] | None = None, *, what: str,
             stale: Callable[[], bool] | None = None) -> None:
        """Queue ``function(worker)``; then ``done(result)`` or ``failed(message)`` in the GUI thread.

        ``stale`` is asked in the worker thread just before the call would run: True drops it
        (a burst of searches runs only the last one)."""
        self._submitted.emit(_Call(function, what, done, failed, stale))

    @Slot(object, bool, object)
    def _deliver(self, call: _Call, succeeded: bool, value: object) -> None:
        if succeeded and call.done is not None:
            call.done(value)
        elif not succeeded and call.failed is not None:
            call.failed(value)

    def shutdown(self) -> None:
        """Close the Library in its thread after the calls already queued, and end the thread."""
        if self.thread.isRunning():
            self._closing.emit()
            self.thread.wait()
