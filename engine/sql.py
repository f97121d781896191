"""The catalog's SQLite plumbing: typed errors, connections, URIs, transactions, paths as bytes."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from engine.errors import DiskFull, EnvironmentProblem, LibraryDamaged

log = logging.getLogger("engine.store")  # its messages read as the store's, as before the split


class Transaction:
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
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()  # a failed COMMIT (disk full) may leave the transaction open
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk, an I/O error): the error that got
        # here is the one to report, not a second one from ROLLBACK.
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error, EnvironmentProblem):
                self._conn.execute("ROLLBACK")


# sqlite3 primary result codes that are the machine's or the file's fault, not a bug.
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26


def catalog_problem(exc: sqlite3.Error, catalog: Path | str | None) -> EnvironmentProblem | None:
    """The typed error for a SQLite error that says the catalog file or its disk is at fault."""
    code = getattr(exc, "sqlite_errorcode", None)
    code = None if code is None else code & 0xFF
    name = "the catalog" if catalog is None else f"the catalog {catalog}"
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return LibraryDamaged(f"{name} is damaged ({exc}); run 'lookalike repair --check' to see what, "
                              "then restore catalog.sqlite3 from a backup if you have one")
    if code == _SQLITE_FULL:
        return DiskFull(f"cannot write {name}: the disk is full (free some space and run it again; "
                        "nothing committed before is lost)")
    if code == _SQLITE_IOERR:
        return EnvironmentProblem(f"cannot read or write {name}: {exc}")
    return None


def _typed(exc: sqlite3.DatabaseError, catalog) -> BaseException:
    problem = catalog_problem(exc, catalog)
    if problem is None:
        return exc
    problem.__cause__ = exc
    return problem


class _CatalogCursor(sqlite3.Cursor):
    """Rows are read lazily, so a damaged page can surface at a fetch as well as at execute."""

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            raise _typed(exc, self.connection.catalog) from exc

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            raise _typed(exc, self.connection.catalog) from exc


class CatalogConnection(sqlite3.Connection):
    """A connection whose errors from a damaged catalog or a full disk are typed (LibraryDamaged,
    DiskFull): one line for the person instead of a traceback. (Iterating a cursor row by row
    is left untyped, to keep its speed; the CLI types what gets through.)"""

    catalog: Path | str | None = None

    def execute(self, sql, parameters=()):
        try:
            return self.cursor(_CatalogCursor).execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise _typed(exc, self.catalog) from exc

    def executemany(self, sql, parameters):
        try:
            return self.cursor(_CatalogCursor).executemany(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise _typed(exc, self.catalog) from exc


def uri_path(path: Path) -> str:
    """A path as a SQLite URI filename: every byte percent-encoded as needed (any folder name)."""
    return quote(os.fsencode(path))


def catalog_uri(catalog: str | os.PathLike, query: str = "") -> str:
    """The ``file:`` URI of a catalog for sqlite3.connect(uri=True), with an optional query (mode=ro)."""
    return f"file:{uri_path(Path(catalog))}" + (f"?{query}" if query else "")


def read_only_uri(catalog: Path) -> str:
    """How to read a WAL catalog in a folder that cannot be written.

    SQLite reads a WAL database read-only (mode=ro) only when its -wal and -shm files exist
    (it cannot create them here). After a clean close they do not (the last connection
    checkpoints and deletes them): the main file then holds every commit, and immutable=1
    reads it without any WAL or lock file. When a -wal is there (a writer elsewhere, or one
    that was killed), mode=ro reads through it if its -shm is there too; otherwise nothing
    can read those last commits here, and immutable=1 reads the catalog as of its last
    checkpoint (arrays are read up to that catalog's next_slot, so what is shown agrees).
    """
    wal = catalog.with_name(catalog.name + "-wal")
    shm = catalog.with_name(catalog.name + "-shm")
    if wal.exists() and wal.stat().st_size > 0:
        if shm.exists():
            return f"file:{uri_path(catalog)}?mode=ro"
        log.warning("%s holds changes that can only be read where the library is writable; "
                    "reading the catalog as of its last checkpoint", wal)
    return f"file:{uri_path(catalog)}?immutable=1"


def read_only_message(root: Path) -> str:
    return (f"the library at {root} is read-only here: searching works, but indexing, labelling and "
            "changing models need a library folder this user can write")


class ReadOnlyConnection:
    """A read-only catalog connection whose writes fail as EnvironmentProblem, not sqlite3 errors."""

    def __init__(self, conn: sqlite3.Connection, root: Path):
        self._conn = conn
        self._root = root

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                raise EnvironmentProblem(read_only_message(self._root)) from exc
            raise

    def executemany(self, sql: str, params) -> sqlite3.Cursor:
        try:
            return self._conn.executemany(sql, params)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                raise EnvironmentProblem(read_only_message(self._root)) from exc
            raise

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def fs(path: str | os.PathLike) -> bytes:
    """A path as the catalog keeps it: the file system's own bytes (any name, in byte order)."""
    return os.fsencode(path)


def fs_or_none(path: str | os.PathLike | None) -> bytes | None:
    return None if path is None else fs(path)


def unfs(value: bytes | str | None) -> str | None:
    """A path from the catalog as Python names files: str, undecodable bytes as lone surrogates."""
    return None if value is None else os.fsdecode(value)


def path_range(directory: str) -> tuple[bytes, bytes]:
    """Bounds of the paths strictly under ``directory``: prefix <= path < upper (an index range
    scan; paths are bytes, compared as memcmp, so any name sorts and scans exactly)."""
    prefix = fs(directory)
    sep = fs(os.sep)
    if not prefix.endswith(sep):
        prefix += sep
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])
