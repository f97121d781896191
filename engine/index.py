"""Index photo folders: walk, diff by (size, mtime) and content hash, decode in parallel, encode, commit.

The walk runs first (stat only) so progress has a total. Changed and new files go to a pool
of decoder processes; each worker reads the file once, hashes it, and either finds that
content already encoded (a move, a rename, a copy: no decode) or decodes it, writing the
thumbnail on the way. The main process encodes batches with ONNX Runtime, appends codes and
features, and commits one transaction per batch. Deleted files are forgotten only after a
complete, uncancelled walk of their root.

``Indexer.update`` does the same for a few files or folders (a folder watcher's batch):
new and changed files are indexed first, then the paths that are gone are forgotten, so a
move finds its content still catalogued and reuses the encoding.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import arrays, imageio  # imageio.decode_image looked up per call: tests count decodes
from engine.atomic import write_bytes
from engine.codes import codes_from_logits
from engine.errors import DecodeError, DiskFull, EnvironmentProblem, LibraryDamaged, UserError
from engine.imageio import IMAGE_SUFFIXES, RAW_SUFFIXES, is_transient
from engine.layout import thumbnail_path
from engine.library import Library
from engine.reencode import encode_missing
from engine.store import ImageRow, KnownContent, NewImage, Store
from engine.workers import Crashed, DecoderPool, crash_if_marked

log = logging.getLogger(__name__)

DEFAULT_EXCLUSIONS = ("@eaDir", "#recycle", ".Trash*", "$RECYCLE.BIN", "System Volume Information")

# File types a person can choose to index, as the wizard names them; only the suffixes this
# build can decode count (engine.imageio.IMAGE_SUFFIXES: HEIC and AVIF need their plugins).
SUFFIX_FAMILIES: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "HEIC/HEIF": (".heic", ".heif"),
    "WebP": (".webp",),
    "TIFF": (".tif", ".tiff"),
    "BMP": (".bmp",),
    "GIF": (".gif",),
    "AVIF": (".avif",),
    "JPEG XL": (".jxl",),
    "Camera RAW": RAW_SUFFIXES,
}
SUFFIXES_META = "index_suffixes"  # store meta: JSON list of the suffixes to index; absent: all
SMALL_UPDATE = 16  # an update with fewer files to decode decodes them in the calling thread


def suffix_families() -> dict[str, tuple[str, ...]]:
    """The file type families this build can decode, each with its suffixes; a decodable suffix
    of no family is a family of its own (".jxl": "JXL"), so every type the engine reads is offered."""
    decodable = imageio.IMAGE_SUFFIXES  # looked up per call: what the decoders read may change (tests widen it)
    families = {name: tuple(s for s in suffixes if s in decodable) for name, suffixes in SUFFIX_FAMILIES.items()}
    families = {name: suffixes for name, suffixes in families.items() if suffixes}
    named = {s for suffixes in families.values() for s in suffixes}
    for suffix in sorted(decodable - named):
        families[suffix.lstrip(".").upper()] = (suffix,)
    return families


def indexed_suffixes(store: Store) -> frozenset[str]:
    """The suffixes this library indexes: the person's choice, else every decodable one."""
    raw = store.get_meta(SUFFIXES_META)
    if raw is None:
        return IMAGE_SUFFIXES
    try:
        value = json.loads(raw)
        if value is None:
            return IMAGE_SUFFIXES
        chosen = {str(s).lower() for s in value}
    except (ValueError, TypeError):
        log.warning("ignoring an unreadable %s in the library: %r", SUFFIXES_META, raw)
        return IMAGE_SUFFIXES
    return frozenset(chosen & IMAGE_SUFFIXES)


def set_indexed_suffixes(store: Store, suffixes: Iterable[str] | None) -> None:
    """Remember which suffixes this library indexes (None: all); the next full run forgets the others."""
    if suffixes is None:
        with store.transaction():
            store.set_meta(SUFFIXES_META, json.dumps(None))  # set_meta has no delete; null reads as "all"
        return
    chosen = sorted({s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes})
    if not chosen:
        raise UserError("choose at least one file type to index")
    with store.transaction():
        store.set_meta(SUFFIXES_META, json.dumps(chosen))


def set_exclusions(store: Store, patterns: Iterable[str]) -> None:
    """Make the library's exclusion patterns exactly ``patterns`` (fnmatch; names or root-relative paths)."""
    wanted = [p.strip() for p in patterns if p.strip()]
    with store.transaction():
        for pattern in set(store.exclusions()) - set(wanted):
            store.remove_exclusion(pattern)
        for pattern in wanted:
            store.add_exclusion(pattern)


def outermost_folders(folders: Iterable[str]) -> dict[str, str]:
    """Each folder (absolute) -> the outermost of ``folders`` holding it, itself when none does.

    Roots are kept apart from one another: a root inside another would be walked twice (its
    photos counted twice, its broken files listed twice), so it is merged into the outer one.
    """
    unique = sorted(set(folders), key=len)
    outer: dict[str, str] = {}
    tops: list[str] = []
    for folder in unique:
        holder = next((top for top in tops if folder.startswith(_dir_prefix(top))), None)
        if holder is None:
            tops.append(folder)
        outer[folder] = holder or folder
    return outer


def is_excluded(root: str, path: str, exclusions: Sequence[str] = (), *, include_hidden: bool = False) -> bool:
    """Whether ``path`` under ``root`` is one the walk would never reach: a hidden or excluded
    name, or root-relative path, anywhere along the way (the default exclusions included)."""
    rel = os.path.relpath(path, root)
    if rel == ".":
        return False
    if rel == ".." or rel.startswith(".." + os.sep):
        return True  # not under the root at all
    patterns = tuple(exclusions) + DEFAULT_EXCLUSIONS
    parts = rel.split(os.sep)
    for i, name in enumerate(parts):
        if _excluded_entry(name, os.sep.join(parts[:i + 1]), patterns, include_hidden):
            return True
    return False


def _excluded_entry(name: str, rel: str, patterns: Sequence[str], include_hidden: bool) -> bool:
    if not include_hidden and name.startswith("."):
        return True
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


@dataclass
class IndexProgress:
    """A snapshot for progress bars: counts so far and an estimate of what is left."""

    phase: str            # "walking", "indexing" or "finishing"
    done: int = 0         # files handled in the indexing phase
    total: int = 0        # files to handle (known once the walk is over)
    found: int = 0        # image files seen by the walk
    skipped: int = 0
    reused: int = 0       # handled without decoding: content already encoded
    rate: float = 0.0     # files per second in the indexing phase
    current: str | None = None

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.total <= self.done:
            return None
        return (self.total - self.done) / self.rate


@dataclass
class IndexReport:
    """What an index run did."""

    found: int = 0
    unchanged: int = 0
    added: int = 0
    reused: int = 0
    skipped: int = 0
    removed: int = 0
    cancelled: bool = False
    elapsed: float = 0.0
    refit: str | None = None
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    merged: list[tuple[str, str]] = field(default_factory=list)  # (inner folder, the root now holding it)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("skipped_files", "merged")}


@dataclass(frozen=True)
class _Work:
    path: str
    root_id: int
    size: int
    mtime_ns: int
    existing: ImageRow | None


# ----------------------------------------------------------------------- walk


def walk_images(root: str, *, exclusions: Sequence[str] = (), include_hidden: bool = False,
                on_error: Callable[[str, OSError], None] | None = None,
                suffixes: Iterable[str] | None = None,
                base: str | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """Image files under ``root`` with their stat, directory by directory.

    Follows symbolic links to folders but never enters a folder twice (loops are survived);
    skips hidden entries unless asked, and names or paths relative to ``base`` (default:
    ``root``; a library root when walking one of its sub-folders) matching an exclusion
    pattern (fnmatch). ``suffixes`` limits the file types (default: every decodable one).
    """
    wanted = IMAGE_SUFFIXES if suffixes is None else frozenset(suffixes)
    patterns = tuple(exclusions) + DEFAULT_EXCLUSIONS
    seen_dirs: set[tuple[int, int]] = set()
    base = root if base is None else base

    def excluded(name: str, path: str) -> bool:
        return _excluded_entry(name, os.path.relpath(path, base), patterns, include_hidden)

    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                continue
            seen_dirs.add(key)
            with os.scandir(directory) as entries:
                listing = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            if on_error:
                on_error(directory, exc)
            continue
        subdirs = []
        for entry in listing:
            if excluded(entry.name, entry.path):
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    subdirs.append(entry.path)
                    continue
                if os.path.splitext(entry.name)[1].lower() not in wanted:
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                # A broken link or a file that vanished: still a file the person has, so report it.
                yield entry.path, None  # type: ignore[misc]
                continue
            if stat.S_ISREG(st.st_mode):
                yield entry.path, st
        stack.extend(reversed(subdirs))


@dataclass
class IndexPlan:
    """What indexing some folders would take, from a stat-only walk and the catalog."""

    found: int = 0      # image files under the folders
    unchanged: int = 0  # catalogued with this size and time: not read again (a run costs ~0 for them)

    @property
    def to_read(self) -> int:
        return self.found - self.unchanged


def plan_index(folders: Sequence[str], *, store: Store | None = None, exclusions: Sequence[str] = (),
               suffixes: Iterable[str] | None = None, cancel: threading.Event | None = None,
               progress: Callable[[IndexPlan], None] | None = None, every: int = 500) -> IndexPlan | None:
    """Count the image files under ``folders`` and, with the library's ``store``, those an index
    run would leave alone; ``progress`` every ``every`` files; None when cancelled."""
    plan = IndexPlan()
    known_dir: str | None = None
    known: dict[str, ImageRow] = {}
    for folder in folders:
        for path, st in walk_images(folder, exclusions=exclusions, suffixes=suffixes):
            if cancel is not None and cancel.is_set():
                return None
            plan.found += 1
            if store is not None and st is not None:
                directory = os.path.dirname(path)
                if directory != known_dir:
                    known_dir, known = directory, store.images_in_dir(directory)
                if _unchanged(known.get(path), st):
                    plan.unchanged += 1
            if progress is not None and plan.found % every == 0:
                progress(plan)
    return plan


# -------------------------------------------------------------------- workers

_worker_state: dict = {}


def _worker_init(catalog: str, size: int, resize: str, thumb_size: int, thumbs_dir: str,
                 ignore_sigint: bool = True) -> None:
    # Ctrl-C goes to the whole process group; the main process decides what to do about it.
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_state.update(known=KnownContent(catalog), size=size, resize=resize, thumb_size=thumb_size, thumbs_dir=thumbs_dir)


def _process_file(path: str) -> tuple:
    """Worker: ('skip', reason, hash) | ('known', hash, slot) | ('new', hash, pixels, w, h, taken_at)."""
    crash_if_marked(path)  # tests only; see engine.workers.TEST_CRASH_ENV
    try:
        return _read_and_decode(path)
    except MemoryError:  # one file too big for this machine's memory: skip it, the run goes on
        return ("skip", "out of memory", None)


def _read_and_decode(path: str) -> tuple:
    state = _worker_state
    try:
        data = imageio.read_file(path)
    except DecodeError as exc:
        return ("skip", exc.reason, None)
    digest = imageio.content_hash(data)
    slot = state["known"].slot_of(digest)
    if slot is not None:
        return ("known", digest, slot)
    try:
        decoded = imageio.decode_image(data, size=state["size"], resize=state["resize"], thumb_size=state["thumb_size"])
    except DecodeError as exc:
        return ("skip", exc.reason, digest)
    if decoded.thumbnail:
        _write_thumbnail(thumbnail_path(state["thumbs_dir"], digest), decoded.thumbnail)
    return ("new", digest, decoded.pixels, decoded.width, decoded.height, decoded.taken_at)


def _write_thumbnail(target: Path, data: bytes) -> None:
    try:
        if target.is_file() and target.stat().st_size > 0:  # empty: torn by an OS crash, write again
            return
        if target.parent.is_symlink():  # a crafted library: never write through a link
            log.warning("not writing thumbnail %s: its folder is a link", target)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Not synced: thumbnails are a cache, and a sync per photo would cost indexing speed.
        write_bytes(target, data, sync=False)
    except (OSError, EnvironmentProblem) as exc:  # a full disk costs a thumbnail, not the photo's code
        # (said once, by the array write that fails next, rather than once per photo here)
        log.log(logging.DEBUG if isinstance(exc, DiskFull) else logging.WARNING, "cannot write thumbnail %s: %s",
                target, exc)


class _InlinePool:
    """The decoder pool's interface, run in this process (workers=0: tests, debugging)."""

    def __init__(self, initargs: tuple):
        # In this process (any thread, e.g. the GUI's indexing worker) Ctrl-C stays the caller's.
        _worker_init(*initargs, ignore_sigint=False)

    def imap(self, fn, items, *, window: int, cancel: threading.Event | None = None, arg_of=None):
        """DecoderPool.imap's interface, one item at a time in this process."""
        for item in items:
            if cancel is not None and cancel.is_set():
                return
            yield item, fn(item if arg_of is None else arg_of(item))

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        _worker_state.pop("known").close()


# -------------------------------------------------------------------- indexer


class Indexer:
    """Indexes roots into a library. Runs in the calling thread; cancel from any thread."""

    def __init__(self, library: Library, *, workers: int | None = None, batch_size: int = 32,
                 thumb_size: int = 256, include_hidden: bool = False, providers: str | list[str] = "auto",
                 progress: Callable[[IndexProgress], None] | None = None,
                 cancel: threading.Event | None = None, suffixes: Iterable[str] | None = None):
        """``suffixes`` limits the file types indexed; None: the library's choice (indexed_suffixes)."""
        self.library = library
        self.store = library.store
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.batch_size = batch_size
        self.thumb_size = thumb_size
        self.include_hidden = include_hidden
        self.providers = providers
        self.progress_cb = progress
        self.cancel = cancel or threading.Event()
        self.suffixes = None if suffixes is None else frozenset(s.lower() for s in suffixes)
        self._progress = IndexProgress("walking")
        self._last_emit = 0.0

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress_cb and (force or now - self._last_emit >= 0.1):
            self._last_emit = now
            self.progress_cb(self._progress)

    # ------------------------------------------------------------------ walk

    def _walk(self, roots: Sequence[tuple[int, str]], run_id: int, report: IndexReport
              ) -> tuple[list[_Work], list[int]]:
        todo: list[_Work] = []
        complete_roots: list[int] = []
        exclusions = self.store.exclusions()
        suffixes = self._suffixes()
        for root_id, root in roots:
            if not os.path.isdir(root):
                log.warning("root %s is not reachable; keeping what the library knows of it "
                            "('lookalike roots forget %s' forgets it)", root, root)
                continue
            errors: list[str] = []
            known_dir: str | None = None
            known: dict[str, ImageRow] = {}
            unchanged: list[int] = []
            for path, st in walk_images(root, exclusions=exclusions, include_hidden=self.include_hidden,
                                        on_error=lambda d, e: errors.append(d), suffixes=suffixes):
                if self.cancel.is_set():
                    break
                directory = os.path.dirname(path)
                if directory != known_dir:
                    known_dir, known = directory, self.store.images_in_dir(directory)
                report.found += 1
                self._progress.found = report.found
                self._emit()
                row = known.get(path)
                if st is None:
                    todo.append(_Work(path, root_id, 0, 0, row))
                    continue
                if _unchanged(row, st):
                    unchanged.append(row.id)
                    if len(unchanged) >= 10_000:
                        self.store.mark_seen(unchanged, run_id)
                        report.unchanged += len(unchanged)
                        unchanged = []
                    continue
                todo.append(_Work(path, root_id, st.st_size, st.st_mtime_ns, row))
            self.store.mark_seen(unchanged, run_id)
            report.unchanged += len(unchanged)
            if errors:
                log.warning("%d folders under %s could not be read (first: %s)", len(errors), root, errors[0])
            elif not self.cancel.is_set():
                complete_roots.append(root_id)
        return todo, complete_roots

    def _suffixes(self) -> frozenset[str]:
        return indexed_suffixes(self.store) if self.suffixes is None else self.suffixes

    # ------------------------------------------------------------------- run

    def run(self, paths: Sequence[str | os.PathLike] = ()) -> IndexReport:
        """Index ``paths`` (added as roots) or, when empty, every root the library has."""
        started = time.monotonic()
        report = IndexReport()
        wanted: list[str] = []
        for path in paths:
            absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
            if not os.path.isdir(absolute):
                raise UserError(f"{path} is not a folder")
            wanted.append(absolute)
        if not paths and not self.store.roots():
            raise UserError("nothing to index: name a folder (lookalike index PATH)")
        self.library.active_model()  # fail before walking when there is no model
        with self.store.writing():
            roots = self._settle_roots(wanted, report)
            self._complete_active_model()
            return self._run(roots, report, started)

    def _settle_roots(self, wanted: list[str], report: IndexReport) -> list[tuple[int, str]]:
        """Add the ``wanted`` folders as roots, merging nested ones (an older library's too);
        returns the roots to walk: those holding ``wanted``, or every root when none is named."""
        known = dict((path, root_id) for root_id, path in self.store.roots())
        outer = outermost_folders([*known, *wanted])
        for folder in wanted:
            if outer[folder] == folder and folder not in known:
                known[folder] = self.store.add_root(folder)
        for folder, holder in sorted(outer.items()):
            if holder == folder:
                continue
            if folder in known:
                # its photos keep their codes: they now belong to the outer root
                self.store.merge_root(known.pop(folder), known[holder])
            report.merged.append((folder, holder))
            log.info("%s is inside %s: indexed as part of it", folder, holder)
        targets = {outer[folder] for folder in wanted} if wanted else set(known)
        return [(known[path], path) for path in sorted(targets)]

    def _complete_active_model(self) -> None:
        """Only after damage (an active array shorter than the catalog): encode those photos
        again first, since new rows are appended after the last committed slot."""
        model = self.library.active_model()
        if not self.store.covers(model):
            encode_missing(self.store, model, cancel=self.cancel, workers=self.workers)

    def _run(self, roots, report: IndexReport, started: float) -> IndexReport:
        run_id = self.store.start_run()
        status = "failed"
        # Decoder processes take a second to start (spawn, imports): start them now, so
        # that happens while the walk runs.
        pool = self._start_pool()
        try:
            todo, complete_roots = self._walk(roots, run_id, report)
            self._progress = IndexProgress("indexing", total=len(todo), found=report.found)
            self._emit(force=True)
            if todo and not self.cancel.is_set():
                self._process(pool, todo, run_id, report)
            report.cancelled = self.cancel.is_set()
            if not report.cancelled:
                self._progress.phase = "finishing"
                self._emit(force=True)
                report.removed = self.store.sweep(complete_roots, run_id)
                refit = self.library.maybe_refit_default_head()
                report.refit = refit.name if refit else None
            status = "cancelled" if report.cancelled else "complete"
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            report.elapsed = time.monotonic() - started
            self._finish_run(run_id, status, report.as_dict())
        return report

    def _finish_run(self, run_id: int, status: str, stats: dict) -> None:
        try:
            self.store.finish_run(run_id, status, stats)
        except EnvironmentProblem as exc:  # a full disk: the error being raised is the one to report
            if status != "failed":
                raise
            log.info("cannot record the end of the run: %s", exc)

    def _start_pool(self, inline: bool = False):
        info = self.library.model_info()
        initargs = (str(self.store.root / "catalog.sqlite3"), info.input_size, info.resize, self.thumb_size,
                    str(self.store.thumbs_dir()))
        if self.workers == 0 or inline:
            return _InlinePool(initargs)
        return DecoderPool(self.workers, _worker_init, initargs)

    # ---------------------------------------------------------------- update

    def update(self, paths: Iterable[str | os.PathLike]) -> IndexReport:
        """Bring the library up to date for some files and folders under its roots.

        For a folder watcher's batch: an existing file is indexed when it is new or changed;
        an existing folder is walked, and what the library knows under it that is no longer
        there is forgotten; a path that is gone (or now excluded, or of a type not indexed)
        is forgotten with everything under it. Paths under no root, or under a root that is
        not reachable (an unmounted drive), are left alone. New files are committed before
        anything is forgotten, so a moved file reuses its encoding without being decoded.
        """
        started = time.monotonic()
        report = IndexReport()
        wanted = sorted({os.path.abspath(os.fspath(p)) for p in paths})
        if not wanted:
            return report
        self.library.active_model()  # fail before anything else when there is no model
        with self.store.writing():
            self._complete_active_model()
            return self._update(wanted, report, started)

    def _update(self, paths: list[str], report: IndexReport, started: float) -> IndexReport:
        roots = self.store.roots()
        exclusions = self.store.exclusions()
        suffixes = self._suffixes()
        todo: list[_Work] = []
        gone: list[str] = []
        queued: set[str] = set()

        def consider(path: str, root_id: int, st: os.stat_result | None) -> None:
            if path in queued:
                return
            queued.add(path)
            report.found += 1
            row = self.store.image_by_path(path)
            if st is not None and _unchanged(row, st):
                report.unchanged += 1
                return
            todo.append(_Work(path, root_id, st.st_size if st else 0, st.st_mtime_ns if st else 0, row))

        for path in paths:
            if self.cancel.is_set():
                break
            root = _root_of(path, roots)
            if root is None or not os.path.isdir(root[1]):
                continue
            root_id, root_path = root
            if is_excluded(root_path, path, exclusions, include_hidden=self.include_hidden):
                gone.append(path)
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                gone.append(path)
                continue
            except OSError as exc:
                log.warning("cannot look at %s: %s", path, exc)
                continue
            if stat.S_ISDIR(st.st_mode):
                errors: list[str] = []
                present: set[str] = set()
                for file_path, file_st in walk_images(path, exclusions=exclusions, include_hidden=self.include_hidden,
                                                      on_error=lambda d, e: errors.append(d), suffixes=suffixes,
                                                      base=root_path):
                    if self.cancel.is_set():
                        break
                    present.add(file_path)
                    consider(file_path, root_id, file_st)
                if not errors and not self.cancel.is_set():
                    gone.extend(p for p in self.store.paths_under(path) if p not in present)
            elif stat.S_ISREG(st.st_mode):
                if os.path.splitext(path)[1].lower() in suffixes:
                    consider(path, root_id, st)
                else:
                    gone.append(path)

        run_id = self.store.start_run()
        status = "failed"
        pool = None
        try:
            self._progress = IndexProgress("indexing", total=len(todo), found=report.found)
            self._emit(force=True)
            if todo and not self.cancel.is_set():
                # A spawned decoder process costs a second to start: not worth it for a few files.
                pool = self._start_pool(inline=len(todo) < SMALL_UPDATE)
                self._process(pool, todo, run_id, report)
            report.cancelled = self.cancel.is_set()
            if not report.cancelled:
                self._progress.phase = "finishing"
                self._emit(force=True)
                report.removed = self.store.forget_paths(gone) if gone else 0
                refit = self.library.maybe_refit_default_head()
                report.refit = refit.name if refit else None
            status = "cancelled" if report.cancelled else "complete"
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            report.elapsed = time.monotonic() - started
            self._finish_run(run_id, status, {**report.as_dict(), "update": True})
        return report

    def _process(self, pool, todo: list[_Work], run_id: int, report: IndexReport) -> None:
        library, store = self.library, self.store
        model = library.active_model()
        self._verified_chunks: dict[Path, set[int]] = {}
        # Decoding dominates on the CPU: give it the cores and keep ONNX Runtime to one
        # thread that sleeps rather than spins while it waits for a batch.
        encoder = library.encoder(providers=self.providers, threads=1 if self.workers else None, spin=False)
        model_arrays = store.arrays_of(model)
        window = max(4, self.workers * 4)
        batch: list[tuple[_Work, tuple]] = []
        t0 = time.monotonic()
        last_flush = t0
        # On cancel, imap drops the files still being decoded; the ones done are committed.
        results = pool.imap(_process_file, todo, window=window, cancel=self.cancel, arg_of=lambda w: w.path)
        try:
            for work, result in results:
                if isinstance(result, Crashed):  # its decoder died, twice: skipped with a reason
                    result = ("skip", result.reason, None)
                batch.append((work, result))
                self._progress.done += 1
                self._progress.current = work.path
                self._progress.rate = self._progress.done / max(time.monotonic() - t0, 1e-6)
                new_count = sum(1 for _, r in batch if r[0] == "new")
                if new_count >= self.batch_size or time.monotonic() - last_flush > 2.0:
                    self._flush(batch, encoder, model_arrays, run_id, report)
                    batch = []
                    last_flush = time.monotonic()
                self._progress.skipped, self._progress.reused = report.skipped, report.reused
                self._emit()
            if batch:
                self._flush(batch, encoder, model_arrays, run_id, report)
        finally:
            results.close()  # drops queued work at once; the caller shuts the pool down
        self._progress.skipped, self._progress.reused = report.skipped, report.reused
        self._emit(force=True)

    def _flush(self, batch: list[tuple[_Work, tuple]], encoder, model_arrays: arrays.ModelArrays,
               run_id: int, report: IndexReport) -> None:
        """Encode, append and commit one batch; arrays are synced before the catalog commit."""
        store = self.store
        first = store.next_slot
        items: list[NewImage] = []
        code_rows: list[np.ndarray] = []
        feature_rows: list[np.ndarray] = []
        new = [(w, r) for w, r in batch if r[0] == "new"]
        if new:
            logits, features = encoder.encode(np.stack([r[2] for _, r in new]))
            codes = codes_from_logits(logits)
            features = features.astype(np.float16)
        slot = first
        for i, (work, result) in enumerate(new):
            _, digest, _, width, height, taken_at = result
            items.append(NewImage(work.path, work.root_id, work.size, work.mtime_ns, digest, width, height,
                                  taken_at, slot=slot))
            code_rows.append(codes[i])
            feature_rows.append(features[i])
            slot += 1
        for work, result in batch:
            kind = result[0]
            if kind == "skip":
                items.append(NewImage(work.path, work.root_id, work.size, work.mtime_ns, result[2], reason=result[1]))
                report.skipped += 1
                report.skipped_files.append((work.path, result[1]))
            elif kind == "known":
                _, digest, source = result
                if work.existing is not None and work.existing.slot == source:
                    store.touch_image(work.existing.id, work.size, work.mtime_ns, run_id)
                else:
                    code_rows.append(self._read_row(model_arrays.codes, source))
                    feature_rows.append(self._read_row(model_arrays.features, source))
                    items.append(NewImage(work.path, work.root_id, work.size, work.mtime_ns, digest, slot=slot))
                    slot += 1
                report.reused += 1
        sums = []
        if slot > first:
            sums += store.append_rows(model_arrays, first, features=np.stack(feature_rows), codes=np.stack(code_rows))
        store.commit_batch(items, run_id, slot, sums)
        report.added += len(new)

    def _read_row(self, array: arrays.ArrayFile, slot: int) -> np.ndarray:
        """One committed row (the encoding of content seen before), its chunk checked once per
        run: a copy gets a fresh checksum, so it must not copy damage."""
        chunk = slot // arrays.CHUNK_ROWS
        verified = self._verified_chunks.setdefault(array.path, set())
        if chunk not in verified:
            start = chunk * arrays.CHUNK_ROWS
            check = self.store.verify_array(array, start, start + arrays.CHUNK_ROWS)
            if check.damaged:
                raise LibraryDamaged(f"{check.describe()}; run 'lookalike repair'")
            verified.add(chunk)
        return array.read_row(slot)


def _unchanged(row: ImageRow | None, st: os.stat_result) -> bool:
    """Whether a catalogued file needs no work: same size and mtime, and not skipped for a
    reason that may have passed (permission denied, out of memory...: tried again)."""
    if row is None or row.size != st.st_size or row.mtime_ns != st.st_mtime_ns:
        return False
    return not (row.status == "skipped" and is_transient(row.reason))


def _root_of(path: str, roots: Sequence[tuple[int, str]]) -> tuple[int, str] | None:
    """The deepest root holding ``path`` (roots may nest), or None."""
    best = None
    for root_id, root in roots:
        if path == root or path.startswith(_dir_prefix(root)):
            if best is None or len(root) > len(best[1]):
                best = (root_id, root)
    return best


def _dir_prefix(directory: str) -> str:
    return directory if directory.endswith(os.sep) else directory + os.sep
