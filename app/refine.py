"""The window's query as the person refines it: photos, results marked similar or dissimilar, and their examples.

A :class:`WindowQuery` is what the window asks the search worker for; :class:`QueryExamples`
(owned by the worker, in its thread) turns it into engine.library's Query, reading each photo's
code and feature once: a mark re-runs the query at once, and only the newly marked photo's
stored arrays are new work (a result tile is an indexed photo: no decoding).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QImage

SIMILAR, DISSIMILAR = 1, -1  # as app.labeling and engine labels have them


@dataclass(frozen=True)
class WindowQuery:
    """Query photos (file paths, or pasted pixels) and the results marked similar (``like``)
    and dissimilar (``unlike``), in the order they were marked."""

    photos: tuple
    like: tuple[str, ...] = ()
    unlike: tuple[str, ...] = ()

    @classmethod
    def of(cls, photos, marks: dict[str, int] | None = None) -> "WindowQuery":
        """From the window's photos (one or several) and its marks (path -> SIMILAR/DISSIMILAR)."""
        photos = tuple(photos) if isinstance(photos, (list, tuple)) else (photos,)
        marks = marks or {}
        return cls(photos, tuple(p for p, m in marks.items() if m == SIMILAR),
                   tuple(p for p, m in marks.items() if m == DISSIMILAR))

    @property
    def first_path(self) -> str | None:
        return next((p for p in self.photos if isinstance(p, str)), None)


def refinement_text(marks: dict[str, int]) -> str:
    """"Refined by 2 similar, 1 dissimilar" (the parts there are)."""
    similar = sum(1 for m in marks.values() if m == SIMILAR)
    dissimilar = len(marks) - similar
    parts = [f"{similar} similar"] * bool(similar) + [f"{dissimilar} dissimilar"] * bool(dissimilar)
    return "Refined by " + ", ".join(parts) if parts else ""


class QueryExamples:
    """Examples (engine.library.Example) of the photos in window queries, kept while the
    active version and the library's slots stay the same. Lives in the search worker's thread."""

    MAX = 512  # entries kept: marks and query photos of a session

    def __init__(self):
        self._cache: dict[tuple, object] = {}
        self._state: tuple | None = None

    def search(self, library, query: WindowQuery, params, *, folder=None,
               image_path: Callable[[QImage], str] | None = None) -> list:
        """``library.search_query`` of the query: hits, best first (what `lookalike search`
        gives for the same photos, --like and --unlike, and --together for several)."""
        from engine.library import Query

        state = (library.active_model().id, library.store.next_slot)
        if state != self._state or len(self._cache) > self.MAX:
            self._cache.clear()
            self._state = state
        photos = tuple(self._photo(library, photo, image_path) for photo in query.photos)
        like = tuple(self._result(library, path) for path in query.like)
        unlike = tuple(self._result(library, path) for path in query.unlike)
        return library.search_query(Query(photos, like, unlike), params, folder=folder)

    def _photo(self, library, photo, image_path):
        if isinstance(photo, QImage):
            key = ("image", photo.cacheKey())
            if key not in self._cache:
                self._cache[key] = library.example_from_file(image_path(photo))
            return self._cache[key]
        key = ("file", os.fspath(photo), *_stamp(photo))
        if key not in self._cache:
            self._cache[key] = library.example_from_file(photo)  # as the CLI reads a query photo
        return self._cache[key]

    def _result(self, library, path: str):
        """A marked result: the indexed photo's stored arrays (no file read, no decoding)."""
        key = ("result", path, *_stamp(path))
        if key not in self._cache:
            row = library.store.image_by_path(path)
            if row is not None and row.slot is not None and row.slot < library.store.next_slot:
                self._cache[key] = library.example_from_slot(row.slot)
            else:
                self._cache[key] = library.example_from_file(path)
        return self._cache[key]


def _stamp(path) -> tuple:
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return (None, None)
