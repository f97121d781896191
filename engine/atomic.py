"""Durable file writes: a temporary file in the same folder, flushed, renamed over the target, folder synced."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from engine.errors import environment_problem

# Windows cannot open a folder to sync it; NTFS journals its renames itself.
_CAN_SYNC_DIRS = os.name != "nt"


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a new, renamed or removed name in it) to disk."""
    if not _CAN_SYNC_DIRS:
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str | os.PathLike) -> None:
    """``mkdir -p`` whose new folders survive a crash: each parent is synced after its new child."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        fsync_dir(folder.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, sync: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file; on success it replaces ``path`` whole, on error nothing changes.

    Readers (and a crash) see the old file or the new one, never half of either. With
    ``sync`` (the default) the data and then the folder entry are on disk when this returns,
    so a commit that follows may point at the file; ``sync=False`` is for caches only.
    An OSError (a full disk...) becomes the matching EnvironmentProblem.
    """
    with atomic_path(path, sync=sync) as tmp:
        try:
            with open(tmp, "wb") as handle:
                yield handle
        except OSError as exc:
            raise environment_problem(exc, f"write {path}") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, sync: bool = True) -> Iterator[Path]:
    """``atomic_write`` for a writer that wants a file name, not a file (torch.onnx.export,
    np.save...): yield a temporary name beside ``path`` ending in its suffix; on success that
    file replaces ``path`` whole (synced with ``sync``), on error it is removed."""
    path = Path(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        tmp = None
        if sync:
            fsync_dir(path.parent)
    except OSError as exc:
        raise environment_problem(exc, f"write {path}") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def publish_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a fully written folder into place (``target`` must not exist), then sync its
    parent, so a catalog row committed next may point at it. OSErrors are the caller's to type."""
    os.replace(staging, target)
    fsync_dir(Path(target).parent)


def write_bytes(path: str | os.PathLike, data: bytes, *, sync: bool = True) -> None:
    with atomic_write(path, sync=sync) as handle:
        handle.write(data)


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically (manifests, reports)."""
    write_bytes(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def copy_folder_synced(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a folder of plain files (a model version) to ``target`` (which must not exist),
    every file and folder synced, so that renaming ``target`` into place and then committing
    a catalog row that points at it is safe against a crash. On error ``target`` is removed."""
    source, target = Path(source), Path(target)
    try:
        target.mkdir()
        for entry in sorted(source.iterdir()):
            destination = target / entry.name
            if entry.is_dir():
                copy_folder_synced(entry, destination)
                continue
            with open(entry, "rb") as src, open(destination, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
        fsync_dir(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
