"""Where a library keeps its per-photo files (thumbnails), named from the catalog's content hashes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import UnsafeLibrary

_HASH = re.compile(r"[0-9a-f]{32}")  # engine.imageio.content_hash: 32 hex digits


def thumbnail_path(thumbs_dir: str | os.PathLike, content_hash: str) -> Path:
    """Where a photo's thumbnail is cached; the hash comes from the catalog, so it is checked
    to be one (a crafted library must not name a file elsewhere)."""
    if not isinstance(content_hash, str) or not _HASH.fullmatch(content_hash):
        raise UnsafeLibrary(f"{str(content_hash)[:80]!r} is not a content hash; was the library tampered with?")
    return Path(thumbs_dir) / content_hash[:2] / f"{content_hash}.jpg"
