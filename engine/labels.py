"""The person's labelled pairs: CSV import (all or nothing), class folders as pairs, and export."""

from __future__ import annotations

import csv
import errno
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import write_bytes
from engine.errors import DecodeError, EnvironmentProblem, UserError
from engine.imageio import IMAGE_SUFFIXES, content_hash, read_file
from engine.pairs import pair_key, pair_key_with
from engine.store import Store

SIMILAR = {"similar": 1, "1": 1, "+1": 1, "same": 1, "dissimilar": -1, "-1": -1, "different": -1}
HEADER = ("a", "b", "label")


@dataclass
class LabelImport:
    """What an import did, or would have done."""

    added: int = 0  # distinct pairs written
    problems: list[str] = field(default_factory=list)  # each with its line: any of them stops a CSV import
    problem_counts: Counter = field(default_factory=Counter)  # problems by kind (PROBLEM_KINDS)
    lines: int = 0  # pair lines read (a CSV import)
    new: int = 0  # pairs that had no label before
    replaced: int = 0  # pairs whose label in the library was the other one
    unchanged: int = 0  # pairs the library already had with this label
    duplicates: int = 0  # lines repeating a pair and label an earlier line gave
    conflicts: int = 0  # pairs given both labels in the file: the last line's label is kept


# Kinds of problem that stop a CSV import, as counts are worded (one, many).
PROBLEM_KINDS = {
    "fields": ("line without 3 fields", "lines without 3 fields"),
    "label": ("unknown label", "unknown labels"),
    "unknown": ("path that is not an indexed photo", "paths that are not indexed photos"),
    "self": ("pair of a photo with itself", "pairs of a photo with itself"),
}


def describe_problems(report: LabelImport) -> str:
    """'2 paths that are not indexed photos, 1 unknown label': a refused import in a few words."""
    return ", ".join(f"{n} {PROBLEM_KINDS[kind][n != 1]}" for kind, n in report.problem_counts.items() if n)


def _hash_for(store: Store, path: str) -> str | None:
    row = store.image_by_path(path)
    if row is None or row.status != "ok":
        return None
    return row.content_hash


def import_csv(store: Store, csv_path: str | os.PathLike, *, source: str = "import") -> LabelImport:
    """Import pairs from a CSV with header a,b,label; nothing is written if any row is bad.

    Paths are as indexed, or relative to the CSV's folder. Labels are similar/dissimilar
    or 1/-1. Every problem is reported with its line number, and counted by kind. A pair
    given more than once is imported once (the repeats are counted); a pair given both
    labels takes its last line's label, as labelling a pair again in the window does.
    """
    csv_path = Path(csv_path)
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        raise UserError(f"{csv_path}: {exc.strerror}") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{csv_path}: a UTF-16 file; save it as UTF-8")
    # UTF-8, except that a path may hold its file name's own bytes (not UTF-8: an old archive's
    # names): kept as Python keeps such names, so they match the catalog exactly.
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text))
    report = LabelImport()
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header[:3]) != HEADER:
        raise UserError(f"{csv_path}:1: the first line must be the header a,b,label")
    base = csv_path.parent.absolute()

    def problem(kind: str, text: str) -> None:
        report.problems.append(text)
        report.problem_counts[kind] += 1

    pairs: dict[tuple[str, str], tuple[int, str, str]] = {}  # canonical pair -> its last line's label
    seen: set[tuple[str, str, int]] = set()
    both_ways: set[tuple[str, str]] = set()
    for number, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        report.lines += 1
        if len(fields) != 3:
            problem("fields", f"line {number}: expected 3 fields, got {len(fields)}")
            continue
        a, b, label = (f.strip() for f in fields)
        value = SIMILAR.get(label.lower())
        if value is None:
            problem("label", f"line {number}: label {label!r} is not similar/dissimilar or 1/-1")
            continue
        hashes = []
        for path in (a, b):
            absolute = path if os.path.isabs(path) else os.path.normpath(base / path)
            digest = _hash_for(store, absolute)
            if digest is None:
                problem("unknown", f"line {number}: {path} is not an indexed photo")
            hashes.append((digest, absolute))
        if any(d is None for d, _ in hashes):
            continue
        (ha, pa), (hb, pb) = hashes
        if ha == hb:
            problem("self", f"line {number}: {a} and {b} are the same photo")
            continue
        ha, hb, pa, pb = pair_key_with(ha, hb, pa, pb)
        key = (ha, hb)
        if (ha, hb, value) in seen:
            report.duplicates += 1
        elif key in pairs:
            both_ways.add(key)
        seen.add((ha, hb, value))
        pairs.pop(key, None)  # re-inserted: the pair's place is its last line
        pairs[key] = (value, pa, pb)
    report.conflicts = len(both_ways)
    if report.problems:
        return report
    with store.transaction():
        for (ha, hb), (value, pa, pb) in pairs.items():
            before = store.label(ha, hb)
            if before is None:
                report.new += 1
            elif before.label == value:
                report.unchanged += 1
            else:
                report.replaced += 1
            store.add_label(ha, hb, value, source=source, path_a=pa, path_b=pb)
    report.added = len(pairs)
    return report


def import_class_folders(store: Store, folder: str | os.PathLike, *, per_photo: int = 4, seed: int = 0,
                         source: str = "folders") -> LabelImport:
    """Pairs from a folder of class folders: photos in one subfolder are similar, photos in
    different subfolders dissimilar.

    Every pair is implied, but a class of a thousand photos implies half a million of them;
    each photo instead gets ``per_photo`` similar and ``per_photo`` dissimilar partners (seeded),
    which covers every photo and every class. Subfolders may nest (a class is a top-level
    subfolder); hidden names are skipped. Only indexed photos count: files the index skipped
    or has not seen are left out and counted in ``problems``, which here do not block the import.
    """
    root = Path(folder).absolute()
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    classes: list[list[tuple[str, str]]] = []  # per class: (content hash, path) of indexed photos
    report = LabelImport()
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        members, missing = [], 0
        for dirpath, dirnames, filenames in os.walk(sub):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                    continue
                path = os.path.join(dirpath, name)
                digest = _hash_for(store, path)
                if digest is None:
                    missing += 1
                else:
                    members.append((digest, path))
        if missing:
            report.problems.append(f"{sub.name}: {missing} photo(s) not indexed, left out")
        if members:
            classes.append(members)
    if len(classes) < 2:
        raise UserError(f"{root} needs at least two subfolders (one per kind of photo) with indexed photos in them; "
                        f"found {len(classes)} (index the folder first)")
    rng = np.random.default_rng(seed)
    owner = np.concatenate([np.full(len(members), c) for c, members in enumerate(classes)])
    everyone = [item for members in classes for item in members]
    pairs: dict[tuple[str, str], tuple[int, str, str]] = {}
    for i, (digest, path) in enumerate(everyone):
        same = np.flatnonzero(owner == owner[i])
        other = np.flatnonzero(owner != owner[i])
        for pool, value in ((same[same != i], 1), (other, -1)):
            for j in rng.choice(pool, size=min(per_photo, len(pool)), replace=False):
                other_digest, other_path = everyone[int(j)]
                if other_digest == digest:
                    continue  # the same content twice: no pair to learn from
                key = pair_key(digest, other_digest)
                pairs.setdefault(key, (value, path, other_path))
    with store.transaction():
        for (ha, hb), (value, pa, pb) in pairs.items():
            store.add_label(ha, hb, value, source=source, path_a=pa, path_b=pb)
    report.added = len(pairs)
    return report


def export_csv(store: Store, out) -> int:
    """Write every label as a,b,label (current paths where the photo is still indexed)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for hash_a, hash_b, label, _source, path_a, path_b, _created in store.labels():
        current_a = store.path_for_hash(hash_a) or path_a
        current_b = store.path_for_hash(hash_b) or path_b
        writer.writerow((current_a, current_b, "similar" if label == 1 else "dissimilar"))
        count += 1
    return count


def export_csv_file(store: Store, path: str | os.PathLike) -> int:
    """:func:`export_csv` to a file, written atomically (a failed export leaves the old file)."""
    out = io.StringIO()
    count = export_csv(store, out)
    try:
        # A name that is not UTF-8 is written as its own bytes, as import_csv reads it.
        write_bytes(path, out.getvalue().encode("utf-8", "surrogateescape"))
    except EnvironmentProblem as exc:
        # A full or failing disk is the machine's; a missing folder or a forbidden one, the person's choice.
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise UserError(f"cannot write {path}: {cause.strerror or cause}") from cause
        raise
    return count


def photo_hash(store: Store, path: str | os.PathLike) -> tuple[str, bool]:
    """A photo file's content hash (the key labels use) and whether that content is indexed.

    An indexed file that has not changed since gives its stored hash; any other file is read
    and hashed exactly as the indexer does, so a label on it counts once it is indexed.
    """
    path = os.path.abspath(path)
    row = store.image_by_path(path)
    if row is not None and row.status == "ok" and row.content_hash:
        try:
            stat = os.stat(path)
        except OSError:
            stat = None
        if stat is not None and (stat.st_size, stat.st_mtime_ns) == (row.size, row.mtime_ns):
            return row.content_hash, True
    try:
        digest = content_hash(read_file(path))
    except DecodeError as exc:
        raise UserError(f"{path}: {exc.reason}") from exc
    return digest, bool(store.slots_for_hashes([digest]))
