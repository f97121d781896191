"""Scratch folders inside a library (new model versions before they are added), and sweeping those a killed process left."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from engine.locks import HAVE_FLOCK, try_flock

log = logging.getLogger("engine.store")  # its messages read as the store's, as before the split

WORK_PREFIX = ".work-"  # scratch folders in the library (new model versions before they are added)


@contextlib.contextmanager
def work_dir(root: Path) -> Iterator[Path]:
    """A scratch folder inside the library at ``root`` (same file system: its files can be
    renamed in), removed on exit; one left by a killed process is swept by ``sweep``."""
    with tempfile.TemporaryDirectory(dir=root, prefix=WORK_PREFIX) as tmp:
        owner = try_flock(Path(tmp) / "owner.lock")  # held while in use: the sweep skips it
        try:
            yield Path(tmp)
        finally:
            if owner is not None:
                owner.close()


def sweep(root: Path) -> None:
    """Remove the scratch folders no live process holds, and model installs that never finished."""
    for folder in root.glob(WORK_PREFIX + "*"):
        if folder.is_symlink():
            folder.unlink()  # not ours: the link goes, never what it points at
            continue
        if not folder.is_dir():
            continue
        if not HAVE_FLOCK and time.time() - folder.stat().st_mtime < 86400:
            continue  # without flock, only an old folder is surely abandoned
        owner = try_flock(folder / "owner.lock")
        if owner is None:
            continue  # still in use by a live process (or not ours to touch)
        owner.close()
        log.info("removing %s, left by an interrupted job", folder)
        shutil.rmtree(folder, ignore_errors=True)
    models = root / "models"
    if models.is_dir():
        for staging in models.glob("*.tmp"):
            log.info("removing %s, left by an interrupted model install", staging)
            remove_path(staging)


def remove_path(path: Path) -> None:
    """Remove a file, a link (never what it points at) or a folder tree, if there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
