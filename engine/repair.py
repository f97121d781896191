"""Find damage (arrays against their checksums; the catalog's own check on request) and mend the arrays by encoding again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine import arrays, models
from engine.codes import codes_from_logits
from engine.errors import Cancelled, LibraryDamaged
from engine.reencode import EncodeProgress, SlotEncoder, encode_missing
from engine.store import ArrayCheck, ModelRow, Store

log = logging.getLogger(__name__)

INTEGRITY_LINES = 20  # integrity_check messages kept: enough to see what is wrong


@dataclass
class LibraryCheck:
    """What checking a library found."""

    arrays: list[ArrayCheck] = field(default_factory=list)
    missing: dict[int, int] = field(default_factory=dict)  # active version id -> photos its arrays lack
    catalog: list[str] | None = None  # integrity_check's messages (["ok"] when sound); None: not run

    @property
    def damaged(self) -> list[ArrayCheck]:
        return [a for a in self.arrays if a.damaged]

    @property
    def unverified(self) -> int:
        return sum(a.unverified for a in self.arrays)

    @property
    def catalog_ok(self) -> bool:
        return self.catalog is None or self.catalog == ["ok"]

    @property
    def sound(self) -> bool:
        return not self.damaged and not self.missing and self.catalog_ok

    def problems(self) -> list[str]:
        """One line per problem, for the person."""
        lines = [a.describe() for a in self.damaged]
        lines += [f"model v{v}: its arrays lack {n} photos" for v, n in self.missing.items()]
        if not self.catalog_ok:
            lines += [f"catalog: {message}" for message in self.catalog]
        return lines


def check_library(store: Store, *, features: bool = True, catalog: bool = False) -> LibraryCheck:
    """Check every version's codes (and, with ``features``, every backbone's features) against
    their checksums, and whether the active version covers every photo. ``catalog``: also
    run SQLite's integrity_check (reads the whole catalog)."""
    found = LibraryCheck()
    need = store.next_slot
    seen_features = set()
    for model in store.models():
        model_arrays = store.arrays_of(model)
        found.arrays.append(store.verify_array(model_arrays.codes))
        if features and model_arrays.features.path not in seen_features:
            seen_features.add(model_arrays.features.path)
            found.arrays.append(store.verify_array(model_arrays.features))
        if model.active and not model_arrays.covers(need):
            found.missing[model.id] = need - model_arrays.coverage()
    if catalog:
        found.catalog = integrity_check(store)
    return found


def integrity_check(store: Store) -> list[str]:
    """SQLite's integrity_check of the catalog: ["ok"], or what is wrong (the first lines)."""
    try:
        return store.integrity_check(INTEGRITY_LINES)
    except LibraryDamaged as exc:  # so damaged that the check itself stops
        return [str(exc.__cause__ or exc)]


@dataclass
class RepairReport:
    """What a repair did."""

    reencoded: int = 0  # photos decoded and encoded again (damaged or missing features)
    recoded: int = 0  # code rows computed again from stored features
    adopted: int = 0  # rows that had no checksum and got one
    unreadable: int = 0  # photos that could not be read again (their rows are zero: they never match)
    still_damaged: list[str] = field(default_factory=list)


def repair_library(store: Store, *, workers: int | None = None,
                   progress: Callable[[EncodeProgress], None] | None = None,
                   cancel: threading.Event | None = None) -> RepairReport:
    """Mend every array against its checksums, then complete the active version.

    Damaged feature rows are encoded again from the originals (or their thumbnails, when an
    original changed or is gone) with a version of their backbone, and every version's codes
    on that backbone recomputed for those rows; damaged code rows are recomputed from the
    stored features. Rows that have no checksum yet (arrays older than checksums) get one,
    features only once they pass a sanity check (finite unit vectors, or zero rows).
    Resumable: each chunk is written, synced and its checksum committed before the next.
    """
    report = RepairReport()
    state = EncodeProgress()
    with store.writing():
        versions = store.models()
        by_backbone: dict[str, list[ModelRow]] = {}
        for model in versions:
            by_backbone.setdefault(model.backbone_id, []).append(model)
        active = store.active_model()
        for backbone, group in by_backbone.items():
            # Encode with the active version when it has this backbone, else the newest one.
            encoder_model = active if active is not None and active.backbone_id == backbone else group[-1]
            features_file = store.arrays_of(encoder_model).features
            check = store.verify_array(features_file)
            ranges = _by_chunk(list(check.damaged) + _implausible_unverified(store, features_file, check))
            if ranges:
                state.total += sum(b - a for a, b in ranges)
                with SlotEncoder(store, encoder_model, workers=workers) as encoder:
                    for start, stop in ranges:
                        if cancel is not None and cancel.is_set():
                            raise Cancelled(f"stopped after {state.done} of {state.total} photos; run again to continue")
                        stop = min(stop, store.next_slot)
                        if stop <= start:
                            continue
                        features, codes = encoder.encode(start, stop, state)
                        sums = store.write_rows(features_file, start, features)
                        with store.transaction():
                            store.record_sums(sums)
                        for model in group:
                            report.recoded += _write_codes(store, model, start, stop,
                                                           codes if model.id == encoder_model.id else None)
                        state.done += stop - start
                        report.reencoded += stop - start
                        if progress:
                            progress(state)
            report.adopted += store.adopt_rows(features_file, store.next_slot)
        for model in versions:
            codes_file = store.arrays_of(model).codes
            check = store.verify_array(codes_file)
            for start, stop in check.damaged:
                report.recoded += _write_codes(store, model, start, stop, None)
            report.adopted += store.adopt_rows(codes_file, store.next_slot)
        if active is not None:
            done = encode_missing(store, active, workers=workers, progress=progress, cancel=cancel)
            report.reencoded += done.done
            report.unreadable += done.unreadable
        report.unreadable += state.unreadable
        after = check_library(store)
        report.still_damaged = after.problems()
    return report


def _by_chunk(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Row ranges as whole chunks, in order, each once: a chunk is rewritten from its first row,
    so its checksum is computed afresh, and one write and one commit make one step."""
    size = arrays.CHUNK_ROWS
    stops: dict[int, int] = {}
    for start, stop in ranges:
        for chunk in range(start // size, (stop - 1) // size + 1):
            stops[chunk] = max(stops.get(chunk, 0), min(stop, (chunk + 1) * size))
    return [(chunk * size, stops[chunk]) for chunk in sorted(stops)]


def _write_codes(store: Store, model: ModelRow, start: int, stop: int, codes: np.ndarray | None) -> int:
    """Write a version's codes for slots [start, stop) (computed from the stored features when
    ``codes`` is None), as far as its code array reaches; returns the rows written."""
    model_arrays = store.arrays_of(model)
    stop = min(stop, model_arrays.codes.rows())
    if stop <= start:
        return 0
    if codes is None:
        weight, bias = models.read_head(store.model_dir(model.id))
        stored = model_arrays.features.read(stop)
        codes = codes_from_logits(models.head_logits(stored[start:stop], weight, bias))
        codes[~store.live_mask()[start:stop]] = 0
    sums = store.write_rows(model_arrays.codes, start, codes[:stop - start])
    with store.transaction():
        store.record_sums(sums)
    return stop - start


def _implausible_unverified(store: Store, features: arrays.ArrayFile, check: ArrayCheck) -> list[tuple[int, int]]:
    """Chunks holding rows that no checksum covers and that are not what an encoder writes
    (finite unit vectors, or zeros): those are encoded again rather than adopted."""
    if not check.unverified:
        return []
    need = min(store.next_slot, check.rows)
    records = store.chunk_sums(features.key)
    rows = features.read(need)
    bad = []
    size = arrays.CHUNK_ROWS
    for chunk in range((need + size - 1) // size):
        start = chunk * size + records.get(chunk, (0, 0))[0]
        stop = min(need, (chunk + 1) * size)
        if start >= stop:
            continue
        block = np.asarray(rows[start:stop], dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.einsum("ij,ij->i", block, block)
        plausible = np.isfinite(norms) & ((norms == 0) | (np.abs(norms - 1) < 0.02))
        if not plausible.all():
            bad.append((chunk * size, stop))
    if bad:
        log.warning("%d chunks of %s hold rows that are not unit features; encoding them again", len(bad), features.path.name)
    return bad

