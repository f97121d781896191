"""Where the window has been: Back/Forward through searches, and the recent query photos File lists (no Qt)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

BACK_LIMIT = 100  # searches Back can return to: a session's worth, and the pasted pixels among them stay small
RECENT_LIMIT = 10  # query photos under File > Recent queries


@dataclass
class Visit:
    """One search: its query (a path, pasted pixels, or a tuple of several) and the marks that
    refined it, kept so Back returns to the results as they were left."""

    query: object
    marks: dict[str, int] = field(default_factory=dict)


def same_query(a: object, b: object) -> bool:
    """Two queries are the same search: equal paths (or tuples of paths); pasted pixels only
    when they are the very same object (comparing images pixel by pixel is not worth it)."""
    if isinstance(a, str) and isinstance(b, str):
        return os.path.abspath(a) == os.path.abspath(b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_query(x, y) for x, y in zip(a, b))
    return a is b


class History:
    """Back/Forward as a browser has them: a new search drops what Forward held."""

    def __init__(self, limit: int = BACK_LIMIT):
        self.limit = limit
        self._visits: list[Visit] = []
        self._at = -1  # index of the search on show; -1: none yet

    def visit(self, query: object) -> None:
        """A new search for ``query`` is on show (searching the one on show again changes nothing)."""
        if self.current is not None and same_query(self.current.query, query):
            return
        del self._visits[self._at + 1:]
        self._visits.append(Visit(query))
        if len(self._visits) > self.limit:
            del self._visits[0]
        self._at = len(self._visits) - 1

    @property
    def current(self) -> Visit | None:
        return self._visits[self._at] if self._at >= 0 else None

    def keep_marks(self, marks: dict[str, int]) -> None:
        """The marks of the search on show, for when Back or Forward comes to it again."""
        if self.current is not None:
            self.current.marks = dict(marks)

    def can_go_back(self) -> bool:
        return self._at > 0

    def can_go_forward(self) -> bool:
        return self._at < len(self._visits) - 1

    def back(self) -> Visit | None:
        """The search before the one on show (it becomes the one on show), or None."""
        if not self.can_go_back():
            return None
        self._at -= 1
        return self._visits[self._at]

    def forward(self) -> Visit | None:
        if not self.can_go_forward():
            return None
        self._at += 1
        return self._visits[self._at]

    def __len__(self) -> int:
        return len(self._visits)


class RecentQueries:
    """The query photos searched lately, newest first; each entry is a tuple of paths (several
    searched together are one entry). Pasted pixels are no file and are not kept."""

    def __init__(self, entries: Iterable[tuple[str, ...]] = (), limit: int = RECENT_LIMIT):
        self.limit = limit
        self._entries: list[tuple[str, ...]] = []
        for entry in reversed(list(entries)):
            self.add(entry)

    @staticmethod
    def entry_of(query: object) -> tuple[str, ...] | None:
        """The query as an entry: its paths, or None when any part of it is pasted pixels."""
        photos = query if isinstance(query, tuple) else (query,)
        if not photos or not all(isinstance(p, str) for p in photos):
            return None
        return tuple(os.path.abspath(p) for p in photos)

    def add(self, query: object) -> None:
        entry = self.entry_of(query)
        if entry is None:
            return
        self._entries = [entry] + [e for e in self._entries if e != entry]
        del self._entries[self.limit:]

    def discard(self, query: object) -> None:
        """Forget ``query`` (a search for it failed: it is no query to come back to)."""
        entry = self.entry_of(query)
        self._entries = [e for e in self._entries if e != entry]

    def entries(self, exists: Callable[[str], bool] | None = None) -> list[tuple[str, ...]]:
        """Newest first; with ``exists``, only the entries whose photos all still exist."""
        return [e for e in self._entries if exists is None or all(exists(p) for p in e)]

    def clear(self) -> None:
        self._entries = []

    # Kept as JSON text: a path that is not UTF-8 keeps its bytes as surrogate escapes, which
    # JSON writes as \udcXX and reads back, where a settings file's own lists would not.
    def dumps(self) -> str:
        return json.dumps([list(entry) for entry in self._entries])

    @classmethod
    def loads(cls, text: object, limit: int = RECENT_LIMIT) -> "RecentQueries":
        """From :meth:`dumps`' text; anything unreadable is an empty list (a settings file is
        the person's to edit, a bad one must not stop the window)."""
        try:
            data = json.loads(str(text or "[]"))
        except ValueError:
            data = []
        entries = []
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, list) and entry and all(isinstance(p, str) for p in entry):
                entries.append(tuple(entry))
        return cls(entries, limit=limit)
