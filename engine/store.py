"""The library folder: SQLite catalog (WAL) plus per-model code and feature arrays."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import arrays
from engine.arrays import ArrayCheck, ArrayFile, ChunkSum, ModelArrays  # noqa: F401  (ArrayCheck re-exported)
from engine.atomic import copy_folder_synced, make_dirs, publish_folder, write_json_atomic
from engine import scratch
from engine.codes import words_for_bits
from engine.locks import is_locked, try_flock
from engine.pairs import pair_key, pair_key_with
from engine.schema import migrate
from engine.scratch import remove_path
from engine.sql import (CatalogConnection, ReadOnlyConnection, Transaction, catalog_uri, fs, fs_or_none, path_range,
                        read_only_message, read_only_uri, unfs, uri_path)
from engine.errors import (EnvironmentProblem, LibraryDamaged, UnsafeLibrary, UserError,
                           environment_problem)

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite3"
# What the library folder may hold, and only as real folders and files: never followed if a link.
LIBRARY_FOLDERS = ("codes", "features", "models", "thumbs", "cache")
LIBRARY_FILES = (CATALOG, CATALOG + "-wal", CATALOG + "-shm", CATALOG + "-journal", "writer.lock")
# A backbone id names a file (features/<id>.f16): hex only, so no catalog or manifest can
# make it a path. Ours are 16 hex digits of a sha256.
BACKBONE_ID = re.compile(r"[0-9a-f]{1,64}")
MAX_BITS = 4096
MAX_SLOTS = 1 << 32  # far beyond a personal library; a crafted count must not size an allocation
MAX_FEATURE_DIM = 1 << 16


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


_LIVE_ACTIVATION = "id NOT IN (SELECT activation_id FROM rolled_back)"  # on the history, not rolled back from


@dataclass(frozen=True)
class ModelRow:
    """One model version as the catalog knows it."""

    id: int
    name: str
    backbone_id: str
    bits: int
    feature_dim: int
    manifest: dict
    created_at: str
    active: bool

    @property
    def words(self) -> int:
        return words_for_bits(self.bits)


@dataclass(frozen=True)
class ImageRow:
    """One file as the catalog knows it."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    reason: str | None
    slot: int | None


@dataclass(frozen=True)
class LabelRow:
    """One labelled pair, with the paths it was labelled under and where the photos are now."""

    hash_a: str
    hash_b: str
    label: int  # 1 similar, -1 dissimilar
    source: str
    path_a: str | None  # as labelled
    path_b: str | None
    created_at: str
    current_a: str | None  # a current path of an indexed photo with this content, if any
    current_b: str | None

    @property
    def key(self) -> tuple[str, str]:
        return self.hash_a, self.hash_b


@dataclass
class NewImage:
    """What the indexer learned about a file, ready to be committed."""

    path: str
    root_id: int | None
    size: int
    mtime_ns: int
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    reason: str | None = None  # set: the file is recorded as skipped
    slot: int | None = None    # set by Store.commit_batch for encoded files


class KnownContent:
    """What a decoder process may ask the catalog: which slot already holds some content (a
    move or a copy is not decoded again). Read-only, its own connection, one per process."""

    def __init__(self, catalog: str | os.PathLike):
        self._conn = sqlite3.connect(catalog_uri(catalog, "mode=ro"), uri=True, timeout=30.0)

    def slot_of(self, content_hash: str) -> int | None:
        row = self._conn.execute(
            "SELECT slot FROM images WHERE content_hash = ? AND slot IS NOT NULL LIMIT 1", (content_hash,)
        ).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self._conn.close()


class Store:
    """A library folder. Not thread-safe: one Store per thread (SQLite connections are not shared)."""

    def __init__(self, root: Path, conn: sqlite3.Connection, *, readonly: bool = False):
        self.root = root
        self.readonly = readonly
        self._conn = ReadOnlyConnection(conn, root) if readonly else conn

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, root: str | os.PathLike, *, create: bool = True, readonly: bool = False) -> "Store":
        """Open (and create or migrate) the library at ``root``; repair arrays after a crash.

        A library in a folder this process cannot write (a read-only mount or share) opens
        read-only by itself: reading works, writing raises EnvironmentProblem.
        """
        root = Path(root).expanduser().absolute()
        catalog = root / CATALOG
        _check_layout(root)
        if not catalog.exists():
            if not create or readonly:
                raise UserError(f"no Lookalike library at {root} (run 'lookalike index' first)")
            try:
                make_dirs(root)
            except OSError as exc:
                raise EnvironmentProblem(f"cannot create the library folder {root}: {exc.strerror}") from exc
        elif not readonly and not _writable(root, catalog):
            log.info("the library at %s is read-only here: opening it for reading", root)
            readonly = True
        uri = read_only_uri(catalog) if readonly else f"file:{uri_path(catalog)}"
        conn = None
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0, factory=CatalogConnection)
            conn.catalog = catalog
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                # FULL: a commit is on disk when it returns (NORMAL may lose the last commits,
                # labels included, to a power cut); one WAL sync per batch or label costs little.
                conn.execute("PRAGMA synchronous = FULL")
        except (sqlite3.Error, EnvironmentProblem) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, EnvironmentProblem):
                raise
            raise EnvironmentProblem(f"cannot open the catalog {catalog}: {exc}") from exc
        store = cls(root, conn, readonly=readonly)
        try:
            store._migrate(readonly=readonly)
            if not readonly and store.try_writer_lock():
                # Only when no other process is writing: its uncommitted rows are not debris.
                try:
                    store._repair()
                finally:
                    store.release_writer_lock()
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self.release_writer_lock()
        self._conn.close()

    # One process at a time may append to the arrays (index runs, model changes). The lock is
    # an advisory flock on a file in the library, released by the OS if the process dies.
    _lock_handle = None

    def try_writer_lock(self) -> bool:
        """Take the writer lock without waiting; False when another process holds it."""
        if self.readonly:
            raise EnvironmentProblem(read_only_message(self.root))
        if self._lock_handle is None:
            self._lock_handle = try_flock(self.root / "writer.lock")
        return self._lock_handle is not None

    def writer_lock(self) -> "Store":
        """Take the writer lock or raise UserError naming the reason."""
        if not self.try_writer_lock():
            raise UserError(f"another Lookalike process is indexing or changing models in {self.root}; try again when it ends")
        return self

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock for a block (re-entrant: an inner block keeps the outer's lock)."""
        held = self._lock_handle is not None
        self.writer_lock()
        try:
            yield
        finally:
            if not held:
                self.release_writer_lock()

    def writer_busy(self) -> bool:
        """Whether the writer lock is held now, by this Store or any other; works read-only."""
        return self._lock_handle is not None or is_locked(self.root / "writer.lock")

    def release_writer_lock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file drops the flock
            self._lock_handle = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self, *, readonly: bool) -> None:
        migrate(self._conn, self.root, readonly=readonly)

    def work_dir(self) -> contextlib.AbstractContextManager[Path]:
        """A scratch folder inside the library, removed on exit (engine.scratch.work_dir)."""
        return scratch.work_dir(self.root)

    def _repair(self) -> None:
        """Make the arrays agree with the catalog after a crash (see ARCHITECTURE.md).

        Rows beyond the committed slots are cut off; arrays no version uses are deleted.
        Never deletes a catalog row: an active version whose arrays fall short (damage) is
        encoded again by the next index run, activation or 'lookalike repair'.
        """
        scratch.sweep(self.root)
        next_slot = self.next_slot
        known = self._known_arrays()
        for folder in ("codes", "features"):
            directory = self.root / folder
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                key = f"{folder}/{path.name}"
                if key not in known:
                    if path.is_symlink() or path.is_file():
                        # Left by a refit or activation that crashed before its commit.
                        path.unlink()
                    continue
                known[key].truncate(next_slot)  # refuses a link
        models_folder = self.root / "models"
        if models_folder.is_dir():
            known_folders = {self._model_folder(model.id).name for model in self.models()}
            for folder in models_folder.iterdir():
                if folder.name.isdigit() and folder.name not in known_folders:
                    # A version deleted, or added, by a process that died before it finished.
                    log.info("removing %s, which no model version uses", folder)
                    remove_path(folder)
        stale = [a for (a,) in self._conn.execute("SELECT DISTINCT array FROM array_chunks") if a not in known]
        if stale:
            with self.transaction():
                self._conn.executemany("DELETE FROM array_chunks WHERE array = ?", [(a,) for a in stale])
        # Codes are small: rows no checksum covers yet (an array from before checksums, or a
        # re-encoding killed between its write and its record) get theirs now.
        for key, array in known.items():
            if key.startswith("codes/"):
                self.adopt_rows(array, next_slot)
        active = self.active_model()
        if active is not None and not self.covers(active):
            log.warning("the arrays of model v%d cover fewer than the %d photos indexed; the next index run, "
                        "activation or 'lookalike repair' encodes the rest", active.id, next_slot)

    def _known_arrays(self) -> dict[str, ArrayFile]:
        """Every array a version uses, by its path in the library."""
        known: dict[str, ArrayFile] = {}
        for model in self.models():
            for array in (model_arrays := self.arrays_of(model)).codes, model_arrays.features:
                known[array.key] = array
        return known

    def codes_file(self, model_id: int, words: int) -> ArrayFile:
        """A version's codes: ``words`` packed uint64 words per slot."""
        return ArrayFile(self.codes_path(model_id), np.dtype(np.uint64), words)

    def features_file(self, backbone_id: str, dim: int) -> ArrayFile:
        """A backbone's features: ``dim`` float16 per slot, shared by its versions."""
        return ArrayFile(self.features_path(backbone_id), np.dtype(np.float16), dim)

    def arrays_of(self, model: ModelRow) -> ModelArrays:
        """The owner of ``model``'s code and feature arrays."""
        return ModelArrays(self.codes_file(model.id, model.words),
                           self.features_file(model.backbone_id, model.feature_dim))

    def covers(self, model: ModelRow) -> bool:
        """Whether ``model``'s arrays hold a row for every committed slot."""
        return self.arrays_of(model).covers(self.next_slot)

    # -------------------------------------------------------------- checksums

    def array_key(self, path: Path) -> str:
        """An array's name in the checksum records: its path in the library (ArrayFile.key)."""
        return f"{path.parent.name}/{path.name}"

    def chunk_sums(self, key: str, first_chunk: int = 0) -> dict[int, tuple[int, int]]:
        """chunk -> (rows, crc) recorded for an array, from ``first_chunk`` on."""
        return {chunk: (rows, crc) for chunk, rows, crc in self._conn.execute(
            "SELECT chunk, rows, crc FROM array_chunks WHERE array = ? AND chunk >= ? ORDER BY chunk",
            (key, first_chunk))}

    def write_rows(self, array: ArrayFile, first_row: int, rows: np.ndarray) -> list[ChunkSum]:
        """Write rows in place and flush them (ArrayFile.write); returns the checksums to
        record with ``record_sums`` (in the transaction that commits the rows)."""
        rows = np.ascontiguousarray(rows)
        array.write(first_row, rows)
        return self.sums_for_write(array, first_row, rows)

    def append_rows(self, model_arrays: ModelArrays, first_row: int, *, features: np.ndarray | None = None,
                    codes: np.ndarray | None = None) -> list[ChunkSum]:
        """ModelArrays.append (features flushed before codes), returning both arrays' checksums."""
        sums = []
        for array, rows in ((model_arrays.features, features), (model_arrays.codes, codes)):
            if rows is not None:
                sums += self.write_rows(array, first_row, rows)
        return sums

    def sums_for_write(self, array: ArrayFile, first_row: int, rows: np.ndarray, *,
                       fresh: bool = False) -> list[ChunkSum]:
        """ArrayFile.sums_for_write against the recorded sums. ``fresh``: the file holds
        exactly these rows (a whole array just written)."""
        records = {} if fresh else self.chunk_sums(array.key, first_row // arrays.CHUNK_ROWS)
        return array.sums_for_write(first_row, rows, records)

    def record_sums(self, sums: Iterable[ChunkSum]) -> None:
        """Record checksums (call inside the transaction that commits their rows)."""
        self._conn.executemany(
            "INSERT OR REPLACE INTO array_chunks (array, chunk, rows, crc) VALUES (?, ?, ?, ?)",
            [(s.array, s.chunk, s.rows, s.crc) for s in sums])

    def verify_array(self, array: ArrayFile, start: int = 0, stop: int | None = None) -> ArrayCheck:
        """ArrayFile.check of rows [start, stop) against the recorded checksums."""
        return array.check(self.chunk_sums(array.key, start // arrays.CHUNK_ROWS), start, stop)

    def adopt_rows(self, array: ArrayFile, rows: int) -> int:
        """Record checksums for rows below ``rows`` that have none yet, as the file holds them
        (trusting them: an array from before checksums); returns how many rows were adopted.
        A chunk whose recorded part no longer matches is left alone: that is damage."""
        have = min(array.rows(), rows)
        last = self._conn.execute("SELECT chunk, rows FROM array_chunks WHERE array = ? ORDER BY chunk DESC LIMIT 1",
                                  (array.key,)).fetchone()
        if have == 0 or (last is not None and last[0] * arrays.CHUNK_ROWS + last[1] >= have):
            return 0  # the usual case: everything recorded (one indexed query)
        sums, adopted = array.unrecorded_sums(self.chunk_sums(array.key), have)
        if sums:
            with self.transaction():
                self.record_sums(sums)
        return adopted

    # ------------------------------------------------------------ transactions

    def transaction(self) -> "Transaction":
        return Transaction(self._conn)

    @property
    def next_slot(self) -> int:
        value = self._meta("next_slot")
        try:
            slots = int(value)
        except (TypeError, ValueError):
            slots = -1
        if not 0 <= slots <= MAX_SLOTS:
            raise LibraryDamaged(f"the catalog's count of encoded photos ({str(value)[:40]!r}) is not one Lookalike "
                                 "writes; restore catalog.sqlite3 from a backup if you have one")
        return slots

    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return self._meta(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------- roots

    def add_root(self, path: str) -> int:
        self._conn.execute("INSERT OR IGNORE INTO roots (path, added_at) VALUES (?, ?)", (fs(path), utc_now()))
        return self._conn.execute("SELECT id FROM roots WHERE path = ?", (fs(path),)).fetchone()[0]

    def roots(self) -> list[tuple[int, str]]:
        return [(i, unfs(p)) for i, p in self._conn.execute("SELECT id, path FROM roots ORDER BY path")]

    def root_counts(self) -> list[tuple[int, str, int, int]]:
        """(id, path, photos indexed, files skipped) of every root."""
        return [(i, unfs(p), ok, skipped) for i, p, ok, skipped in self._conn.execute(
            """SELECT roots.id, roots.path, COUNT(images.id) FILTER (WHERE images.status = 'ok'),
                      COUNT(images.id) FILTER (WHERE images.status = 'skipped')
               FROM roots LEFT JOIN images ON images.root_id = roots.id
               GROUP BY roots.id ORDER BY roots.path""")]

    def slots_of_roots(self, root_ids: Sequence[int]) -> np.ndarray:
        """Live slots of the photos found under these roots."""
        if not root_ids:
            return np.zeros(0, dtype=np.int64)
        marks = ",".join("?" * len(root_ids))
        return np.fromiter((r[0] for r in self._conn.execute(
            f"SELECT slot FROM images WHERE slot IS NOT NULL AND root_id IN ({marks})", tuple(root_ids))),
            dtype=np.int64)

    def remove_root(self, path: str) -> int:
        """Forget a root and every image under it; returns how many images were forgotten."""
        row = self._conn.execute("SELECT id FROM roots WHERE path = ?", (fs(path),)).fetchone()
        if row is None:
            raise UserError(f"{path} is not a root of this library")
        with self.transaction():
            count = self._forget_images("root_id = ?", (row[0],))
            self._conn.execute("DELETE FROM roots WHERE id = ?", (row[0],))
        return count

    def merge_root(self, inner_id: int, outer_id: int) -> None:
        """Fold a root into the root holding its folder: its photos move over, codes and all."""
        with self.transaction():
            self._conn.execute("UPDATE images SET root_id = ? WHERE root_id = ?", (outer_id, inner_id))
            self._conn.execute("DELETE FROM roots WHERE id = ?", (inner_id,))

    def add_exclusion(self, pattern: str) -> None:
        self._conn.execute("INSERT OR IGNORE INTO exclusions (pattern) VALUES (?)", (pattern,))

    def remove_exclusion(self, pattern: str) -> None:
        self._conn.execute("DELETE FROM exclusions WHERE pattern = ?", (pattern,))

    def exclusions(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT pattern FROM exclusions ORDER BY pattern")]

    # ------------------------------------------------------------------ images

    def images_in_dir(self, directory: str) -> dict[str, ImageRow]:
        """Catalog rows of the files directly inside ``directory``, by path."""
        cursor = self._conn.execute(
            "SELECT id, path, size, mtime_ns, content_hash, status, reason, slot FROM images WHERE dir = ?",
            (fs(directory),),
        )
        rows = (_image_row(row) for row in cursor)
        return {row.path: row for row in rows}

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self._conn.execute(
            "SELECT id, path, size, mtime_ns, content_hash, status, reason, slot FROM images WHERE path = ?",
            (fs(path),),
        ).fetchone()
        return _image_row(row) if row else None

    def paths_under(self, directory: str) -> list[str]:
        """Catalogued paths strictly under ``directory`` (any depth): one range scan of the path index."""
        low, high = path_range(directory)
        return [unfs(r[0]) for r in self._conn.execute("SELECT path FROM images WHERE path >= ? AND path < ?",
                                                         (low, high))]

    def slots_under(self, directory: str) -> np.ndarray:
        """Live slots of the photos strictly under ``directory`` (any depth)."""
        low, high = path_range(directory)
        return np.fromiter(
            (r[0] for r in self._conn.execute(
                "SELECT slot FROM images WHERE slot IS NOT NULL AND path >= ? AND path < ?", (low, high))),
            dtype=np.int64)

    def change_generation(self) -> tuple[int, int]:
        """Changes whenever the catalog may have: other connections' commits and this one's writes."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0], self._conn.total_changes

    def path_for_hash(self, content_hash: str) -> str | None:
        """A current path of an indexed photo with this content, if any."""
        row = self._conn.execute(
            "SELECT path FROM images WHERE content_hash = ? AND slot IS NOT NULL ORDER BY path LIMIT 1",
            (content_hash,),
        ).fetchone()
        return unfs(row[0]) if row else None

    def slots_for_hashes(self, hashes) -> dict[str, int]:
        """Live slot of each content hash that is indexed (one per hash)."""
        result: dict[str, int] = {}
        hashes = list(hashes)
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, slot in self._conn.execute(
                f"SELECT content_hash, MIN(slot) FROM images WHERE slot IS NOT NULL AND content_hash IN ({marks}) "
                "GROUP BY content_hash", chunk
            ):
                result[digest] = slot
        return result

    def slots_with_hash(self, content_hash: str) -> list[int]:
        """Every live slot holding this content (a photo and its byte-identical copies), lowest first."""
        return [row[0] for row in self._conn.execute(
            "SELECT slot FROM images WHERE content_hash = ? AND slot IS NOT NULL ORDER BY slot", (content_hash,))]

    def mark_seen(self, image_ids: Sequence[int], run_id: int) -> None:
        if not image_ids:
            return
        with self.transaction():
            self._conn.executemany(
                "UPDATE images SET seen_run = ? WHERE id = ?", [(run_id, i) for i in image_ids]
            )

    def commit_batch(self, items: Iterable[NewImage], run_id: int, next_slot: int,
                     sums: Iterable[ChunkSum] = ()) -> None:
        """Record a batch of files in one transaction (arrays must already hold their rows,
        flushed; ``sums``: their checksums, from ``write_rows``)."""
        now = utc_now()
        with self.transaction():
            self.record_sums(sums)
            for item in items:
                old = self._conn.execute(
                    "SELECT id, slot FROM images WHERE path = ?", (fs(item.path),)
                ).fetchone()
                if old is not None and old[1] is not None and old[1] != item.slot:
                    self._conn.execute("INSERT OR IGNORE INTO dead_slots (slot) VALUES (?)", (old[1],))
                status = "skipped" if item.reason else "ok"
                self._conn.execute(
                    """
                    INSERT INTO images (path, dir, root_id, size, mtime_ns, content_hash, width, height,
                                        taken_at, status, reason, slot, seen_run, indexed_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (path) DO UPDATE SET
                        root_id = excluded.root_id, size = excluded.size, mtime_ns = excluded.mtime_ns,
                        content_hash = excluded.content_hash, width = excluded.width,
                        height = excluded.height, taken_at = excluded.taken_at,
                        status = excluded.status, reason = excluded.reason, slot = excluded.slot,
                        seen_run = excluded.seen_run, indexed_at = excluded.indexed_at
                    """,
                    (
                        fs(item.path), fs(os.path.dirname(item.path)), item.root_id, item.size, item.mtime_ns,
                        item.content_hash, item.width, item.height, item.taken_at, status,
                        item.reason, None if item.reason else item.slot, run_id, now,
                    ),
                )
            if next_slot > self.next_slot:
                self.set_meta("next_slot", str(next_slot))

    def touch_image(self, image_id: int, size: int, mtime_ns: int, run_id: int) -> None:
        """A file whose (size, mtime) changed but whose content did not."""
        self._conn.execute(
            "UPDATE images SET size = ?, mtime_ns = ?, seen_run = ? WHERE id = ?",
            (size, mtime_ns, run_id, image_id),
        )

    def sweep(self, root_ids: Sequence[int], run_id: int) -> int:
        """Forget files under ``root_ids`` not seen by run ``run_id`` (call after a complete walk)."""
        if not root_ids:
            return 0
        marks = ",".join("?" * len(root_ids))
        with self.transaction():
            return self._forget_images(f"root_id IN ({marks}) AND seen_run != ?", (*root_ids, run_id))

    def forget_paths(self, paths: Sequence[str]) -> int:
        """Forget the files at ``paths`` and everything under them (folders); one transaction."""
        forgotten = 0
        with self.transaction():
            for path in paths:
                low, high = path_range(path)
                forgotten += self._forget_images("path = ? OR (path >= ? AND path < ?)", (fs(path), low, high))
        return forgotten

    def _forget_images(self, where: str, params: tuple) -> int:
        self._conn.execute(
            f"INSERT OR IGNORE INTO dead_slots (slot) SELECT slot FROM images WHERE slot IS NOT NULL AND {where}",
            params,
        )
        return self._conn.execute(f"DELETE FROM images WHERE {where}", params).rowcount

    def live_mask(self) -> np.ndarray:
        """Boolean mask over slots: True where a slot is the current encoding of a catalogued file."""
        mask = np.ones(self.next_slot, dtype=bool)
        dead = np.fromiter((r[0] for r in self._conn.execute("SELECT slot FROM dead_slots")), dtype=np.int64)
        mask[dead[dead < mask.size]] = False
        return mask

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.live_mask())

    def paths_for_slots(self, slots: Sequence[int]) -> dict[int, str]:
        result: dict[int, str] = {}
        slots = [int(s) for s in slots]
        for start in range(0, len(slots), 500):
            chunk = slots[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for slot, path in self._conn.execute(
                f"SELECT slot, path FROM images WHERE slot IN ({marks})", chunk
            ):
                result[slot] = unfs(path)
        return result

    def images_in_slot_range(self, start: int, stop: int) -> list[tuple[int, str, str]]:
        """(slot, path, content hash) of the catalogued photos whose slots are in [start, stop)."""
        return [(slot, unfs(path), digest) for slot, path, digest in self._conn.execute(
            "SELECT slot, path, content_hash FROM images WHERE slot >= ? AND slot < ? ORDER BY slot", (start, stop)
        )]

    def integrity_check(self, lines: int) -> list[str]:
        """SQLite's integrity_check: ["ok"], or its first ``lines`` findings."""
        return [str(row[0]) for row in self._conn.execute(f"PRAGMA integrity_check({int(lines)})").fetchall()]

    def counts(self) -> dict[str, int]:
        row = self._conn.execute(
            "SELECT COUNT(*) FILTER (WHERE status = 'ok'), COUNT(*) FILTER (WHERE status = 'skipped') FROM images"
        ).fetchone()
        labels = self._conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        return {"images": row[0], "skipped": row[1], "labels": labels, "slots": self.next_slot}

    def skipped(self, limit: int | None = None) -> list[tuple[str, str]]:
        sql = "SELECT path, reason FROM images WHERE status = 'skipped' ORDER BY path"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [(unfs(path), reason) for path, reason in self._conn.execute(sql)]

    def skip_reasons(self) -> list[tuple[str, int]]:
        return self._conn.execute(
            "SELECT reason, COUNT(*) FROM images WHERE status = 'skipped' GROUP BY reason ORDER BY 2 DESC"
        ).fetchall()

    # ------------------------------------------------------------------ labels

    def add_label(self, hash_a: str, hash_b: str, label: int, *, source: str,
                  path_a: str | None = None, path_b: str | None = None, created_at: str | None = None) -> None:
        """Label a pair (either order), replacing its label if it had one.

        ``created_at``: only to put back a label as it was (undo); new labels are dated now.
        """
        if label not in (1, -1):
            raise ValueError(f"a label is 1 (similar) or -1 (dissimilar), not {label}")
        if hash_a == hash_b:
            raise UserError("a pair needs two different images")
        hash_a, hash_b, path_a, path_b = pair_key_with(hash_a, hash_b, path_a, path_b)
        self._conn.execute(
            """INSERT INTO labels (hash_a, hash_b, label, source, path_a, path_b, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (hash_a, hash_b) DO UPDATE SET label = excluded.label,
                   source = excluded.source, created_at = excluded.created_at""",
            (hash_a, hash_b, label, source, fs_or_none(path_a), fs_or_none(path_b), created_at or utc_now()),
        )

    def labels(self) -> list[tuple]:
        return [(*row[:4], unfs(row[4]), unfs(row[5]), row[6]) for row in self._conn.execute(
            "SELECT hash_a, hash_b, label, source, path_a, path_b, created_at FROM labels ORDER BY id"
        )]

    _LABEL_ROW_SQL = """
        SELECT hash_a, hash_b, label, source, path_a, path_b, created_at,
               (SELECT path FROM images WHERE content_hash = hash_a AND slot IS NOT NULL ORDER BY path LIMIT 1),
               (SELECT path FROM images WHERE content_hash = hash_b AND slot IS NOT NULL ORDER BY path LIMIT 1)
        FROM labels"""

    def label_rows(self) -> list[LabelRow]:
        """Every label, oldest first, with the photos' current paths (None where no longer indexed)."""
        return [_label_row(row) for row in self._conn.execute(self._LABEL_ROW_SQL + " ORDER BY id")]

    def label(self, hash_a: str, hash_b: str) -> LabelRow | None:
        """The label of a pair (either order), if it has one."""
        hash_a, hash_b = pair_key(hash_a, hash_b)
        row = self._conn.execute(self._LABEL_ROW_SQL + " WHERE hash_a = ? AND hash_b = ?",
                                 (hash_a, hash_b)).fetchone()
        return _label_row(row) if row else None

    def delete_label(self, hash_a: str, hash_b: str) -> bool:
        """Forget a pair's label (either order); False if it had none."""
        hash_a, hash_b = pair_key(hash_a, hash_b)
        cursor = self._conn.execute("DELETE FROM labels WHERE hash_a = ? AND hash_b = ?", (hash_a, hash_b))
        return cursor.rowcount > 0

    def label_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    def images_for_slots(self, slots: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(content hash, path) of each live slot (what a pair to label needs)."""
        result: dict[int, tuple[str, str]] = {}
        slots = [int(s) for s in slots]
        for start in range(0, len(slots), 500):
            chunk = slots[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for slot, digest, path in self._conn.execute(
                f"SELECT slot, content_hash, path FROM images WHERE slot IN ({marks})", chunk
            ):
                result[slot] = (digest, unfs(path))
        return result

    # ------------------------------------------------------------------ models

    def models(self) -> list[ModelRow]:
        return [self._model_row(r) for r in self._conn.execute(
            "SELECT id, name, backbone_id, bits, feature_dim, manifest, created_at, active FROM models ORDER BY id"
        )]

    def model(self, model_id: int) -> ModelRow:
        row = self._conn.execute(
            "SELECT id, name, backbone_id, bits, feature_dim, manifest, created_at, active FROM models WHERE id = ?",
            (model_id,),
        ).fetchone()
        if row is None:
            raise UserError(f"no model version {model_id} in this library")
        return self._model_row(row)

    def active_model(self) -> ModelRow | None:
        row = self._conn.execute(
            "SELECT id, name, backbone_id, bits, feature_dim, manifest, created_at, active FROM models WHERE active = 1"
        ).fetchone()
        return self._model_row(row) if row else None

    @staticmethod
    def _model_row(row) -> ModelRow:
        model_id, name, backbone_id, bits, dim, manifest, created_at, active = row
        if not (type(model_id) is int and model_id > 0 and isinstance(backbone_id, str)
                and BACKBONE_ID.fullmatch(backbone_id) and type(bits) is int and 0 < bits <= MAX_BITS
                and type(dim) is int and 0 < dim <= MAX_FEATURE_DIM):
            raise UnsafeLibrary(f"the catalog's model version {model_id!r} is not one Lookalike writes (backbone "
                                f"id {str(backbone_id)[:40]!r}, {bits!r} bits, {dim!r} dims); was the library tampered with?")
        try:
            manifest = json.loads(manifest)
        except (TypeError, ValueError) as exc:
            raise LibraryDamaged(f"the catalog's record of model v{model_id} is damaged ({exc})") from exc
        if not isinstance(manifest, dict):
            raise LibraryDamaged(f"the catalog's record of model v{model_id} is damaged (its manifest is not an object)")
        return ModelRow(model_id, name, backbone_id, bits, dim, manifest, created_at, bool(active))

    def model_dir(self, model_id: int) -> Path:
        """A version's folder; refused (UnsafeLibrary) when it, or a file in it, is a link."""
        folder = self._model_folder(model_id)
        for path, want in ((folder, stat.S_ISDIR), (folder / "model.onnx", stat.S_ISREG),
                           (folder / "manifest.json", stat.S_ISREG)):
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            if not want(mode):
                raise UnsafeLibrary(f"{path} is a link or of the wrong kind, and a library's model files never are "
                                    "(was the library folder made by hand or tampered with?)")
        return folder

    def _model_folder(self, model_id: int) -> Path:
        if type(model_id) is not int or model_id <= 0:
            raise UnsafeLibrary(f"{model_id!r} is not a model version number")
        return self.root / "models" / f"{model_id:04d}"

    def codes_path(self, model_id: int) -> Path:
        if type(model_id) is not int or model_id <= 0:
            raise UnsafeLibrary(f"{model_id!r} is not a model version number")
        return self.root / "codes" / f"{model_id:04d}.u64"

    def features_path(self, backbone_id: str) -> Path:
        if not isinstance(backbone_id, str) or not BACKBONE_ID.fullmatch(backbone_id):
            raise UnsafeLibrary(f"{str(backbone_id)[:80]!r} is not a backbone id (hex digits); "
                                "was the library or the model folder tampered with?")
        return self.root / "features" / f"{backbone_id}.f16"

    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    def add_model(self, source_dir: str | os.PathLike, codes: np.ndarray | None = None, *,
                  activate: bool) -> ModelRow:
        """Copy a model folder in as a new version; ``codes`` (optional) covers every slot.

        The model folder and code array are written and synced first, the catalog row last,
        so a crash in between leaves only files that the next open or add deletes. With
        ``activate`` the version becomes active in the same commit, which needs ``codes``
        (and features of its backbone) for every slot.
        """
        with self.writing():
            manifest = read_manifest(source_dir)
            # Never reuse a deleted version's number: "v3" names one model for the library's life.
            model_id = max(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM models").fetchone()[0],
                           int(self._meta("last_model_id", "0"))) + 1
            target = self._model_folder(model_id)
            codes_path = self.codes_path(model_id)
            features_path = self.features_path(manifest["backbone_id"])
            staging = target.with_name(target.name + ".tmp")
            try:
                make_dirs(target.parent)
                remove_path(target)  # left by an add that crashed before its commit
                remove_path(staging)
                copy_folder_synced(source_dir, staging)
                publish_folder(staging, target)
                make_dirs(codes_path.parent)
                make_dirs(features_path.parent)
            except OSError as exc:
                remove_path(staging)
                raise environment_problem(exc, f"copy the model {source_dir} into the library") from exc
            codes_file = self.codes_file(model_id, words_for_bits(manifest["bits"]))
            sums = []
            if codes is not None:
                codes = np.ascontiguousarray(codes, dtype=np.uint64)
                codes_file.write_whole(codes)
                sums = self.sums_for_write(codes_file, 0, codes, fresh=True)
            else:
                remove_path(codes_path)
                codes_file.create_empty()
            self.features_file(manifest["backbone_id"], manifest["feature_dim"]).create_empty()
            with self.transaction():
                self._conn.execute("DELETE FROM array_chunks WHERE array = ?", (codes_file.key,))
                self._conn.execute(
                    """INSERT INTO models (id, name, backbone_id, bits, feature_dim, manifest, created_at, active)
                       VALUES (?, ?, ?, ?, ?, ?, ?, 0)""",
                    (model_id, manifest["name"], manifest["backbone_id"], manifest["bits"],
                     manifest["feature_dim"], json.dumps(manifest), utc_now()),
                )
                self.record_sums(sums)
                self.set_meta("last_model_id", str(model_id))
                if activate:
                    self._activate(model_id)
            return self.model(model_id)

    def update_model_metrics(self, model_id: int, metrics: dict) -> ModelRow:
        """Merge ``metrics`` into a version's manifest (catalog and folder), e.g. a score known only after install."""
        model = self.model(model_id)
        manifest = {**model.manifest, "metrics": {**model.manifest.get("metrics", {}), **metrics}}
        write_json_atomic(self.model_dir(model_id) / "manifest.json", manifest)
        with self.transaction():
            self._conn.execute("UPDATE models SET manifest = ? WHERE id = ?", (json.dumps(manifest), model_id))
        return self.model(model_id)

    # Activation history: a stack of the versions made active, oldest first. A plain activation
    # pushes; a roll back pops (its entries go to rolled_back) back to the version active
    # before the current one. ARCHITECTURE.md, "Model versions", states the rules.

    def activate(self, model_id: int) -> None:
        """Make a version active; it must already cover every slot (engine.reencode.encode_missing)."""
        with self.writing(), self.transaction():
            self._activate(model_id)

    def _activate(self, model_id: int) -> None:
        # Under the writer lock: no batch can commit new slots between this check and the commit.
        model = self.model(model_id)  # raises for an unknown id
        if not self.covers(model):
            have = self.arrays_of(model).coverage()
            raise RuntimeError(f"model v{model.id} covers {have} of {self.next_slot} photos: encode the rest "
                               "(engine.reencode.encode_missing) before activating it")
        self._conn.execute("UPDATE models SET active = (id = ?)", (model_id,))
        history = self.activation_history()
        if not history or history[-1] != model_id:  # activating the active version changes nothing
            self._conn.execute("INSERT INTO activations (model_id, at) VALUES (?, ?)", (model_id, utc_now()))

    def activation_history(self) -> list[int]:
        """The versions on the activation stack, oldest first; the last is the active one."""
        return [row[0] for row in self._conn.execute(
            f"SELECT model_id FROM activations WHERE {_LIVE_ACTIVATION} ORDER BY id")]

    def previous_model(self) -> ModelRow | None:
        """The model a roll back re-activates: the one active before the current one was activated."""
        active = self.active_model()
        for model_id in reversed(self.activation_history()):
            if active is None or model_id != active.id:
                return self.model(model_id)
        return None

    def roll_back(self, expected: int | None = None) -> ModelRow:
        """Re-activate the previous model (``expected``: the id the caller prepared it as).

        The current version's entries on top of the history are marked rolled back, so the
        next roll back goes further back instead of returning here.
        """
        with self.writing(), self.transaction():
            target = self.previous_model()
            if target is None:
                raise UserError("there is no earlier model to roll back to")
            if expected is not None and target.id != expected:
                raise UserError("the model history changed meanwhile; try the roll back again")
            if not self.covers(target):
                raise RuntimeError(f"model v{target.id} does not cover every photo: encode the rest "
                                   "(engine.reencode.encode_missing) before rolling back to it")
            (entry,) = self._conn.execute(
                f"SELECT MAX(id) FROM activations WHERE {_LIVE_ACTIVATION} AND model_id = ?", (target.id,)
            ).fetchone()
            self._conn.execute("INSERT INTO rolled_back (activation_id, at) "
                               f"SELECT id, ? FROM activations WHERE {_LIVE_ACTIVATION} AND id > ?", (utc_now(), entry))
            self._conn.execute("UPDATE models SET active = (id = ?)", (target.id,))
        return self.model(target.id)

    def delete_model(self, model_id: int) -> list[Path]:
        """Delete a version that is not active: its catalog row and history entries (so no roll
        back lands on it) in one commit, then its folder, its codes and, when no remaining
        version shares its backbone, its features. Labels are not touched. Returns the paths
        removed; one that cannot be removed now is left to the next open's repair."""
        with self.writing():
            with self.transaction():
                model = self.model(model_id)
                if model.active:
                    raise UserError(f"model v{model_id} is active: activate another version before deleting it")
                self._conn.execute("DELETE FROM rolled_back WHERE activation_id IN "
                                   "(SELECT id FROM activations WHERE model_id = ?)", (model_id,))
                self._conn.execute("DELETE FROM activations WHERE model_id = ?", (model_id,))
                self._conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
                shared = self._conn.execute("SELECT 1 FROM models WHERE backbone_id = ? LIMIT 1",
                                            (model.backbone_id,)).fetchone()
                arrays_gone = [self.codes_path(model_id)]
                if shared is None:
                    arrays_gone.append(self.features_path(model.backbone_id))
                self._conn.executemany("DELETE FROM array_chunks WHERE array = ?",
                                       [(self.array_key(path),) for path in arrays_gone])
            removed = []
            for path in (self._model_folder(model_id), *arrays_gone):
                try:
                    remove_path(path)
                    removed.append(path)
                except OSError as exc:
                    log.warning("could not remove %s (the next open tries again): %s", path, exc)
            return removed

    # -------------------------------------------------------------------- runs

    def start_run(self) -> int:
        cursor = self._conn.execute(
            "INSERT INTO runs (started_at, status) VALUES (?, 'running')", (utc_now(),)
        )
        return cursor.lastrowid

    def finish_run(self, run_id: int, status: str, stats: dict) -> None:
        self._conn.execute(
            "UPDATE runs SET finished_at = ?, status = ?, stats = ? WHERE id = ?",
            (utc_now(), status, json.dumps(stats), run_id),
        )

    def last_run(self) -> dict | None:
        row = self._conn.execute(
            "SELECT id, started_at, finished_at, status, stats FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        status = row[3]
        if status == "running" and not self.writer_busy():
            # Runs happen under the writer lock: with the lock free, its process is gone (killed).
            status = "interrupted"
        return {"id": row[0], "started_at": row[1], "finished_at": row[2], "status": status,
                "stats": json.loads(row[4]) if row[4] else {}}


def _check_layout(root: Path) -> None:
    """Refuse a library whose own folders or catalog files are links or of the wrong kind:
    following them would read and write outside the library."""
    for names, want in ((LIBRARY_FOLDERS, stat.S_ISDIR), (LIBRARY_FILES, stat.S_ISREG)):
        for name in names:
            path = root / name
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise environment_problem(exc, f"look at {path}") from exc
            if not want(mode):
                kind = "symbolic link" if stat.S_ISLNK(mode) else "file of the wrong kind"
                raise UnsafeLibrary(f"{path} is a {kind}; a Lookalike library never holds one there "
                                    "(was the library folder made by hand or tampered with?)")


def read_manifest(model_dir: str | os.PathLike) -> dict:
    """A model folder's manifest.json, with the fields the store relies on checked: the
    backbone id names a file, so it must be hex; sizes must be sane."""
    path = Path(model_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise environment_problem(exc, f"read {path}") from exc
    except ValueError as exc:
        raise EnvironmentProblem(f"{path} is not a model manifest ({exc})") from exc
    problems = []
    if not isinstance(manifest, dict):
        raise EnvironmentProblem(f"{path} is not a model manifest (not a JSON object)")
    if not (isinstance(manifest.get("backbone_id"), str) and BACKBONE_ID.fullmatch(manifest["backbone_id"])):
        problems.append(f"backbone_id {str(manifest.get('backbone_id'))[:80]!r} is not hex digits")
    for name, high in (("bits", MAX_BITS), ("feature_dim", MAX_FEATURE_DIM)):
        if not (type(manifest.get(name)) is int and 0 < manifest[name] <= high):
            problems.append(f"{name} {manifest.get(name)!r} is not a number from 1 to {high}")
    if not isinstance(manifest.get("name"), str):
        problems.append("it has no name")
    if problems:
        raise UnsafeLibrary(f"{path} is not a model manifest Lookalike writes: {'; '.join(problems)}")
    return manifest


def _writable(root: Path, catalog: Path) -> bool:
    """Whether this process may write the library (False on a read-only mount or share)."""
    return os.access(root, os.W_OK) and os.access(catalog, os.W_OK)


def _image_row(row: tuple) -> ImageRow:
    return ImageRow(row[0], unfs(row[1]), *row[2:])


def _label_row(row: tuple) -> LabelRow:
    return LabelRow(*row[:4], unfs(row[4]), unfs(row[5]), row[6], unfs(row[7]), unfs(row[8]))


