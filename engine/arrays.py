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
from dataclasses import dataclass, field
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
# An array is checksummed in chunks of CHUNK_ROWS rows: CRC-32 (zlib; its speed is in
# docs/BENCHMARKS.md, "Array checksums") of the bytes of the rows a chunk holds so far. CRC-32
# continues from a previous value, so an append updates its chunk's sum from the new rows alone.

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


# ---------------------------------------------------------------- the owner
# The functions above are the file operations; the classes below are what the rest of the
# engine holds: one array file of fixed-width rows, and one model version's pair of them.
# The catalog (engine.store) records the checksums these compute, in the transaction that
# commits their rows.


@dataclass(frozen=True)
class ChunkSum:
    """The checksum of one chunk of an array: CRC-32 of its first ``rows`` rows."""

    array: str  # the array's path in the library, e.g. "codes/0001.u64"
    chunk: int
    rows: int
    crc: int


@dataclass
class ArrayCheck:
    """What verifying an array found: damaged row ranges, and rows no checksum covers yet."""

    array: str
    rows: int  # rows in the file
    damaged: list[tuple[int, int]] = field(default_factory=list)
    unverified: int = 0
    recorded: int = 0  # rows [0, recorded) have checksums

    def describe(self) -> str:
        spans = ", ".join(f"{a}-{b - 1}" for a, b in self.damaged[:3]) + (" ..." if len(self.damaged) > 3 else "")
        return f"{self.array}: rows {spans} damaged"


Records = dict[int, tuple[int, int]]  # chunk -> (rows, crc) as the catalog recorded them


@dataclass(frozen=True)
class ArrayFile:
    """One array file: rows of ``width`` items of ``dtype``, one row per slot."""

    path: Path
    dtype: np.dtype
    width: int

    @property
    def rowbytes(self) -> int:
        return self.width * np.dtype(self.dtype).itemsize

    @property
    def key(self) -> str:
        """The array's name in the checksum records: its path in the library."""
        return f"{self.path.parent.name}/{self.path.name}"

    def rows(self) -> int:
        """Whole rows the file holds (0 if it does not exist)."""
        return row_count(self.path, self.rowbytes)

    def read(self, rows: int | None = None, *, random_access: bool = False) -> np.ndarray:
        """The first ``rows`` rows (all by default), mapped read-only."""
        return read_rows(self.path, self.dtype, self.width, rows, random_access=random_access)

    def read_row(self, row: int) -> np.ndarray:
        return read_row(self.path, row, self.dtype, self.width)

    def read_bytes(self, start: int, stop: int) -> bytes:
        return read_bytes(self.path, self.rowbytes, start, stop)

    def write(self, first_row: int, rows: np.ndarray) -> None:
        """Rows written in place from ``first_row`` and flushed (see write_rows)."""
        write_rows(self.path, first_row, np.ascontiguousarray(rows))

    def write_whole(self, array: np.ndarray) -> None:
        """The whole file replaced atomically by ``array``."""
        write_atomic(self.path, array)

    def truncate(self, rows: int) -> None:
        truncate_rows(self.path, self.rowbytes, rows)

    def create_empty(self) -> None:
        create_empty(self.path)

    # ------------------------------------------------------------ checksums

    def sums_for_write(self, first_row: int, rows: np.ndarray, records: Records) -> list[ChunkSum]:
        """The checksums of the chunks that writing ``rows`` at ``first_row`` touched.

        An append continues its chunk's recorded CRC from the new rows alone; rows before it
        that no checksum covered (an old array) are read back. ``records`` holds the recorded
        sums from ``first_row``'s chunk on (empty for a whole array just written).
        """
        rows = np.ascontiguousarray(rows)
        count = rows.shape[0]
        if count == 0:
            return []
        rowbytes = rows.shape[1] * rows.itemsize
        data = memoryview(rows).cast("B")
        size = CHUNK_ROWS
        sums = []
        for chunk in range(first_row // size, (first_row + count - 1) // size + 1):
            start = chunk * size
            begin, end = max(first_row, start), min(first_row + count, start + size)
            new = data[(begin - first_row) * rowbytes:(end - first_row) * rowbytes]
            recorded = records.get(chunk)
            if begin == start:
                value = crc(new)
            elif recorded is not None and start + recorded[0] == begin:
                value = crc(new, recorded[1])
            else:
                value = crc(new, crc(read_bytes(self.path, rowbytes, start, begin)))
            covered = end
            if recorded is not None and start + recorded[0] > end:  # rewrote the front of a longer chunk
                covered = start + recorded[0]
                value = crc(read_bytes(self.path, rowbytes, end, covered), value)
            sums.append(ChunkSum(self.key, chunk, covered - start, value))
        return sums

    def check(self, records: Records, start: int = 0, stop: int | None = None) -> ArrayCheck:
        """Check the chunks that hold rows [start, stop) against ``records`` (from start's chunk on).

        ``stop`` defaults to the end of what the file holds or the records cover. Rows in the
        range that no checksum covers are counted as unverified; recorded rows that the file
        no longer holds, or whose bytes differ, as damaged.
        """
        rowbytes = self.rowbytes
        have = self.rows()
        size = CHUNK_ROWS
        first_chunk = start // size
        records = {chunk: value for chunk, value in records.items()
                   if chunk >= first_chunk and (stop is None or chunk * size < stop)}
        recorded_end = max((chunk * size + n for chunk, (n, _) in records.items()), default=0)
        end = max(have, recorded_end) if stop is None else stop
        check = ArrayCheck(self.key, have, recorded=recorded_end)
        mapped = min(have, recorded_end)
        mapping = map_file(self.path, mapped * rowbytes) if mapped > first_chunk * size else None
        view = memoryview(mapping) if mapping is not None else None
        try:
            for chunk, (count, value) in records.items():
                first = chunk * size
                if first + count > have or crc(view[first * rowbytes:(first + count) * rowbytes]) != value:
                    if check.damaged and check.damaged[-1][1] == first:
                        check.damaged[-1] = (check.damaged[-1][0], first + count)
                    else:
                        check.damaged.append((first, first + count))
            for chunk in range(first_chunk, (end + size - 1) // size):
                in_chunk = min(size, end - chunk * size)
                check.unverified += max(0, in_chunk - records.get(chunk, (0, 0))[0])
        finally:
            if view is not None:
                view.release()
            if mapping is not None:
                mapping.close()
        return check

    def unrecorded_sums(self, records: Records, rows: int) -> tuple[list[ChunkSum], int]:
        """Checksums for rows below ``rows`` that ``records`` does not cover yet, as the file
        holds them, and how many rows they add. A chunk whose recorded part no longer
        matches is left alone: that is damage."""
        have = min(self.rows(), rows)
        size = CHUNK_ROWS
        sums = []
        adopted = 0
        for chunk in range(0, (have + size - 1) // size):
            start = chunk * size
            in_chunk = min(size, have - start)
            count, value = records.get(chunk, (0, 0))
            if count >= in_chunk:
                continue
            if count and crc(self.read_bytes(start, start + count)) != value:
                continue
            rest = self.read_bytes(start + count, start + in_chunk)
            sums.append(ChunkSum(self.key, chunk, in_chunk, crc(rest, value if count else 0)))
            adopted += in_chunk - count
        return sums, adopted


@dataclass(frozen=True)
class ModelArrays:
    """A model version's arrays: its codes (packed uint64 words per slot) and its backbone's
    features (float16 per slot, shared by the versions of one backbone).

    Writes go features first, then codes, each flushed: a code row on disk always has its
    feature row, so coverage (and a resumed re-encoding) can trust the codes' length.
    """

    codes: ArrayFile
    features: ArrayFile

    def coverage(self) -> int:
        """Slots both arrays hold a row for."""
        return min(self.codes.rows(), self.features.rows())

    def covers(self, slots: int) -> bool:
        return self.codes.rows() >= slots and self.features.rows() >= slots

    def append(self, first_row: int, *, features: np.ndarray | None = None,
               codes: np.ndarray | None = None) -> None:
        """Rows written at ``first_row``: features flushed before codes (see the class)."""
        if features is not None:
            self.features.write(first_row, features)
        if codes is not None:
            self.codes.write(first_row, codes)

    def cut_to_resume(self, need: int) -> tuple[int, int]:
        """(feature rows, code rows) kept for an encoding of slots [0, need) to resume from:
        rows past ``need`` and codes past the features are cut off."""
        have_features = min(self.features.rows(), need)
        have_codes = min(self.codes.rows(), have_features)
        self.codes.truncate(have_codes)
        self.features.truncate(have_features)
        return have_features, have_codes
