"""The library folder: SQLite catalog (WAL) plus per-model code and feature arrays."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import arrays
from engine.atomic import write_json_atomic
from engine.codes import words_for_bits
from engine.errors import EnvironmentProblem, StoreTooNew, UserError

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite3"
WORK_PREFIX = ".work-"  # scratch folders in the library (new model versions before they are added)


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


# Stepwise migrations: MIGRATIONS[i] takes the schema from version i to i + 1. Never edit a
# released step; append a new one. A store newer than len(MIGRATIONS) is refused.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE roots (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at TEXT NOT NULL
    );
    CREATE TABLE exclusions (
        id INTEGER PRIMARY KEY,
        pattern TEXT NOT NULL UNIQUE
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        dir TEXT NOT NULL,
        root_id INTEGER REFERENCES roots(id) ON DELETE SET NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        width INTEGER,
        height INTEGER,
        taken_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
        reason TEXT,
        slot INTEGER UNIQUE,
        seen_run INTEGER NOT NULL DEFAULT 0,
        indexed_at TEXT NOT NULL,
        CHECK ((status = 'ok') = (slot IS NOT NULL))
    );
    CREATE INDEX images_dir ON images(dir);
    CREATE INDEX images_hash ON images(content_hash);
    CREATE INDEX images_root ON images(root_id);
    CREATE TABLE dead_slots (slot INTEGER PRIMARY KEY);
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        hash_a TEXT NOT NULL,
        hash_b TEXT NOT NULL,
        label INTEGER NOT NULL CHECK (label IN (1, -1)),
        source TEXT NOT NULL,
        path_a TEXT,
        path_b TEXT,
        created_at TEXT NOT NULL,
        CHECK (hash_a < hash_b),
        UNIQUE (hash_a, hash_b)
    );
    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        backbone_id TEXT NOT NULL,
        bits INTEGER NOT NULL,
        feature_dim INTEGER NOT NULL,
        manifest TEXT NOT NULL,
        created_at TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        stats TEXT
    );
    INSERT INTO meta (key, value) VALUES ('next_slot', '0');
    """,
    # 2: remember activations, so 'model rollback' knows what was active before.
    """
    CREATE TABLE activations (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        at TEXT NOT NULL
    );
    INSERT INTO activations (model_id, at) SELECT id, created_at FROM models WHERE active = 1;
    """,
    # 3: roll back walks the activation history: the entries it leaves are marked, and later
    # roll backs skip them (see ARCHITECTURE.md, "Model versions"). Entries written before
    # this step all count as plain activations.
    """
    ALTER TABLE activations ADD COLUMN rolled_back_at TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


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


class Store:
    """A library folder. Not thread-safe: one Store per thread (SQLite connections are not shared)."""

    def __init__(self, root: Path, conn: sqlite3.Connection):
        self.root = root
        self._conn = conn

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, root: str | os.PathLike, *, create: bool = True, readonly: bool = False) -> "Store":
        """Open (and create or migrate) the library at ``root``; repair arrays after a crash."""
        root = Path(root).expanduser().absolute()
        catalog = root / CATALOG
        if not catalog.exists():
            if not create or readonly:
                raise UserError(f"no Lookalike library at {root} (run 'lookalike index' first)")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EnvironmentProblem(f"cannot create the library folder {root}: {exc.strerror}") from exc
        uri = f"file:{catalog}?mode=ro" if readonly else f"file:{catalog}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise EnvironmentProblem(f"cannot open the catalog {catalog}: {exc}") from exc
        store = cls(root, conn)
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
        if self._lock_handle is None:
            self._lock_handle = _try_flock(self.root / "writer.lock")
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

    def release_writer_lock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file drops the flock
            self._lock_handle = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self, *, readonly: bool) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreTooNew(
                f"the library at {self.root} was written by a newer Lookalike (store schema "
                f"{version}; this version understands up to {SCHEMA_VERSION}); upgrade Lookalike"
            )
        if version == SCHEMA_VERSION:
            return
        if readonly:
            raise EnvironmentProblem(f"the library at {self.root} needs an upgrade; open it read-write once")
        while True:
            with self.transaction():
                # Read the version again under the write lock: another process (or thread)
                # opening the same new library may have migrated it meanwhile.
                step = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if step >= SCHEMA_VERSION:
                    return
                log.info("migrating store schema %d -> %d", step, step + 1)
                for statement in _split_sql(MIGRATIONS[step]):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {step + 1}")

    @contextlib.contextmanager
    def work_dir(self) -> Iterator[Path]:
        """A scratch folder inside the library (same file system: its files can be renamed in),
        removed on exit; one left by a killed process is swept by the next ``open``."""
        with tempfile.TemporaryDirectory(dir=self.root, prefix=WORK_PREFIX) as tmp:
            owner = _try_flock(Path(tmp) / "owner.lock")  # held while in use: the sweep skips it
            try:
                yield Path(tmp)
            finally:
                if owner is not None:
                    owner.close()

    def _sweep_work_dirs(self) -> None:
        for folder in self.root.glob(WORK_PREFIX + "*"):
            if not folder.is_dir():
                continue
            if not _HAVE_FLOCK and time.time() - folder.stat().st_mtime < 86400:
                continue  # without flock, only an old folder is surely abandoned
            owner = _try_flock(folder / "owner.lock")
            if owner is None:
                continue  # still in use by a live process (or not ours to touch)
            owner.close()
            log.info("removing %s, left by an interrupted job", folder)
            shutil.rmtree(folder, ignore_errors=True)

    def _repair(self) -> None:
        """Make the arrays agree with the catalog after a crash (see ARCHITECTURE.md)."""
        self._sweep_work_dirs()
        next_slot = self.next_slot
        known_codes = set()
        known_features = set()
        for model in self.models():
            known_codes.add(self.codes_path(model.id).name)
            known_features.add(self.features_path(model.backbone_id).name)
        models_folder = self.root / "models"
        if models_folder.is_dir():
            known_folders = {self.model_dir(model.id).name for model in self.models()}
            for folder in models_folder.iterdir():
                if folder.is_dir() and folder.name not in known_folders:
                    # A version deleted, or added, by a process that died before it finished.
                    log.info("removing %s, which no model version uses", folder)
                    shutil.rmtree(folder, ignore_errors=True)
        for folder, known in ((self.root / "codes", known_codes), (self.root / "features", known_features)):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name not in known:
                    # Left by a refit or activation that crashed before its commit.
                    path.unlink(missing_ok=True)
                    continue
                rowbytes = self._rowbytes_for(path)
                arrays.truncate_rows(path, rowbytes, next_slot)
        active = self.active_model()
        if active is None:
            return
        # The active model's arrays must cover every committed slot. They can only fall short
        # after an OS crash that lost unsynced pages; then forget those encodings so the next
        # index run redoes them.
        have = min(
            arrays.row_count(self.codes_path(active.id), active.words * 8),
            arrays.row_count(self.features_path(active.backbone_id), active.feature_dim * 2),
        )
        if have < next_slot:
            log.warning("arrays cover %d of %d slots; %d images will be re-encoded", have, next_slot, next_slot - have)
            with self.transaction():
                self._conn.execute(
                    "INSERT OR IGNORE INTO dead_slots (slot) SELECT slot FROM images WHERE slot >= ?", (have,)
                )
                self._conn.execute("DELETE FROM images WHERE slot >= ?", (have,))

    def _rowbytes_for(self, path: Path) -> int:
        if path.parent.name == "codes":
            model = self.model(int(path.stem))
            return model.words * 8
        for model in self.models():
            if model.backbone_id == path.stem:
                return model.feature_dim * 2
        raise AssertionError(f"unknown array {path}")

    # ------------------------------------------------------------ transactions

    def transaction(self) -> "_Transaction":
        return _Transaction(self._conn)

    @property
    def next_slot(self) -> int:
        return int(self._meta("next_slot"))

    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return self._meta(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------- roots

    def add_root(self, path: str) -> int:
        self._conn.execute("INSERT OR IGNORE INTO roots (path, added_at) VALUES (?, ?)", (path, utc_now()))
        return self._conn.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()[0]

    def roots(self) -> list[tuple[int, str]]:
        return self._conn.execute("SELECT id, path FROM roots ORDER BY path").fetchall()

    def remove_root(self, path: str) -> int:
        """Forget a root and every image under it; returns how many images were forgotten."""
        row = self._conn.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise UserError(f"{path} is not a root of this library")
        with self.transaction():
            count = self._forget_images("root_id = ?", (row[0],))
            self._conn.execute("DELETE FROM roots WHERE id = ?", (row[0],))
        return count

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
            (directory,),
        )
        return {row[1]: ImageRow(*row) for row in cursor}

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self._conn.execute(
            "SELECT id, path, size, mtime_ns, content_hash, status, reason, slot FROM images WHERE path = ?",
            (path,),
        ).fetchone()
        return ImageRow(*row) if row else None

    def paths_under(self, directory: str) -> list[str]:
        """Catalogued paths strictly under ``directory`` (any depth): one range scan of the path index."""
        low, high = _path_range(directory)
        return [r[0] for r in self._conn.execute("SELECT path FROM images WHERE path >= ? AND path < ?", (low, high))]

    def slots_under(self, directory: str) -> np.ndarray:
        """Live slots of the photos strictly under ``directory`` (any depth)."""
        low, high = _path_range(directory)
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
        return row[0] if row else None

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

    def mark_seen(self, image_ids: Sequence[int], run_id: int) -> None:
        if not image_ids:
            return
        with self.transaction():
            self._conn.executemany(
                "UPDATE images SET seen_run = ? WHERE id = ?", [(run_id, i) for i in image_ids]
            )

    def commit_batch(self, items: Iterable[NewImage], run_id: int, next_slot: int) -> None:
        """Record a batch of files in one transaction (arrays must already hold their rows)."""
        now = utc_now()
        with self.transaction():
            for item in items:
                old = self._conn.execute(
                    "SELECT id, slot FROM images WHERE path = ?", (item.path,)
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
                        item.path, os.path.dirname(item.path), item.root_id, item.size, item.mtime_ns,
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
                low, high = _path_range(path)
                forgotten += self._forget_images("path = ? OR (path >= ? AND path < ?)", (path, low, high))
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
                result[slot] = path
        return result

    def images_in_slot_range(self, start: int, stop: int) -> list[tuple[int, str, str]]:
        """(slot, path, content hash) of the catalogued photos whose slots are in [start, stop)."""
        return self._conn.execute(
            "SELECT slot, path, content_hash FROM images WHERE slot >= ? AND slot < ? ORDER BY slot", (start, stop)
        ).fetchall()

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
        return self._conn.execute(sql).fetchall()

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
        if hash_b < hash_a:
            hash_a, hash_b, path_a, path_b = hash_b, hash_a, path_b, path_a
        self._conn.execute(
            """INSERT INTO labels (hash_a, hash_b, label, source, path_a, path_b, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (hash_a, hash_b) DO UPDATE SET label = excluded.label,
                   source = excluded.source, created_at = excluded.created_at""",
            (hash_a, hash_b, label, source, path_a, path_b, created_at or utc_now()),
        )

    def labels(self) -> list[tuple]:
        return self._conn.execute(
            "SELECT hash_a, hash_b, label, source, path_a, path_b, created_at FROM labels ORDER BY id"
        ).fetchall()

    _LABEL_ROW_SQL = """
        SELECT hash_a, hash_b, label, source, path_a, path_b, created_at,
               (SELECT path FROM images WHERE content_hash = hash_a AND slot IS NOT NULL ORDER BY path LIMIT 1),
               (SELECT path FROM images WHERE content_hash = hash_b AND slot IS NOT NULL ORDER BY path LIMIT 1)
        FROM labels"""

    def label_rows(self) -> list[LabelRow]:
        """Every label, oldest first, with the photos' current paths (None where no longer indexed)."""
        return [LabelRow(*row) for row in self._conn.execute(self._LABEL_ROW_SQL + " ORDER BY id")]

    def label(self, hash_a: str, hash_b: str) -> LabelRow | None:
        """The label of a pair (either order), if it has one."""
        if hash_b < hash_a:
            hash_a, hash_b = hash_b, hash_a
        row = self._conn.execute(self._LABEL_ROW_SQL + " WHERE hash_a = ? AND hash_b = ?",
                                 (hash_a, hash_b)).fetchone()
        return LabelRow(*row) if row else None

    def delete_label(self, hash_a: str, hash_b: str) -> bool:
        """Forget a pair's label (either order); False if it had none."""
        if hash_b < hash_a:
            hash_a, hash_b = hash_b, hash_a
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
                result[slot] = (digest, path)
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
        return ModelRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], bool(row[7]))

    def model_dir(self, model_id: int) -> Path:
        return self.root / "models" / f"{model_id:04d}"

    def codes_path(self, model_id: int) -> Path:
        return self.root / "codes" / f"{model_id:04d}.u64"

    def features_path(self, backbone_id: str) -> Path:
        return self.root / "features" / f"{backbone_id}.f16"

    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    def add_model(self, source_dir: str | os.PathLike, codes: np.ndarray | None = None, *,
                  activate: bool) -> ModelRow:
        """Copy a model folder in as a new version; ``codes`` (optional) covers every slot.

        The model folder and code array are written first, the catalog row last, so a crash
        in between leaves only files that the next open deletes.
        """
        manifest = json.loads((Path(source_dir) / "manifest.json").read_text())
        # Never reuse a deleted version's number: "v3" names one model for the library's life.
        model_id = max(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM models").fetchone()[0],
                       int(self._meta("last_model_id", "0"))) + 1
        target = self.model_dir(model_id)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source_dir, staging)
        os.replace(staging, target)
        codes_path = self.codes_path(model_id)
        codes_path.parent.mkdir(parents=True, exist_ok=True)
        if codes is not None:
            arrays.write_atomic(codes_path, np.ascontiguousarray(codes, dtype=np.uint64))
        else:
            codes_path.unlink(missing_ok=True)
            codes_path.touch()
        self.features_path(manifest["backbone_id"]).parent.mkdir(parents=True, exist_ok=True)
        self.features_path(manifest["backbone_id"]).touch(exist_ok=True)
        with self.transaction():
            self._conn.execute(
                """INSERT INTO models (id, name, backbone_id, bits, feature_dim, manifest, created_at, active)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 0)""",
                (model_id, manifest["name"], manifest["backbone_id"], manifest["bits"],
                 manifest["feature_dim"], json.dumps(manifest), utc_now()),
            )
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
    # pushes; a roll back pops (its entries get rolled_back_at) back to the version active
    # before the current one. ARCHITECTURE.md, "Model versions", states the rules.

    def activate(self, model_id: int) -> None:
        with self.transaction():
            self._activate(model_id)

    def _activate(self, model_id: int) -> None:
        self.model(model_id)  # raises for an unknown id
        self._conn.execute("UPDATE models SET active = (id = ?)", (model_id,))
        history = self.activation_history()
        if not history or history[-1] != model_id:  # activating the active version changes nothing
            self._conn.execute("INSERT INTO activations (model_id, at) VALUES (?, ?)", (model_id, utc_now()))

    def activation_history(self) -> list[int]:
        """The versions on the activation stack, oldest first; the last is the active one."""
        return [row[0] for row in self._conn.execute(
            "SELECT model_id FROM activations WHERE rolled_back_at IS NULL ORDER BY id")]

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
        with self.transaction():
            target = self.previous_model()
            if target is None:
                raise UserError("there is no earlier model to roll back to")
            if expected is not None and target.id != expected:
                raise UserError("the model history changed meanwhile; try the roll back again")
            (entry,) = self._conn.execute(
                "SELECT MAX(id) FROM activations WHERE rolled_back_at IS NULL AND model_id = ?", (target.id,)
            ).fetchone()
            self._conn.execute("UPDATE activations SET rolled_back_at = ? WHERE rolled_back_at IS NULL AND id > ?",
                               (utc_now(), entry))
            self._conn.execute("UPDATE models SET active = (id = ?)", (target.id,))
        return self.model(target.id)

    def delete_model(self, model_id: int) -> list[Path]:
        """Forget a version that is not active, with its history entries; returns the files and
        folders that held only it (its model folder, its codes, and its backbone's features when
        no remaining version shares that backbone) for the caller to remove after this commits.
        Labels are not touched."""
        with self.transaction():
            model = self.model(model_id)
            if model.active:
                raise UserError(f"model v{model_id} is active: activate another version before deleting it")
            self._conn.execute("DELETE FROM activations WHERE model_id = ?", (model_id,))
            self._conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
            shared = self._conn.execute("SELECT 1 FROM models WHERE backbone_id = ? LIMIT 1",
                                        (model.backbone_id,)).fetchone()
        leftovers = [self.model_dir(model_id), self.codes_path(model_id)]
        if shared is None:
            leftovers.append(self.features_path(model.backbone_id))
        return leftovers

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
        return {"id": row[0], "started_at": row[1], "finished_at": row[2], "status": row[3],
                "stats": json.loads(row[4]) if row[4] else {}}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error; nests by doing nothing inside."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._outer = False

    def __enter__(self) -> None:
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._outer:
            return
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


try:
    import fcntl
except ImportError:  # Windows: no flock; one writer is the documented rule there
    fcntl = None
_HAVE_FLOCK = fcntl is not None


def _try_flock(path: Path):
    """An open handle holding an exclusive advisory lock on ``path``, or None when another
    process holds it. The OS drops the lock when the holder dies."""
    handle = open(path, "a+b")
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _path_range(directory: str) -> tuple[str, str]:
    """Bounds of the paths strictly under ``directory``: prefix <= path < upper (an index range scan)."""
    prefix = directory if directory.endswith(os.sep) else directory + os.sep
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _split_sql(script: str) -> Iterator[str]:
    """Statements of a migration script (ours: no semicolons inside literals or triggers)."""
    for statement in script.split(";"):
        if statement.strip():
            yield statement
