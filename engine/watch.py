"""Watch a library's folders: debounced batches of image paths that appeared, changed, moved or vanished.

``FolderWatcher`` runs a watchdog observer over the roots and collects the paths its events
name (a move names both ends), keeping only image files of the library's types and folders,
outside the exclusions and the library folder itself. Once the events have been quiet for
``debounce`` seconds (or ``max_delay`` seconds after the first, for a long copy), it hands the
batch to a callback in its own thread. ``apply_changes`` brings a library up to date for such
a batch (``Indexer.update``). Nothing here knows about Qt.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from engine.imageio import IMAGE_SUFFIXES
from engine.index import Indexer, IndexReport, indexed_suffixes, is_excluded

log = logging.getLogger(__name__)

# Events that say a file's content may be new or gone; "opened", "closed_no_write" and
# attribute changes say nothing of the kind.
_FILE_EVENTS = frozenset({"created", "modified", "closed", "moved", "deleted"})
# A folder's own "modified" only means something inside changed, which its files report.
_DIR_EVENTS = frozenset({"created", "moved", "deleted"})


class FolderWatcher:
    """Watches folders (recursively) and calls ``on_changes(paths)`` with debounced batches.

    ``start`` returns at once: adding the watches walks every folder (inotify watches one
    folder at a time), so that happens in the watcher's thread. ``on_error`` hears of a root
    that cannot be watched (e.g. the system's limit on watches). ``stop`` ends both threads;
    changes not yet handed over are dropped (the next full index run finds them).
    """

    def __init__(self, roots: Iterable[str | os.PathLike], on_changes: Callable[[list[str]], None], *,
                 exclusions: Sequence[str] = (), suffixes: Iterable[str] | None = None,
                 ignore: Iterable[str | os.PathLike] = (), include_hidden: bool = False,
                 debounce: float = 2.0, max_delay: float = 30.0,
                 on_error: Callable[[str, Exception], None] | None = None):
        self.roots = sorted({os.path.abspath(os.fspath(r)) for r in roots}, key=len, reverse=True)
        self.exclusions = tuple(exclusions)
        self.suffixes = IMAGE_SUFFIXES if suffixes is None else frozenset(s.lower() for s in suffixes)
        self.ignore = tuple(os.path.abspath(os.fspath(p)) for p in ignore)
        self.include_hidden = include_hidden
        self.debounce = float(debounce)
        self.max_delay = float(max_delay)
        self._on_changes = on_changes
        self._on_error = on_error
        self._pending: set[str] = set()
        self._first = self._last = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer = None

    # ------------------------------------------------------------------ filter

    def accepts(self, path: str, is_directory: bool) -> bool:
        """Whether a change at ``path`` can matter to the library."""
        path = os.path.abspath(path)
        if any(path == p or path.startswith(_prefix(p)) for p in self.ignore):
            return False
        root = next((r for r in self.roots if path == r or path.startswith(_prefix(r))), None)
        if root is None or path == root:
            return False
        if is_excluded(root, path, self.exclusions, include_hidden=self.include_hidden):
            return False
        return is_directory or os.path.splitext(path)[1].lower() in self.suffixes

    def _on_event(self, event) -> None:
        kinds = _DIR_EVENTS if event.is_directory else _FILE_EVENTS
        if event.event_type not in kinds:
            return
        paths = [event.src_path]
        if event.event_type == "moved":
            paths.append(event.dest_path)
        wanted = [p for p in (os.fsdecode(p) for p in paths if p) if self.accepts(p, event.is_directory)]
        if wanted:
            self.add(wanted)

    def add(self, paths: Iterable[str]) -> None:
        """Count ``paths`` as changed now (what an event does; also for tests and callers)."""
        now = time.monotonic()
        with self._cond:
            if not self._pending:
                self._first = now
            self._pending.update(paths)
            self._last = now
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a FolderWatcher starts once")
        self._thread = threading.Thread(target=self._run, name="lookalike-watch", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until every root is being watched (or has failed to be); True when so."""
        return self._ready.wait(timeout)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> "FolderWatcher":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        observer = self._start_observer()
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._on_changes(batch)
                except Exception:  # the callback's bug must not end the watching
                    log.exception("handling %d changed paths failed", len(batch))
        finally:
            if observer is not None:
                observer.stop()
                observer.join(10.0)

    def _start_observer(self):
        # why: watchdog's import is costly; only a started watcher needs it, not the window's start
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                try:
                    watcher._on_event(event)
                except Exception:  # never let a surprise kill watchdog's thread
                    log.exception("a file system event could not be handled: %r", event)

        observer = Observer()
        observer.daemon = True
        handler = Handler()
        try:
            for root in self.roots:
                if self._stopping:
                    break
                if not os.path.isdir(root):
                    log.info("not watching %s: not reachable", root)
                    continue
                try:
                    observer.schedule(handler, root, recursive=True)
                except OSError as exc:  # e.g. inotify's watch limit
                    log.warning("cannot watch %s: %s", root, exc)
                    if self._on_error:
                        self._on_error(root, exc)
            observer.start()
        except Exception as exc:
            log.warning("folder watching failed to start: %s", exc)
            if self._on_error:
                self._on_error("", exc)
            self._ready.set()
            return None
        self._ready.set()
        return observer

    def _next_batch(self) -> list[str] | None:
        """Block until a batch is due (quiet for ``debounce``, or ``max_delay`` since its first
        change) and return it; None once stopping."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if not self._pending:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = min(self._last + self.debounce, self._first + self.max_delay)
                if now >= due:
                    batch = sorted(self._pending)
                    self._pending.clear()
                    return batch
                self._cond.wait(due - now)


def _prefix(directory: str) -> str:
    return directory if directory.endswith(os.sep) else directory + os.sep


def watcher_for(library, on_changes: Callable[[list[str]], None], **options) -> FolderWatcher:
    """A FolderWatcher over a library's roots with its exclusions and file types (not started)."""
    store = library.store
    return FolderWatcher([path for _, path in store.roots()], on_changes, exclusions=store.exclusions(),
                         suffixes=indexed_suffixes(store), ignore=[library.path], **options)


def apply_changes(library, paths: Iterable[str | os.PathLike], **indexer_options) -> IndexReport:
    """Index the new and changed files among ``paths`` and forget the ones that are gone
    (a FolderWatcher's batch); holds the library's writer lock while it runs."""
    return Indexer(library, **indexer_options).update(paths)
