"""Work the window hands off its GUI thread: searching, image loading, folder counting and indexing."""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QImageReader

from engine.errors import LookalikeError, UserError

log = logging.getLogger(__name__)


def call_reporting_failure(failed, what: str, job: Callable[[], object]) -> tuple[bool, object]:
    """Run ``job`` in a worker thread: (True, its result), or (False, None) after sending the
    failure to the ``failed`` signal: a LookalikeError's own message, or, for a bug, the error
    logged with its traceback (a bug must reach the window, not vanish with the thread)."""
    try:
        return True, job()
    except LookalikeError as exc:
        failed.emit(str(exc))
    except Exception as exc:
        log.exception("%s failed", what)
        failed.emit(f"{what} failed: {exc}")
    return False, None


@dataclass(frozen=True)
class ResultItem:
    """One search result as the grid shows it."""

    path: str
    score: float
    hamming: int
    thumb: str | None  # the cached thumbnail, when the store knows the file's content hash


# ------------------------------------------------------------------ search


class SearchWorker(QObject):
    """Owns the window's Library in a thread of its own (a Library is one SQLite connection).

    Move it to a QThread and talk to it only through queued signals; ``supersede`` is the one
    direct call, so a burst of queries only runs the last one.
    """

    statusReady = Signal(object)  # a dict; an object, so the roots' names keep every byte
    # Paths travel as Python objects: a str signal argument would drop the bytes of a name
    # that is not UTF-8 (Qt text cannot hold them).
    resultsReady = Signal(int, object, list)  # request id, query path, [ResultItem]
    failed = Signal(int, str)

    def __init__(self, library_path: str | os.PathLike):
        super().__init__()
        self._path = Path(library_path)
        self._library = None
        self._latest = 0
        self._tmp: tempfile.TemporaryDirectory | None = None

    def supersede(self, request_id: int) -> None:
        # Called from the GUI thread: an int assignment is atomic, and a stale read only
        # costs one wasted search.
        self._latest = request_id

    def _open(self):
        from engine.library import Library

        if self._library is None:
            try:
                self._library = Library(self._path, create=False)
            except UserError:
                return None
        return self._library

    @Slot()
    def refresh(self) -> None:
        try:
            library = self._open()
            if library is None:
                status = {"exists": False, "library": str(self._path), "images": 0, "model": None}
            else:
                from engine.index import indexed_suffixes

                # exclusions and types too: the folder watcher filters its events by them
                status = {"exists": True, **library.status(), "exclusions": library.store.exclusions(),
                          "suffixes": sorted(indexed_suffixes(library.store))}
        except LookalikeError as exc:
            status = {"exists": False, "library": str(self._path), "images": 0, "model": None, "error": str(exc)}
        self.statusReady.emit(status)

    @Slot(int, object, int, object)
    def search(self, request_id: int, query: object, k: int, options: object = None) -> None:
        """``options``: a dict of SearchParams fields (pool, radius, rerank) plus ``folder``."""
        from engine.index import thumbnail_path
        from engine.search import SearchParams

        if request_id != self._latest:
            return  # a newer query came in meanwhile
        try:
            path = self._query_path(query)
            library = self._open()
            if library is None:
                raise UserError("there is no library yet: add photo folders first")
            options = dict(options or {})
            folder = options.pop("folder", None)
            words, feature = library.encode_file(path)
            hits = library.search_vector(words, feature, SearchParams(k=k, **options), folder=folder)
            store = library.store
            items = []
            for hit in hits:
                row = store.image_by_path(hit.path)
                thumb = thumbnail_path(store.thumbs_dir(), row.content_hash) if row and row.content_hash else None
                items.append(ResultItem(hit.path, hit.score, hit.hamming, str(thumb) if thumb else None))
        except LookalikeError as exc:
            self.failed.emit(request_id, str(exc))
            return
        except Exception as exc:  # a bug must not kill the worker thread
            log.exception("search failed")
            self.failed.emit(request_id, f"search failed: {exc}")
            return
        self.resultsReady.emit(request_id, path, items)

    def _query_path(self, query: object) -> str:
        if isinstance(query, QImage):
            # Pasted or dropped pixels: the engine reads files, so write them out once here.
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="lookalike-query-")
            path = os.path.join(self._tmp.name, f"query-{self._latest}.png")
            if not query.save(path, "PNG"):
                raise UserError("the pasted image could not be saved for the search")
            return path
        return str(query)

    @Slot()
    def close(self) -> None:
        if self._library is not None:
            self._library.close()
            self._library = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        QThread.currentThread().quit()


class SearchThread(QObject):
    """The search worker's thread and the signals that reach it."""

    searchRequested = Signal(int, object, int, object)
    refreshRequested = Signal()
    closeRequested = Signal()

    def __init__(self, library_path, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = SearchWorker(library_path)
        self.thread = QThread()
        self.thread.setObjectName("lookalike-search")
        self.worker.moveToThread(self.thread)
        self.searchRequested.connect(self.worker.search)
        self.refreshRequested.connect(self.worker.refresh)
        self.closeRequested.connect(self.worker.close)
        self.thread.start()
        self._request = 0

    def search(self, query: object, k: int, options: dict | None = None) -> int:
        self._request += 1
        self.worker.supersede(self._request)
        self.searchRequested.emit(self._request, query, k, dict(options or {}))
        return self._request

    @property
    def current_request(self) -> int:
        return self._request

    def shutdown(self) -> None:
        if self.thread.isRunning():
            self.worker.supersede(-1)  # queued searches are dropped
            self.closeRequested.emit()  # closes the Library in its thread, then quits the loop
            self.thread.wait()


# ------------------------------------------------------------------ images


class _ImageJob(QRunnable):
    def __init__(self, loader: "ImageLoader", generation: int, key: object, paths: Sequence[str], size: QSize):
        super().__init__()
        self.loader, self.generation, self.key, self.paths, self.size = loader, generation, key, paths, size

    def run(self) -> None:
        if self.generation != self.loader.generation:
            return  # the results it was for are gone
        image = QImage()
        for path in self.paths:
            if path and os.path.exists(path):
                reader, source_file = _image_reader(path)
                reader.setAutoTransform(True)
                source = reader.size()
                if source.isValid():
                    reader.setScaledSize(source.scaled(self.size, Qt.AspectRatioMode.KeepAspectRatio))
                image = reader.read()
                if not image.isNull():
                    break
        self.loader.loaded.emit(self.generation, self.key, image)


def _image_reader(path: str) -> tuple[QImageReader, object]:
    """A reader of the file at ``path`` (and what must live while it reads).

    Qt opens files by Qt text names, which cannot hold a name that is not UTF-8; such a file
    is read here and handed over in memory."""
    try:
        path.encode("utf-8")
        return QImageReader(path), None
    except UnicodeEncodeError:
        from PySide6.QtCore import QBuffer, QByteArray

        try:
            with open(path, "rb") as handle:
                data = QByteArray(handle.read())
        except OSError:
            data = QByteArray()
        buffer = QBuffer()
        buffer.setData(data)
        buffer.open(QBuffer.OpenModeFlag.ReadOnly)
        return QImageReader(buffer), buffer


class ImageLoader(QObject):
    """Decodes images scaled to a size in a private thread pool; ``reset`` drops queued work."""

    loaded = Signal(int, object, QImage)  # generation, key, image (null when unreadable)

    def __init__(self, size: QSize, threads: int = 2, parent: QObject | None = None):
        super().__init__(parent)
        self.size = size
        self.generation = 0
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)

    def request(self, key: object, *paths: str | None) -> None:
        self.pool.start(_ImageJob(self, self.generation, key, [p for p in paths if p], self.size))

    def reset(self) -> int:
        self.generation += 1
        self.pool.clear()
        return self.generation

    def shutdown(self) -> None:
        self.reset()
        self.pool.waitForDone()


# ------------------------------------------------------------------ warm-up


class FunctionThread(QThread):
    """Runs one function once; ``result`` or ``error`` is set when it returns."""

    def __init__(self, function: Callable[[], object], parent: QObject | None = None):
        super().__init__(parent)
        self._function = function
        self.result = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._function()
        except Exception as exc:  # reported, never raised into Qt
            log.warning("background task failed: %s", exc)
            self.error = exc


# ------------------------------------------------------------------ folders


class CountThread(QThread):
    """Counts the image files under folders (a stat-only walk), and with ``library_path`` the
    ones its catalog holds unchanged (``plan`` once finished); cancellable."""

    counted = Signal(int, bool)  # files so far, finished

    def __init__(self, folders: Sequence[str], parent: QObject | None = None, *,
                 exclusions: Sequence[str] = (), suffixes: Sequence[str] | None = None,
                 library_path: str | os.PathLike | None = None):
        super().__init__(parent)
        self._folders = list(folders)
        self._exclusions = list(exclusions)
        self._suffixes = None if suffixes is None else frozenset(suffixes)
        self._library_path = library_path
        self.plan = None  # engine.index.IndexPlan, once finished
        self.cancel = threading.Event()

    def run(self) -> None:
        from engine.index import plan_index

        store = self._open_store()
        try:
            plan = plan_index(self._folders, store=store, exclusions=self._exclusions, suffixes=self._suffixes,
                              cancel=self.cancel, progress=lambda p: self.counted.emit(p.found, False))
        finally:
            if store is not None:
                store.close()
        if plan is not None:
            self.plan = plan
            self.counted.emit(plan.found, True)

    def _open_store(self):
        """The library's catalog, read-only; None when there is none (everything is new)."""
        if self._library_path is None:
            return None
        from engine.store import Store

        try:
            return Store.open(self._library_path, create=False, readonly=True)
        except LookalikeError:
            return None


@dataclass(frozen=True)
class IndexSetup:
    """What the wizard chose for a library, applied by the index thread before it walks."""

    exclusions: tuple[str, ...] = ()        # the complete list of exclusion patterns
    suffixes: tuple[str, ...] | None = None  # the file types to index; None: every type
    bits: int = 64                           # code length of the model a new library gets
    forget_roots: tuple[str, ...] = ()       # roots to forget (their photos, not their labels)


def call_model_provider(provider: Callable[..., Path], bits: int) -> Path:
    """A model provider is ``provider(bits)``; one that takes no argument gives its one model."""
    import inspect

    try:
        takes_bits = bool(inspect.signature(provider).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: assume the documented form
        takes_bits = True
    return provider(bits) if takes_bits else provider()


class IndexThread(QThread):
    """Indexes folders into the library at a path with a Library of its own; cancellable.

    ``setup`` (exclusions, file types) is written to the library first, in this thread;
    a library without a model gets ``model_provider(setup.bits)``.
    """

    stage = Signal(str)
    progress = Signal(object)  # a copy of engine.index.IndexProgress
    done = Signal(object)      # engine.index.IndexReport
    failed = Signal(str)

    def __init__(self, library_path, folders: Sequence[str], *, model_provider: Callable[..., Path],
                 indexer_options: dict | None = None, setup: IndexSetup | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("lookalike-index")
        self._path = Path(library_path)
        self._folders = list(folders)
        self._model_provider = model_provider
        self._options = dict(indexer_options or {})
        self._setup = setup
        self.cancel = threading.Event()

    def run(self) -> None:
        from engine.index import Indexer, IndexReport
        from engine.library import Library

        try:
            with Library(self._path, create=True) as library:
                forgotten = 0
                if self._setup is not None:
                    from engine.index import set_exclusions, set_indexed_suffixes

                    set_exclusions(library.store, self._setup.exclusions)
                    set_indexed_suffixes(library.store, self._setup.suffixes)
                    forgotten = sum(library.forget_root(root) for root in self._setup.forget_roots)
                if not self._folders and self._setup is not None and self._setup.forget_roots:
                    self.done.emit(IndexReport(removed=forgotten))  # every folder removed: nothing to walk
                    return
                if library.store.active_model() is None:
                    self.stage.emit("Preparing the model (the first time only; this takes a minute) ...")
                    bits = self._setup.bits if self._setup is not None else 64
                    library.install_model(call_model_provider(self._model_provider, bits), cancel=self.cancel)
                if self.cancel.is_set():
                    self.done.emit(IndexReport(cancelled=True))
                    return
                self.stage.emit("Looking for photos ...")
                indexer = Indexer(library, progress=self._on_progress, cancel=self.cancel, **self._options)
                report = indexer.run(self._folders)
                report.removed += forgotten
        except LookalikeError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # a bug must reach the page, not vanish with the thread
            log.exception("indexing failed")
            self.failed.emit(f"indexing failed: {exc}")
            return
        self.done.emit(report)

    def _on_progress(self, progress) -> None:
        # The indexer keeps mutating its snapshot: send a copy across threads.
        self.progress.emit(dataclasses.replace(progress))


# ------------------------------------------------------------------ watching


class UpdateThread(QThread):
    """Applies a folder watcher's batch of changed paths to the library (engine.watch.apply_changes).

    ``locked`` is sent instead of ``done`` when another process holds the library's writer
    lock: the batch was not applied and should be tried again later.
    """

    progress = Signal(object)  # a copy of engine.index.IndexProgress
    done = Signal(object)      # engine.index.IndexReport
    locked = Signal()
    failed = Signal(str)

    def __init__(self, library_path, paths: Sequence[str], *, indexer_options: dict | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("lookalike-update")
        self._path = Path(library_path)
        self.paths = list(paths)
        self._options = dict(indexer_options or {})
        self.cancel = threading.Event()

    def run(self) -> None:
        from engine.library import Library
        from engine.watch import apply_changes

        try:
            with Library(self._path, create=False) as library:
                if not library.store.try_writer_lock():
                    self.locked.emit()
                    return
                try:
                    report = apply_changes(library, self.paths, progress=self._on_progress, cancel=self.cancel,
                                           **self._options)
                finally:
                    library.store.release_writer_lock()
        except LookalikeError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # a bug must be reported, not vanish with the thread
            log.exception("applying folder changes failed")
            self.failed.emit(f"updating the library failed: {exc}")
            return
        self.done.emit(report)

    def _on_progress(self, progress) -> None:
        self.progress.emit(dataclasses.replace(progress))
