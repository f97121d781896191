"""The catalog's schema: its stepwise migrations, and running them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from engine.errors import EnvironmentProblem, StoreTooNew
from engine.sql import Transaction, fs

log = logging.getLogger("engine.store")

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
    # 3: checksums of the code and feature arrays, per chunk of arrays.CHUNK_ROWS rows; rows
    # beyond an array's recorded chunks are unverified (arrays written before this step).
    """
    CREATE TABLE array_chunks (
        array TEXT NOT NULL,
        chunk INTEGER NOT NULL,
        rows INTEGER NOT NULL CHECK (rows > 0),
        crc INTEGER NOT NULL,
        PRIMARY KEY (array, chunk)
    ) WITHOUT ROWID;
    """,
    # 4: paths as the file system's bytes (BLOB), not UTF-8 text: a name that is not valid UTF-8
    # must be stored, found and ordered exactly (see ARCHITECTURE.md, "Paths").
    """
    UPDATE roots SET path = fsencode(path);
    UPDATE images SET path = fsencode(path), dir = fsencode(dir);
    UPDATE labels SET path_a = fsencode(path_a), path_b = fsencode(path_b);
    """,
    # 5: roll back walks the activation history: the entries it leaves are listed here, and
    # later roll backs skip them (see ARCHITECTURE.md, "Model versions"). Entries written
    # before this step all count as plain activations.
    """
    CREATE TABLE IF NOT EXISTS rolled_back (
        activation_id INTEGER PRIMARY KEY REFERENCES activations(id) ON DELETE CASCADE,
        at TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn, root: Path, *, readonly: bool) -> None:
    """Bring the catalog's schema up to SCHEMA_VERSION, step by step, each step in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreTooNew(
            f"the library at {root} was written by a newer Lookalike (store schema "
            f"{version}; this version understands up to {SCHEMA_VERSION}); upgrade Lookalike"
        )
    if version == SCHEMA_VERSION:
        return
    if readonly:
        raise EnvironmentProblem(f"the library at {root} needs an upgrade; open it read-write once")
    # Migration 3 re-encodes text paths as the file system does (os.fsencode, not SQL's CAST,
    # which would be wrong under a file system encoding other than UTF-8).
    conn.create_function("fsencode", 1, lambda text: None if text is None else fs(text), deterministic=True)
    while True:
        with Transaction(conn):
            # Read the version again under the write lock: another process (or thread)
            # opening the same new library may have migrated it meanwhile.
            step = conn.execute("PRAGMA user_version").fetchone()[0]
            if step >= SCHEMA_VERSION:
                return
            log.info("migrating store schema %d -> %d", step, step + 1)
            for statement in split_sql(MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")


def split_sql(script: str) -> Iterator[str]:
    """Statements of a migration script (ours: no semicolons inside literals or triggers)."""
    for statement in script.split(";"):
        if statement.strip():
            yield statement
