"""Advisory file locks (flock): the library's one-writer lock and the owner lock of a scratch folder.

The OS drops a lock when its holder dies, so a killed process never leaves one behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine import arrays

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer is the documented rule there
    fcntl = None
HAVE_FLOCK = fcntl is not None


def try_flock(path: Path):
    """An open handle holding an exclusive advisory lock on ``path``, or None when another
    process holds it. The OS drops the lock when the holder dies. Never through a link."""
    handle = os.fdopen(arrays.open_safely(path, os.O_RDWR | os.O_CREAT, "lock"), "r+b")
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def is_locked(path: Path) -> bool:
    """Whether some process holds the lock on ``path`` now (a shared probe: works read-only)."""
    if fcntl is None:
        return False
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return False  # nobody ever wrote here
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
