"""Act on photos: move to the system trash, move or copy to a folder, undo; the library follows at once.

Never a hard delete: photos go to the system trash (send2trash) or are renamed. Every action
is written to an undo journal in the library folder (``undo.json``, replaced atomically by
engine.atomic), newest last, the last MAX_JOURNAL kept:

- a move is undone by moving each file back (when its old place is free);
- a copy is undone by sending the copies to the trash;
- a trash is undone by moving each file back out of the freedesktop trash (Linux: the
  ``files/`` entry whose ``info/*.trashinfo`` names the original path, found right after
  send2trash put it there); where the platform's trash keeps no restore information the
  journal says so, and ``trash_restorable()`` lets the caller say it before trashing.

The library follows: a trashed or moved-away photo leaves the catalog in the same call
(Store.forget_paths); a photo moved or copied under one of the library's folders is
catalogued there by Indexer.update, which finds its content already encoded (no decoding).
Labels are keyed by content hash, so they survive every move.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from engine.atomic import write_json_atomic
from engine.errors import UnsafeLibrary, UserError, environment_problem

JOURNAL = "undo.json"
MAX_JOURNAL = 200  # actions kept for undo


@dataclass
class ActionReport:
    """What an action or an undo did: (from, to) per file, and the files it could not handle, with why."""

    kind: str
    done: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    forgotten: int = 0  # catalog entries removed
    catalogued: int = 0  # files added to the catalog at their new place


def trash_restorable() -> bool:
    """Whether this platform's trash keeps what undo needs to put a file back (the freedesktop trash)."""
    return sys.platform.startswith("linux") or "bsd" in sys.platform


# ------------------------------------------------------------------------ the journal


def journal_path(library) -> Path:
    return Path(library.path) / JOURNAL


def read_journal(library) -> list[dict]:
    """The recorded actions, oldest first (empty when there are none)."""
    path = journal_path(library)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise UnsafeLibrary(f"{path} is a symbolic link; a Lookalike library never holds one there")
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise UnsafeLibrary(f"the undo journal {path} cannot be read ({exc}); move it away to go on") from exc
    actions = data.get("actions") if isinstance(data, dict) else None
    if not isinstance(actions, list):
        raise UnsafeLibrary(f"the undo journal {path} is not one Lookalike writes; move it away to go on")
    return actions


def _write_journal(library, actions: list[dict]) -> None:
    write_json_atomic(journal_path(library), {"format": 1, "actions": actions[-MAX_JOURNAL:]})


def _record(library, entry: dict) -> None:
    if entry["items"]:
        _write_journal(library, [*read_journal(library), entry])


# ----------------------------------------------------------------------------- actions


def existing_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths, every one an existing file (else the person's mistake, before anything moves)."""
    out = []
    for path in paths:
        absolute = os.path.abspath(os.fspath(path))
        if not os.path.isfile(absolute):
            raise UserError(f"{path}: no such file")
        if absolute not in out:
            out.append(absolute)
    return out


def total_size(paths: Iterable[str]) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p))


def size_text(count: int) -> str:
    """Bytes for a person: 1.2 MB, 340 KB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def trash(library, paths: Sequence[str | os.PathLike]) -> ActionReport:
    """Send files to the system trash and forget them in the catalog; journalled for undo.

    The caller confirms with the person first (count and total size)."""
    files = existing_files(paths)
    with library.store.writing():  # a read-only or busy library fails here, before any file moves
        read_journal(library)
        return _trash(library, files)


def _trash(library, files: list[str]) -> ActionReport:
    from send2trash import send2trash

    report = ActionReport("trash")
    items = []
    try:
        for path in files:
            before = _trash_entries(path)
            try:
                send2trash(path)
            except OSError as exc:
                report.failed.append((path, str(exc)))
                continue
            trashed = _find_trashed(path, before)
            items.append({"from": path, **(trashed or {})})
            report.done.append((path, trashed["file"] if trashed else ""))
    finally:
        _record(library, {"kind": "trash", "at": time.time(), "items": items})
        report.forgotten = _forget(library, [item["from"] for item in items])
    return report


def move(library, paths: Sequence[str | os.PathLike], folder: str | os.PathLike, *, copy: bool = False) -> ActionReport:
    """Move (or copy) files into ``folder``; a name already taken there gets " (1)", " (2)"...

    The catalog follows: moved files leave their old place in it, and files landing under
    one of the library's folders are catalogued there (their encoding reused)."""
    files = existing_files(paths)
    target_dir = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(target_dir):
        raise UserError(f"{folder}: no such folder")
    with library.store.writing():
        read_journal(library)
        return _move(library, files, target_dir, copy)


def _move(library, files: list[str], target_dir: str, copy: bool) -> ActionReport:
    report = ActionReport("copy" if copy else "move")
    items = []
    try:
        for path in files:
            if os.path.dirname(path) == target_dir and not copy:
                report.failed.append((path, "already in that folder"))
                continue
            target = _free_name(os.path.join(target_dir, os.path.basename(path)))
            try:
                if copy:
                    shutil.copy2(path, target)
                else:
                    _move_file(path, target)
            except OSError as exc:
                report.failed.append((path, str(exc)))
                continue
            items.append({"from": path, "to": target})
            report.done.append((path, target))
    finally:
        _record(library, {"kind": report.kind, "at": time.time(), "items": items})
        _follow(library, report, [i["to"] for i in items], [] if copy else [i["from"] for i in items])
    return report


def undo(library) -> ActionReport:
    """Reverse the newest recorded action (files whose old place is taken are left, with why)."""
    with library.store.writing():
        return _undo(library)


def _undo(library) -> ActionReport:
    actions = read_journal(library)
    if not actions:
        raise UserError("there is nothing to undo")
    entry = actions[-1]
    report = ActionReport(f"undo {entry.get('kind')}")
    back: list[str] = []
    left: list[dict] = []
    for item in entry.get("items", []):
        moved = _undo_item(entry.get("kind"), item)
        if isinstance(moved, tuple):
            report.done.append(moved)
            back.append(moved[1])
        else:
            report.failed.append((item.get("to") or item.get("from", "?"), moved))
            if isinstance(moved, _Retry):  # the person can clear the way and undo again
                left.append(item)
    remaining = actions[:-1] + ([{**entry, "items": left}] if left else [])
    _write_journal(library, remaining)
    if entry.get("kind") == "copy":  # the copies went to the trash: the catalog forgets them
        report.forgotten = _forget(library, [copy for copy, _ in report.done])
    else:
        gone = [source for source, _ in report.done] if entry.get("kind") == "move" else []
        _follow(library, report, back, gone)
    return report


class _Retry(str):
    """Why a file could not be put back, when undo may work later (its old place is taken)."""


def _undo_item(kind, item: dict) -> tuple[str, str] | str:
    """Put one file back: (where it was, where it is now), or why it could not be (a _Retry
    when undoing again may work; such items stay in the journal, the others leave it)."""
    if kind == "move":
        source, original = item["to"], item["from"]
        if not os.path.isfile(source):
            return "it is no longer where it was moved to"
        return _put_back(source, original) or (source, original)
    if kind == "copy":  # undone by sending the copy to the trash
        from send2trash import send2trash

        if not os.path.isfile(item["to"]):
            return "the copy is gone"
        try:
            send2trash(item["to"])
        except OSError as exc:
            return str(exc)
        return item["to"], ""
    if kind == "trash":
        original, trashed, info = item["from"], item.get("file"), item.get("info")
        if not trashed:
            return "the system trash keeps no restore information here: restore it from the trash"
        if not os.path.lexists(trashed):
            return "it is no longer in the trash (emptied, or restored already)"
        refused = _put_back(trashed, original)
        if refused:
            return refused
        if info:
            try:
                Path(info).unlink(missing_ok=True)  # the trash's note about the file, not the file
            except OSError as exc:
                return _Retry(str(exc))
        return trashed, original
    return f"unknown action {kind!r} in the journal"


def _put_back(source: str, original: str) -> "_Retry | None":
    """Move ``source`` back to ``original`` (its folder made again if need be); a _Retry when its
    place is taken or the move fails (undoing again may work), None when it is back."""
    if os.path.lexists(original):
        return _Retry(f"{original} exists again")
    try:
        os.makedirs(os.path.dirname(original), exist_ok=True)
        _move_file(source, original)
    except OSError as exc:
        return _Retry(str(exc))
    return None


def _move_file(source: str, target: str) -> None:
    """Rename, or copy then remove across file systems (shutil.move); never over an existing file."""
    if os.path.lexists(target):
        raise FileExistsError(f"{target} exists")
    shutil.move(source, target)


def _free_name(target: str) -> str:
    if not os.path.lexists(target):
        return target
    stem, suffix = os.path.splitext(target)
    n = 1
    while os.path.lexists(f"{stem} ({n}){suffix}"):
        n += 1
    return f"{stem} ({n}){suffix}"


# -------------------------------------------------------------------- the library follows


def _forget(library, paths: Sequence[str]) -> int:
    if not paths:
        return 0
    with library.store.writing():
        return library.store.forget_paths(list(paths))


def _follow(library, report: ActionReport, arrived: Sequence[str], left: Sequence[str]) -> None:
    """Catalog what arrived under the library's folders (encodings reused) and forget what left."""
    roots = [root for _, root in library.store.roots()]
    under = [p for p in arrived if any(_is_under(p, root) for root in roots)]
    if under and library.store.active_model() is not None:
        from engine.index import Indexer

        # New places first, then the old ones forgotten: the content is still catalogued
        # when the new place is indexed, so it is not decoded again.
        update = Indexer(library, workers=0).update([*under, *left])
        report.catalogued = update.added + update.reused
        report.forgotten += update.removed
    elif left:
        report.forgotten += _forget(library, left)


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# ------------------------------------------------------------------- the freedesktop trash


def _trash_dirs(path: str) -> list[Path]:
    """The trash folders a freedesktop trash may put ``path`` in: the home trash, then its volume's."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    dirs = [Path(data_home) / "Trash"]
    mount = _mount_point(path)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    dirs += [Path(mount) / ".Trash" / str(uid), Path(mount) / f".Trash-{uid}"]
    return dirs


def _trash_entries(path: str) -> set[Path]:
    """The trash's notes that may be about a file of this name: send2trash names them
    NAME.trashinfo, or "STEM N.EXT.trashinfo" when the name is taken (only those are listed,
    so trashing many files does not list the whole trash for each)."""
    import glob

    stem, suffix = os.path.splitext(os.path.basename(path))
    pattern = f"{glob.escape(stem)}*{glob.escape(suffix)}.trashinfo"
    entries = set()
    for trash_dir in _trash_dirs(path):
        info = trash_dir / "info"
        if info.is_dir():
            entries.update(info.glob(pattern))
    return entries


def _find_trashed(path: str, before: set[Path]) -> dict | None:
    """Where send2trash just put ``path``: the new .trashinfo naming it, and its files/ entry.
    A volume's trash names files relative to the volume's top folder, the home trash in full."""
    if not trash_restorable():
        return None
    mount = _mount_point(path)
    for info in sorted(_trash_entries(path) - before):
        named = _info_path(info)
        if named is None or (named if os.path.isabs(named) else os.path.join(mount, named)) != path:
            continue
        trashed = info.parent.parent / "files" / info.name[: -len(".trashinfo")]
        if os.path.lexists(trashed):
            return {"file": str(trashed), "info": str(info)}
    return None


def _mount_point(path: str) -> str:
    mount = os.path.realpath(os.path.dirname(path))
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    return mount


def _info_path(info: Path) -> str | None:
    try:
        for line in info.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            if line.startswith("Path="):
                return os.fsdecode(unquote_to_bytes(line[5:].strip()))
    except OSError as exc:
        raise environment_problem(exc, f"read {info}") from exc
    return None
