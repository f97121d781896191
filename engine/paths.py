"""Where a library lives by default: cheap to import (no numpy), so the window can ask before anything loads."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

LIBRARY_ENV = "LOOKALIKE_LIBRARY"


def default_library_path() -> Path:
    """``$LOOKALIKE_LIBRARY``, else a folder under the platform's user data directory."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("lookalike", appauthor=False)) / "library"


def display_path(path: str | os.PathLike) -> str:
    """A path as text for people to read: bytes of the name that are not UTF-8 (an old archive's
    Latin-1 names, which Python carries as lone surrogates) shown as U+FFFD. Only for showing:
    the file is opened, revealed and copied by its real name."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "replace")


def file_url(path: str | os.PathLike) -> str:
    """The file:// URL of a path, its exact bytes percent-encoded (lossless for any name)."""
    return Path(os.path.abspath(path)).as_uri()
