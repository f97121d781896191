"""The window's one library writer: index runs and watched-folder updates, one at a time, off the GUI thread."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from app.background import Task, run_in_thread
from app.workers import IndexSetup, apply_folder_changes, index_folders
from engine.default_model import build_default_model
from engine.errors import LookalikeError, UserError

log = logging.getLogger(__name__)

# QSettings keys shared by the wizard and the main window.
SETTINGS_THREADS = "indexing/threads"    # decoder processes
SETTINGS_PROVIDER = "indexing/provider"  # "auto", "cpu", "cuda" or "tensorrt" (engine.encoder.choose_providers)
SETTINGS_WATCH = "watch/enabled"

WATCH_DEBOUNCE = 2.0      # seconds of quiet before a batch of changes is applied
LOCKED_RETRY_MS = 5_000   # another process holds the writer lock: try the batch again after this


def default_threads() -> int:
    return os.cpu_count() or 1


def saved_threads(settings: QSettings) -> int:
    try:
        return max(1, int(settings.value(SETTINGS_THREADS, default_threads())))
    except (TypeError, ValueError):
        return default_threads()


def saved_provider(settings: QSettings) -> str:
    value = str(settings.value(SETTINGS_PROVIDER, "auto"))
    return value if value in ("auto", "cpu", "cuda", "tensorrt") else "auto"


def default_model_provider(bits: int = 64) -> Path:
    # The shipped folder (64 bits), or one derived from it with numpy (other lengths) and cached.
    return build_default_model(bits, quiet=True)


def provider_choices() -> list[tuple[str, str]]:
    """(setting, label) of the devices this machine can index on; imports ONNX Runtime (slow: not on the GUI thread)."""
    from engine.encoder import CPU_PROVIDER, choose_providers  # ONNX Runtime: in a worker thread only

    auto, why = choose_providers("auto")
    now = "GPU" if auto[0] != CPU_PROVIDER else "CPU"
    choices = [("auto", f"Automatic (GPU if present, else CPU; now {now}: {why})"), ("cpu", "CPU")]
    for setting, label in (("cuda", "CUDA (NVIDIA GPU)"), ("tensorrt", "TensorRT (NVIDIA GPU)")):
        wanted, _ = choose_providers(setting)
        if wanted[0] != CPU_PROVIDER:
            choices.append((setting, label))
    return choices


@dataclass
class LibraryInfo:
    """What the wizard shows of a library before indexing (read in a worker thread)."""

    exists: bool = False
    model: dict | None = None  # {"version", "name", "bits"} of the active model
    roots: list[str] = field(default_factory=list)
    root_photos: dict[str, int] = field(default_factory=dict)  # photos indexed under each root
    exclusions: list[str] = field(default_factory=list)
    suffixes: list[str] | None = None  # None: every type
    providers: list[tuple[str, str]] = field(default_factory=lambda: [("auto", "Automatic"), ("cpu", "CPU")])
    error: str | None = None


def read_library_info(library_path: str | os.PathLike) -> LibraryInfo:
    """The library's model, roots, exclusions and file types, and the devices to index on."""
    # numpy: read in the wizard's worker thread, never on the window's start (this module is)
    from engine.imageio import IMAGE_SUFFIXES
    from engine.index import indexed_suffixes
    from engine.store import Store

    info = LibraryInfo()
    try:
        info.providers = provider_choices()
    except Exception as exc:  # ONNX Runtime missing or broken: indexing will say so
        log.warning("cannot list ONNX Runtime providers: %s", exc)
    try:
        # Read-only: looking must neither create a library nor repair one being written.
        store = Store.open(library_path, create=False, readonly=True)
    except UserError:
        return info  # no library yet
    except LookalikeError as exc:
        info.error = str(exc)
        return info
    try:
        info.exists = True
        model = store.active_model()
        if model is not None:
            info.model = {"version": model.id, "name": model.name, "bits": model.bits,
                          "head": model.manifest.get("head") or {}, "created_at": model.created_at,
                          "rerank": model.manifest.get("rerank")}
        counts = store.root_counts()
        info.roots = [path for _, path, _, _ in counts]
        info.root_photos = {path: photos for _, path, photos, _ in counts}
        info.exclusions = store.exclusions()
        suffixes = indexed_suffixes(store)
        info.suffixes = None if suffixes == IMAGE_SUFFIXES else sorted(suffixes)
    finally:
        store.close()
    return info


class IndexingService(QObject):
    """Runs every write the window makes to its library, one at a time, in worker threads.

    Index runs come from the wizard (which may close meanwhile: the run goes on, and the
    window's status bar shows it); updates come from the folder watcher and wait while an
    index run goes on. The service also owns the watcher, started from the library's
    status (roots, exclusions, file types).
    """

    stage = Signal(str)
    progress = Signal(object)        # engine.index.IndexProgress of the index run
    indexingStarted = Signal()
    indexingFinished = Signal()      # after done or failed
    indexingDone = Signal(object)    # engine.index.IndexReport
    indexingFailed = Signal(str)
    updateStarted = Signal(int)      # paths in the batch
    updateDone = Signal(object)      # engine.index.IndexReport of a watched batch
    updateFailed = Signal(str)
    libraryChanged = Signal()        # something was written: status and searches may differ
    watchProblem = Signal(str)
    # From the watcher's thread, queued to this object's thread; an object, not a list, so that
    # a path that is not UTF-8 keeps its bytes (a list signal converts its strings to Qt text).
    _changesDetected = Signal(object)
    _watchError = Signal(str)

    def __init__(self, library_path: str | os.PathLike, settings: QSettings, *, parent: QObject | None = None,
                 model_provider: Callable[..., Path] | None = None, indexer_options: dict | None = None,
                 watch_debounce: float = WATCH_DEBOUNCE):
        super().__init__(parent)
        self.library_path = Path(library_path)
        self.settings = settings
        self.model_provider = model_provider or default_model_provider
        self.fixed_options = dict(indexer_options or {})  # override the settings (tests, development)
        self.watch_debounce = watch_debounce
        self._thread: Task | None = None  # the index run or the watched batch being applied
        self._thread_kind: str | None = None  # "index" or "update"
        self._update_paths: list[str] = []  # the batch being applied
        self._index_job: tuple[list[str], IndexSetup | None, dict] | None = None
        self._indexing = False
        self._pending: set[str] = set()
        self._closed = False
        # what the progress page shows when it opens while a run goes on
        self.last_stage = ""
        self.last_progress = None
        self.report = None
        self.error: str | None = None
        self._watcher = None
        self._watch_config: tuple | None = None
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self._pump)
        self._changesDetected.connect(self.queue_update)
        self._watchError.connect(self.watchProblem)

    # ------------------------------------------------------------------ options

    def indexer_options(self, **chosen) -> dict:
        """Decoder threads and device from the settings (or ``chosen``), then the fixed options."""
        options = {"workers": saved_threads(self.settings), "providers": saved_provider(self.settings)}
        options.update(chosen)
        options.update(self.fixed_options)
        return options

    # ------------------------------------------------------------------ index runs

    def is_indexing(self) -> bool:
        """An index run is queued or running (watch updates do not count)."""
        return self._indexing

    def is_busy(self) -> bool:
        return self._thread is not None

    def index(self, folders: Sequence[str], setup: IndexSetup | None = None, **chosen_options) -> None:
        """Start an index run of ``folders`` (after the update in flight, if any)."""
        if self._closed:
            return
        if self._indexing:
            raise RuntimeError("an index run is already going on")
        self._index_job = (list(folders), setup, self.indexer_options(**chosen_options))
        self._indexing = True
        self.report, self.error, self.last_progress = None, None, None
        self.last_stage = "Waiting for the update in progress…" if self._thread is not None else "Starting…"
        self.indexingStarted.emit()
        self.stage.emit(self.last_stage)
        if self._thread_kind == "update":
            self._thread.cancel.set()  # its batch goes back to the queue; the run covers it anyway
        self._pump()

    def cancel(self) -> None:
        """Cancel the index run (a queued one never starts; a running one stops after its batch)."""
        if not self._indexing:
            return
        if self._index_job is not None:
            self._index_job = None
            self._indexing = False
            self.error = "cancelled before it started"
            self.indexingFailed.emit(self.error)
            self.indexingFinished.emit()
            return
        if self._thread_kind == "index":
            self._thread.cancel.set()
            self._set_stage("Cancelling: finishing the photos in flight…")

    def _set_stage(self, text: str) -> None:
        self.last_stage = text
        self.stage.emit(text)

    def _pump(self) -> None:
        """Start the next job if nothing runs: an index run first, else the pending watch changes."""
        if self._closed or self._thread is not None:
            return
        if self._index_job is not None:
            folders, setup, options = self._index_job
            self._index_job = None
            cancel = threading.Event()
            thread = run_in_thread(
                lambda report: index_folders(self.library_path, folders, model_provider=self.model_provider,
                                             indexer_options=options, setup=setup, cancel=cancel, report=report),
                self._on_index_done, self._on_index_failed, progress=self._on_index_progress, cancel=cancel,
                after=self._on_thread_finished, what="indexing", parent=self)
            self._thread_kind = "index"
        elif self._pending and not self._retry.isActive():
            paths = sorted(self._pending)
            self._pending.clear()
            options = {k: v for k, v in self.indexer_options().items() if k in ("workers", "providers")}
            cancel = threading.Event()
            self.updateStarted.emit(len(paths))
            thread = run_in_thread(
                lambda: apply_folder_changes(self.library_path, paths, indexer_options=options, cancel=cancel),
                self._on_update_done, self.updateFailed.emit, cancel=cancel, after=self._on_thread_finished,
                what="updating the library", parent=self)
            self._thread_kind, self._update_paths = "update", paths
        else:
            return
        self._thread = thread

    def _on_index_progress(self, progress) -> None:
        if isinstance(progress, str):  # a stage: preparing the model, looking for photos
            self._set_stage(progress)
            return
        self.last_progress = progress
        self.progress.emit(progress)

    def _on_index_done(self, report) -> None:
        self.report = report
        self.indexingDone.emit(report)

    def _on_index_failed(self, message: str) -> None:
        self.error = message
        self.indexingFailed.emit(message)

    def _on_update_done(self, report) -> None:
        if report is None:
            # Another process (the command line) is writing: keep the batch and try again later.
            if self._thread_kind == "update":
                self._requeue(self._update_paths, LOCKED_RETRY_MS)
            return
        if report.cancelled:  # cancelled for an index run or on quit: not applied yet
            self._requeue(self._update_paths if self._thread is not None else [], 0)
            return
        self.updateDone.emit(report)

    def _requeue(self, paths: Sequence[str], delay_ms: int) -> None:
        self._pending.update(paths)
        if delay_ms:
            self._retry.start(delay_ms)

    def _on_thread_finished(self) -> None:
        thread, self._thread = self._thread, None
        kind, self._thread_kind, self._update_paths = self._thread_kind, None, []
        if thread is None:
            return
        thread.wait()  # finished is sent just before the thread ends: let it end (the task deletes itself)
        if kind == "index":
            self._indexing = False
            self.indexingFinished.emit()
        if not self._closed:
            self.libraryChanged.emit()
            self._pump()

    # ------------------------------------------------------------------ watching

    def watch_enabled(self) -> bool:
        return bool(self.settings.value(SETTINGS_WATCH, True, type=bool))

    def set_watch_enabled(self, enabled: bool) -> None:
        self.settings.setValue(SETTINGS_WATCH, bool(enabled))
        if not enabled:
            self._stop_watcher()
        elif self._watch_config is not None:
            self.configure_watch(*self._watch_config)

    def is_watching(self) -> bool:
        return self._watcher is not None

    @property
    def watcher(self):
        return self._watcher

    def configure_watch(self, roots: Sequence[str], exclusions: Sequence[str] = (),
                        suffixes: Sequence[str] | None = None) -> None:
        """Watch ``roots`` (from the library's status) if watching is on; restart only on a change."""
        config = (tuple(sorted(roots)), tuple(exclusions), None if suffixes is None else tuple(sorted(suffixes)))
        changed = config != self._watch_config
        self._watch_config = config
        if self._closed or not self.watch_enabled() or not roots:
            self._stop_watcher()
            return
        if self._watcher is not None and not changed:
            return
        self._stop_watcher()
        from engine.watch import FolderWatcher  # numpy: not before the window's first paint

        self._watcher = FolderWatcher(config[0], self._changesDetected.emit, exclusions=config[1],
                                      suffixes=config[2], ignore=[self.library_path], debounce=self.watch_debounce,
                                      on_error=lambda root, exc: self._watchError.emit(f"cannot watch {root}: {exc}"))
        self._watcher.start()

    def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def queue_update(self, paths: list) -> None:
        """Changed paths from the watcher: applied once nothing else writes."""
        if self._closed:
            return
        self._pending.update(paths)
        self._pump()

    # ------------------------------------------------------------------ quitting

    def shutdown(self) -> None:
        """Stop watching, cancel what runs and wait for it: no thread outlives the window."""
        if self._closed:
            return
        self._closed = True
        self._retry.stop()
        self._stop_watcher()
        self._index_job = None
        thread, self._thread = self._thread, None
        self._thread_kind, self._update_paths = None, []
        if thread is not None:
            thread.cancel.set()
            thread.wait()
        self._indexing = False


# ------------------------------------------------------------------ wording


def format_duration(seconds: float | None, *, compact: bool = False) -> str:
    """How long, for people: 40 s, 3 min 05 s, 2 h 05 min; ``compact`` rounds to whole
    minutes below an hour (3 min), for the status bar's rough ETA."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min" if compact else f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def time_left(eta: float, *, compact: bool = False) -> str:
    """"about 3 min 05 s left" (compact: "ETA 3 min"); "almost done" under a second, where a
    rounded "0 s left" would read as a stall."""
    if eta < 1:
        return "almost done"
    return f"ETA {format_duration(eta, compact=True)}" if compact else f"about {format_duration(eta)} left"


def compact_progress(progress) -> str:
    """One status-bar line for an index run: "Indexing 1,234 / 5,000 · 18/s · ETA 3 min"."""
    if progress is None:
        return "Indexing…"
    if progress.phase == "walking":
        return f"Looking for photos… {progress.found:,} found"
    if progress.phase == "finishing":
        return "Finishing indexing…"
    parts = [f"Indexing {progress.done:,} / {progress.total:,}"]
    if progress.rate > 0:
        parts.append(f"{progress.rate:.0f}/s")
    if progress.eta is not None:
        parts.append(time_left(progress.eta, compact=True))
    return " · ".join(parts)
