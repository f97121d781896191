"""Where a library lives by default: cheap to import (no numpy), so the window can ask before anything loads."""

from __future__ import annotations

import os
from pathlib import Path

LIBRARY_ENV = "LOOKALIKE_LIBRARY"


def default_library_path() -> Path:
    """``$LOOKALIKE_LIBRARY``, else a folder under the platform's user data directory."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("lookalike", appauthor=False)) / "library"
