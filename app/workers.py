"""The work the window hands off its GUI thread (run through app.background): searching, image loading, counting, indexing."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

from app.background import LibraryThread, LibraryWorker
from app.refine import QueryExamples, WindowQuery
from engine.errors import LookalikeError, UserError

log = logging.getLogger(__name__)

# The engine modules (numpy with them) are imported inside the functions that run in a worker
# thread: they load there, and the window paints first without them.


@dataclass(frozen=True)
class ResultItem:
    """One search result as the grid shows it."""

    path: str
    score: float
    hamming: int
    thumb: str | None  # the cached thumbnail, when the store knows the file's content hash
    similarity: int | None = None  # how alike, an engine.similarity level (its words: LABELS)


# ------------------------------------------------------------------ search


class SearchThread(QObject):
    """The window's searches and status reads, in a LibraryThread of their own.

    ``search`` supersedes the searches still queued: a burst of queries only runs the last one.
    """

    statusReady = Signal(object)  # a dict; an object, so the roots' names keep every byte
    # Paths travel as Python objects: a str signal argument would drop the bytes of a name
    # that is not UTF-8 (Qt text cannot hold them).
    resultsReady = Signal(int, object, list)  # request id, query path, [ResultItem]
    failed = Signal(int, str)

    def __init__(self, library_path, parent: QObject | None = None):
        super().__init__(parent)
        self._path = Path(library_path)
        self._library = LibraryThread(library_path, "lookalike-search", parent=self)
        self._request = 0
        # read in the worker thread: an int read is atomic, and a stale one costs one search
        self._latest = 0
        self._tmp: tempfile.TemporaryDirectory | None = None  # pasted images; used in the worker thread only
        self._examples = QueryExamples()  # the photos' codes and features, read once; worker thread only

    def refresh(self) -> None:
        self._library.call(self._status, self.statusReady.emit, self._on_status_failed, what="reading the library")

    def search(self, query: object, k: int, options: dict | None = None) -> int:
        """Search for ``query``: a photo's path, pasted pixels, or a WindowQuery (several photos,
        marked results), as `lookalike search` does; ``options``: SearchParams fields plus ``folder``."""
        self._request += 1
        request = self._latest = self._request
        options = dict(options or {})
        self._library.call(lambda worker: self._search(worker, request, query, k, options),
                           lambda found: self.resultsReady.emit(request, *found),
                           lambda message: self.failed.emit(request, message),
                           what="search", stale=lambda: request != self._latest)
        return request

    @property
    def current_request(self) -> int:
        return self._request

    def shutdown(self) -> None:
        self._latest = -1  # queued searches are dropped
        self._library.shutdown()
        if self._tmp is not None:  # the worker thread has ended: nothing uses it now
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------ in the worker thread

    def _status(self, worker: LibraryWorker) -> dict:
        from engine.index import indexed_suffixes  # numpy: in the worker thread

        library = worker.library_or_none()
        if library is None:
            return {"exists": False, "library": str(self._path), "images": 0, "model": None}
        # exclusions and types too: the folder watcher filters its events by them
        return {"exists": True, **library.status(), "exclusions": library.store.exclusions(),
                "suffixes": sorted(indexed_suffixes(library.store))}

    def _on_status_failed(self, message: str) -> None:
        self.statusReady.emit({"exists": False, "library": str(self._path), "images": 0, "model": None,
                               "error": message})

    def _search(self, worker: LibraryWorker, request: int, query: object, k: int,
                options: dict) -> tuple[str, list[ResultItem]]:
        # numpy and the engine: in the worker thread
        from engine.layout import thumbnail_path
        from engine.search import SearchParams

        # one photo (a path or pasted pixels), or an app.refine.WindowQuery: several, and marks
        wanted = query if isinstance(query, WindowQuery) else WindowQuery.of(query)
        path = wanted.first_path or ""
        library = worker.library_or_none()
        if library is None:
            raise UserError("there is no library yet: add photo folders first")
        folder = options.pop("folder", None)
        hits = self._examples.search(library, wanted, SearchParams(k=k, **options), folder=folder,
                                     image_path=lambda image: self._query_path(request, image))
        store = library.store
        items = []
        for hit in hits:
            row = store.image_by_path(hit.path)
            thumb = thumbnail_path(store.thumbs_dir(), row.content_hash) if row and row.content_hash else None
            items.append(ResultItem(hit.path, hit.score, hit.hamming, str(thumb) if thumb else None,
                                    hit.similarity.level))
        return path, items

    def _query_path(self, request: int, query: object) -> str:
        if isinstance(query, QImage):
            # Pasted or dropped pixels: the engine reads files, so write them out once here.
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="lookalike-query-")
            path = os.path.join(self._tmp.name, f"query-{request}.png")
            if not query.save(path, "PNG"):
                raise UserError("the pasted image could not be saved for the search")
            return path
        return str(query)


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
        self._closed = False  # shut down: no more work is started

    def request(self, key: object, *paths: str | None) -> None:
        if self._closed:
            return  # a view still painting, or a late answer, after its window shut down
        self.pool.start(_ImageJob(self, self.generation, key, [p for p in paths if p], self.size))

    def reset(self) -> int:
        self.generation += 1
        self.pool.clear()
        return self.generation

    def shutdown(self) -> None:
        self._closed = True
        self.reset()
        self.pool.waitForDone()


# ------------------------------------------------------------------ folders


def plan_folders(folders: Sequence[str], *, library_path: str | os.PathLike | None = None,
                 exclusions: Sequence[str] = (), suffixes: Sequence[str] | None = None,
                 cancel: threading.Event, report: Callable[[int], None]):
    """Count the image files under ``folders`` (a stat-only walk), and with ``library_path`` the
    ones its catalog holds unchanged: the engine.index.IndexPlan, or None when cancelled.
    ``report`` receives the files found so far."""
    from engine.index import plan_index  # numpy: in the worker thread

    store = _open_catalog(library_path)
    try:
        return plan_index(list(folders), store=store, exclusions=list(exclusions),
                          suffixes=None if suffixes is None else frozenset(suffixes),
                          cancel=cancel, progress=lambda progress: report(progress.found))
    finally:
        if store is not None:
            store.close()


def _open_catalog(library_path):
    """The library's catalog, read-only; None when there is none (everything is new)."""
    if library_path is None:
        return None
    from engine.store import Store

    try:
        return Store.open(library_path, create=False, readonly=True)
    except LookalikeError:
        return None


@dataclass(frozen=True)
class IndexSetup:
    """What the wizard chose for a library, applied by the index run before it walks."""

    exclusions: tuple[str, ...] = ()        # the complete list of exclusion patterns
    suffixes: tuple[str, ...] | None = None  # the file types to index; None: every type
    bits: int = 64                           # code length of the model a new library gets
    forget_roots: tuple[str, ...] = ()       # roots to forget (their photos, not their labels)


def call_model_provider(provider: Callable[..., Path], bits: int) -> Path:
    """A model provider is ``provider(bits)``; one that takes no argument gives its one model."""
    try:
        takes_bits = bool(inspect.signature(provider).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: assume the documented form
        takes_bits = True
    return provider(bits) if takes_bits else provider()


def index_folders(library_path, folders: Sequence[str], *, model_provider: Callable[..., Path],
                  indexer_options: dict | None = None, setup: IndexSetup | None = None,
                  cancel: threading.Event, report: Callable[[object], None]):
    """Index ``folders`` into the library at ``library_path`` (created if need be) with a Library
    of its own; the engine.index.IndexReport. Run with run_in_thread.

    ``setup`` (exclusions, file types) is written to the library first; a library without a
    model gets ``model_provider(setup.bits)``. ``report`` receives a stage (str) or a copy of
    the engine.index.IndexProgress.
    """
    # numpy and the engine: in the worker thread
    from engine.index import Indexer, IndexReport, set_exclusions, set_indexed_suffixes
    from engine.library import Library

    with Library(Path(library_path), create=True) as library:
        forgotten = 0
        if setup is not None:
            set_exclusions(library.store, setup.exclusions)
            set_indexed_suffixes(library.store, setup.suffixes)
            forgotten = sum(library.forget_root(root) for root in setup.forget_roots)
            if not folders and setup.forget_roots:
                return IndexReport(removed=forgotten)  # every folder removed: nothing to walk
        if library.store.active_model() is None:
            report("Preparing the model (the first time only; this takes a minute) ...")
            bits = setup.bits if setup is not None else 64
            library.install_model(call_model_provider(model_provider, bits), cancel=cancel)
        if cancel.is_set():
            return IndexReport(cancelled=True, removed=forgotten)
        report("Looking for photos ...")
        # The indexer keeps mutating its snapshot: send a copy across threads.
        indexer = Indexer(library, progress=lambda progress: report(dataclasses.replace(progress)), cancel=cancel,
                          **dict(indexer_options or {}))
        result = indexer.run(list(folders))
        result.removed += forgotten
        return result


# ------------------------------------------------------------------ watching


def apply_folder_changes(library_path, paths: Sequence[str], *, indexer_options: dict | None = None,
                         cancel: threading.Event):
    """Apply a folder watcher's batch of changed paths to the library (engine.watch.apply_changes):
    the engine.index.IndexReport, or None when another process holds the library's writer lock
    (the batch was not applied and should be tried again later). Run with run_in_thread."""
    # numpy and the engine: in the worker thread
    from engine.library import Library
    from engine.watch import apply_changes

    with Library(Path(library_path), create=False) as library:
        if not library.store.try_writer_lock():
            return None
        try:
            return apply_changes(library, list(paths), cancel=cancel, **dict(indexer_options or {}))
        finally:
            library.store.release_writer_lock()
