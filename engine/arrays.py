"""Flat row arrays on disk (codes, features): append at a slot, flush, truncate, map."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write


def row_count(path: Path, rowbytes: int) -> int:
    """Whole rows in the file (0 if it does not exist)."""
    try:
        return os.stat(path).st_size // rowbytes
    except FileNotFoundError:
        return 0


def truncate_rows(path: Path, rowbytes: int, rows: int) -> None:
    """Drop rows at and beyond ``rows`` (rows written for a batch whose commit never happened)."""
    size = os.stat(path).st_size
    if size > rows * rowbytes or size % rowbytes:
        with open(path, "r+b") as handle:
            handle.truncate(min(size // rowbytes, rows) * rowbytes)
            os.fsync(handle.fileno())


def write_rows(path: Path, first_row: int, rows: np.ndarray, *, sync: bool = True) -> None:
    """Write ``rows`` (2-D, C-contiguous) starting at row ``first_row``, then flush to disk.

    The file must already hold at least ``first_row`` rows; rows are written in place, so a
    crash leaves the catalog's committed prefix untouched.
    """
    rows = np.ascontiguousarray(rows)
    rowbytes = rows.shape[1] * rows.itemsize
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
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
    finally:
        os.close(fd)


def read_rows(path: Path, dtype: np.dtype, width: int, rows: int | None = None, *,
              random_access: bool = False) -> np.ndarray:
    """Map the file read-only as a (rows, width) array; empty array when there is nothing.

    ``random_access``: the caller reads scattered rows (re-ranking), not the whole file.
    """
    dtype = np.dtype(dtype)
    available = row_count(path, width * dtype.itemsize)
    rows = available if rows is None else min(rows, available)
    if rows == 0:
        return np.zeros((0, width), dtype=dtype)
    array = np.memmap(path, dtype=dtype, mode="r", shape=(rows, width))
    if random_access:
        _advise_random(array)
    return array


def _advise_random(array: np.memmap) -> None:
    """Tell the kernel rows are read at random: without it, read-ahead around each of the
    re-rank's few thousand rows maps over a gigabyte of a million-photo feature file."""
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_RANDOM"):
        handle.madvise(mmap.MADV_RANDOM)


def write_atomic(path: Path, array: np.ndarray) -> None:
    """Write a whole array file via a temporary file and rename, so readers never see half."""
    with atomic_write(path) as handle:
        handle.write(memoryview(np.ascontiguousarray(array)).cast("B"))
