"""Flat row arrays on disk (codes, features): append at a slot, flush, truncate, map, checksum.

Every open refuses a symbolic link (O_NOFOLLOW) and anything but a regular file: a library
folder is untrusted input, and its arrays are written in place, so following a link planted
in one would write outside the library. OSErrors become the matching EnvironmentProblem.
"""

from __future__ import annotations

import mmap
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write, fsync_dir
from engine.errors import UnsafeLibrary, environment_problem

# O_NONBLOCK: opening a FIFO planted in place of an array must not hang (a regular file ignores it).
_SAFE_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _not_a_file(path: Path) -> UnsafeLibrary:
    return UnsafeLibrary(f"{path} is not a plain file, and a library's arrays always are "
                         "(was the library folder made by hand or tampered with?)")


def open_safely(path: Path, flags: int, doing: str) -> int:
    """A descriptor on the regular file at ``path``, never through a symbolic link."""
    try:
        fd = os.open(path, flags | _SAFE_FLAGS | _BINARY, 0o644)
    except OSError as exc:
        raise environment_problem(exc, f"{doing} {path}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_file(path)
    return fd


def row_count(path: Path, rowbytes: int) -> int:
    """Whole rows in the file (0 if it does not exist)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(st.st_mode):
        raise _not_a_file(Path(path))
    return st.st_size // rowbytes


def truncate_rows(path: Path, rowbytes: int, rows: int) -> None:
    """Drop rows at and beyond ``rows`` (rows written for a batch whose commit never happened)."""
    fd = open_safely(path, os.O_RDWR, "truncate")
    try:
        size = os.fstat(fd).st_size
        if size > rows * rowbytes or size % rowbytes:
            os.ftruncate(fd, min(size // rowbytes, rows) * rowbytes)
            os.fsync(fd)
    except OSError as exc:
        raise environment_problem(exc, f"truncate {path}") from exc
    finally:
        os.close(fd)


def write_rows(path: Path, first_row: int, rows: np.ndarray, *, sync: bool = True) -> None:
    """Write ``rows`` (2-D, C-contiguous) starting at row ``first_row``, then flush to disk.

    The file must already hold at least ``first_row`` rows; rows are written in place, so a
    crash leaves the catalog's committed prefix untouched. A file created here has its folder
    entry synced too.
    """
    rows = np.ascontiguousarray(rows)
    rowbytes = rows.shape[1] * rows.itemsize
    created = not os.path.lexists(path)
    fd = open_safely(path, os.O_WRONLY | os.O_CREAT, "write")
    try:
        size = os.fstat(fd).st_size
        if size < first_row * rowbytes:
            raise AssertionError(f"{path} holds {size // rowbytes} rows; cannot write at row {first_row}")
        view = memoryview(rows).cast("B")
        offset = first_row * rowbytes
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written
        if sync:
            os.fsync(fd)
            if created:
                fsync_dir(Path(path).parent)
    except OSError as exc:
        raise environment_problem(exc, f"write {path}") from exc
    finally:
        os.close(fd)


def create_empty(path: Path) -> None:
    """An empty array file (kept as it is when one exists), its folder entry synced."""
    if os.path.lexists(path):
        row_count(path, 1)  # refuses a link or a non-file in its place
        return
    fd = open_safely(path, os.O_WRONLY | os.O_CREAT, "create")
    os.close(fd)
    try:
        fsync_dir(Path(path).parent)
    except OSError as exc:
        raise environment_problem(exc, f"create {path}") from exc


def map_file(path: Path, length: int) -> mmap.mmap:
    """The first ``length`` bytes of the file, mapped read-only (``length`` > 0)."""
    fd = open_safely(path, os.O_RDONLY, "read")
    try:
        return mmap.mmap(fd, length, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise environment_problem(exc, f"read {path}") from exc
    finally:
        os.close(fd)  # the mapping keeps its own reference to the file


def read_rows(path: Path, dtype: np.dtype, width: int, rows: int | None = None, *,
              random_access: bool = False) -> np.ndarray:
    """Map the file read-only as a (rows, width) array; empty array when there is nothing.

    ``random_access``: the caller reads scattered rows (re-ranking), not the whole file.
    """
    dtype = np.dtype(dtype)
    rowbytes = width * dtype.itemsize
    available = row_count(path, rowbytes)
    rows = available if rows is None else min(rows, available)
    if rows == 0:
        return np.zeros((0, width), dtype=dtype)
    mapping = map_file(path, rows * rowbytes)
    if random_access:
        _advise_random(mapping)
    return np.frombuffer(mapping, dtype=dtype, count=rows * width).reshape(rows, width)


def read_row(path: Path, row: int, dtype: np.dtype, width: int) -> np.ndarray:
    """One row, copied (the encoding of content seen before)."""
    dtype = np.dtype(dtype)
    rowbytes = width * dtype.itemsize
    data = read_bytes(path, rowbytes, row, row + 1)
    if len(data) != rowbytes:
        raise AssertionError(f"{path} has no row {row}")
    return np.frombuffer(data, dtype=dtype).copy()


def _advise_random(mapping: mmap.mmap) -> None:
    """Tell the kernel rows are read at random: without it, read-ahead around each of the
    re-rank's few thousand rows maps over a gigabyte of a million-photo feature file."""
    if hasattr(mmap, "MADV_RANDOM"):
        mapping.madvise(mmap.MADV_RANDOM)


def write_atomic(path: Path, array: np.ndarray) -> None:
    """Write a whole array file via a temporary file and rename, so readers never see half."""
    with atomic_write(path) as handle:
        handle.write(memoryview(np.ascontiguousarray(array)).cast("B"))


# ---------------------------------------------------------------- checksums
# An array is checksummed in chunks of CHUNK_ROWS rows: CRC-32 (zlib, about 6 GB/s here) of
# the bytes of the rows a chunk holds so far. CRC-32 continues from a previous value, so an
# append updates its chunk's sum from the new rows alone.

CHUNK_ROWS = 1024


def crc(data, previous: int = 0) -> int:
    """CRC-32 of a bytes-like object, continuing ``previous``."""
    return zlib.crc32(data, previous)


def read_bytes(path: Path, rowbytes: int, start: int, stop: int) -> bytes:
    """The bytes of rows [start, stop) as the file holds them (fewer if it is shorter)."""
    if stop <= start:
        return b""
    fd = open_safely(path, os.O_RDONLY, "read")
    try:
        return os.pread(fd, (stop - start) * rowbytes, start * rowbytes)
    except OSError as exc:
        raise environment_problem(exc, f"read {path}") from exc
    finally:
        os.close(fd)
