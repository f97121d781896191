"""Pairs worth labelling: where the active model is least sure, and from the person's recent searches.

A label teaches the most where the model's call could go either way. The model calls a pair
similar when the Hamming distance of its codes is small, so "least sure" means: the distance
is near the *boundary*, the distance at which its call flips.

- With labels (at least one similar and one dissimilar pair of indexed photos), the boundary is
  where the person's own pairs say it is: :func:`pair_threshold` picks t so that "similar iff
  distance <= t" is right on as many labelled pairs as possible (the smallest such t, the rule
  trainer/library_train.pair_accuracy uses, so the trainer could call this function), and the
  boundary is the middle of the run of equally good thresholds from t up, plus one half: with
  similar pairs at 3-5 and dissimilar ones at 20-25 every t in 5..19 is perfect, and the pairs
  the labels say least about are those near 12.5, not those near 5.
- Without labels, the boundary is the median, over sampled photos, of the distance to each
  one's 10th nearest neighbour. A search shows the nearest photos first, so the open question
  is whether the photos at the edge of a typical top ten are lookalikes. It follows the code
  length and how dense the library is by itself, where a fixed bits/4 would be far too wide
  for a dense library coded by ITQ and too tight for a sparse one coded by LSH.

Uncertain pairs come from a seeded sample of live photos (anchors): each anchor's distance to
every live code (engine.search.hamming_distances), then the few photos whose distance is
closest to the boundary. The number of anchors follows a fixed work budget (up to 2,000 in a
small library, about 150 at 100k photos x 64 bits, 40-70 ms of numpy on one core), so a call
stays fast at any size while a new seed gives new anchors for the next batch.

Every batch leaves out labelled pairs, a photo paired with itself or with a copy of itself
(same content hash), pairs the caller excludes (already shown this session), and puts no
photo in more than two pairs. Pairs come sorted by closeness to the boundary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import UserError
from engine.labels import photo_hash
from engine.pairs import pair_key
from engine.search import hamming_distances
from engine.store import Store

UNCERTAIN = "uncertain"
RECENT_SEARCH = "recent search"

MAX_PER_PHOTO = 2  # pairs a photo may appear in per batch
NEIGHBOUR_RANK = 10  # the default boundary: median distance to the 10th nearest neighbour
BOUNDARY_ANCHORS = 32  # anchors used to estimate that median
MIN_ANCHORS = 32
MAX_ANCHORS = 2000
WORK_BUDGET = 15_000_000  # code words compared per call, anchors x live photos x words
PER_ANCHOR = 4  # candidate partners kept per anchor
_LOOKUP_BLOCK = 256  # candidate pairs whose hashes are fetched at a time


@dataclass(frozen=True)
class PairSuggestion:
    """A pair to show the person. ``slot_a`` is None for a search query that is not indexed."""

    slot_a: int | None
    slot_b: int
    path_a: str
    path_b: str
    hash_a: str
    hash_b: str
    hamming: int
    reason: str  # UNCERTAIN or RECENT_SEARCH
    closeness: float  # |hamming - boundary|: 0 is where the model is least sure

    @property
    def key(self) -> tuple[str, str]:
        """The pair as labels key it: content hashes in canonical order."""
        return canonical(self.hash_a, self.hash_b)


@dataclass(frozen=True)
class Boundary:
    """The Hamming distance at which the model's similar/dissimilar call flips."""

    value: float
    source: str  # "labels" or "neighbours"
    threshold: int | None = None  # with labels: similar iff distance <= threshold
    labelled_pairs: int = 0  # labelled pairs of indexed photos it was chosen on


@dataclass(frozen=True)
class RecentSearch:
    """A search the person ran: the query's content hash and the result slots, best first."""

    query_hash: str
    query_path: str
    query_slot: int | None  # the query's live slot when it is an indexed photo
    results: tuple[tuple[int, int], ...]  # (slot, Hamming distance as the search measured it)


@dataclass
class Suggestions:
    """One batch of pairs, best first, and the boundary they were chosen around."""

    pairs: list[PairSuggestion]
    boundary: Boundary | None
    live: int  # live photos in the library
    labelled: int = 0  # labels in the library
    anchors: int = 0  # photos sampled for uncertain pairs
    notes: list[str] = field(default_factory=list)


canonical = pair_key  # the name this module's callers know


# ------------------------------------------------------------------ the boundary


def _accuracy_by_threshold(distances, similar, max_distance: int) -> np.ndarray:
    """Right calls of "similar iff distance <= t" for t = 0..max_distance (counts, not rates)."""
    d = np.clip(np.asarray(distances, dtype=np.int64), 0, max_distance)
    similar = np.asarray(similar, dtype=bool)
    similar_at_most = np.cumsum(np.bincount(d[similar], minlength=max_distance + 1))
    dissimilar_at_most = np.cumsum(np.bincount(d[~similar], minlength=max_distance + 1))
    return similar_at_most + (dissimilar_at_most[-1] - dissimilar_at_most)


def pair_threshold(distances, similar, max_distance: int) -> int:
    """The smallest t for which "similar iff distance <= t" is right on most labelled pairs.

    The rule trainer/library_train.pair_accuracy uses to choose t; 0 when there are no pairs.
    """
    if len(distances) == 0:
        return 0
    return int(np.argmax(_accuracy_by_threshold(distances, similar, max_distance)))


def label_boundary(distances, similar, max_distance: int) -> Boundary | None:
    """The boundary the person's labels draw, or None without both similar and dissimilar pairs."""
    similar = np.asarray(similar, dtype=bool)
    if not similar.any() or similar.all():
        return None
    right = _accuracy_by_threshold(distances, similar, max_distance)
    low = int(np.argmax(right))
    high = low
    while high + 1 <= max_distance and right[high + 1] == right[low]:
        high += 1
    return Boundary((low + high + 1) / 2, "labels", threshold=low, labelled_pairs=int(similar.size))


def neighbour_boundary(live_codes: np.ndarray, anchors: Sequence[int], rank: int = NEIGHBOUR_RANK) -> float:
    """Median over ``anchors`` (rows of ``live_codes``) of the distance to the rank-th nearest other row."""
    n = live_codes.shape[0]
    rank = max(1, min(rank, n - 1))
    kth = []
    for anchor in anchors:
        d = hamming_distances(live_codes, live_codes[anchor])
        # the anchor itself is one of the rows at distance 0, so look for the (rank+1)-th row
        at_most = np.cumsum(np.bincount(d))
        kth.append(int(np.searchsorted(at_most, rank + 1)))
    return float(np.median(kth))


def _labelled_distances(store: Store, codes: np.ndarray, live: np.ndarray):
    """Distances and labels of the labelled pairs whose photos are both indexed."""
    rows = store.labels()
    slot_of = store.slots_for_hashes({h for row in rows for h in row[:2]})
    pairs = []
    for hash_a, hash_b, label, *_ in rows:
        a, b = slot_of.get(hash_a), slot_of.get(hash_b)
        if a is not None and b is not None and a < len(codes) and b < len(codes) and live[a] and live[b]:
            pairs.append((a, b, label > 0))
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, bool), rows, slot_of
    a, b, similar = (np.array(column) for column in zip(*pairs))
    distances = np.bitwise_count(codes[a] ^ codes[b]).sum(axis=1)
    return distances, similar.astype(bool), rows, slot_of


# ------------------------------------------------------------------ candidates


def anchor_count(live: int, words: int) -> int:
    """Photos to sample for uncertain pairs: as many as the work budget allows, within bounds."""
    return int(min(live, MAX_ANCHORS, max(MIN_ANCHORS, WORK_BUDGET // max(1, live * words))))


def _taken_partners(store: Store, live_slots: np.ndarray, pairs: set[tuple[str, str]],
                    slot_of: dict[str, int]) -> dict[int, np.ndarray]:
    """Rows (into the live codes) each row is already paired with: labelled or excluded pairs.

    ``slot_of``: slots of hashes looked up already; the others are looked up here.
    """
    missing = {h for pair in pairs for h in pair} - slot_of.keys()
    if missing:
        slot_of = {**slot_of, **store.slots_for_hashes(missing)}
    known = [(slot_of[a], slot_of[b]) for a, b in pairs if a in slot_of and b in slot_of]
    if not known:
        return {}
    slots = np.array(known, dtype=np.int64)
    rows = np.minimum(np.searchsorted(live_slots, slots), live_slots.size - 1)
    alive = (live_slots[rows] == slots).all(axis=1)
    partners: dict[int, list[int]] = {}
    for ra, rb in rows[alive].tolist():
        partners.setdefault(ra, []).append(rb)
        partners.setdefault(rb, []).append(ra)
    return {row: np.array(found) for row, found in partners.items()}


def _uncertain_candidates(live_codes: np.ndarray, live_slots: np.ndarray, anchors: np.ndarray,
                          boundary: float, max_distance: int, rng: np.random.Generator,
                          taken: dict[int, np.ndarray] | None = None):
    """(slot_a, slot_b, distance) arrays: each anchor's partners nearest the boundary.

    ``taken``: partners to pass over (labelled or already shown), so that an anchor whose
    closest pairs are all labelled offers the next ones instead of nothing.
    """
    taken = taken or {}
    # windows around the boundary, widened only for anchors with no partner in the narrow one;
    # a partner further than a quarter of the code length from the boundary teaches little
    radii = (1.0, 3.0, max(3.0, max_distance / 4))
    out_a, out_b = [], []
    for anchor in anchors:
        d = hamming_distances(live_codes, live_codes[anchor])
        for radius in radii:
            rows = np.flatnonzero((d >= math.ceil(boundary - radius)) & (d <= math.floor(boundary + radius)))
            rows = rows[rows != anchor]
            if int(anchor) in taken:
                rows = rows[~np.isin(rows, taken[int(anchor)])]
            if rows.size:
                break
        if rows.size > PER_ANCHOR:
            # nearest the boundary first; closeness levels are at least 1 apart (the boundary is
            # a whole or half number), so a random fraction under 1/2 orders within a level only
            key = np.abs(d[rows] - boundary) + 0.5 * rng.random(rows.size)
            rows = rows[np.argpartition(key, PER_ANCHOR - 1)[:PER_ANCHOR]]
        out_a.append(np.full(rows.size, anchor))
        out_b.append(rows)
    a = np.concatenate(out_a) if out_a else np.zeros(0, np.int64)
    b = np.concatenate(out_b) if out_b else np.zeros(0, np.int64)
    # a pair found from both ends counts once
    low, high = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(low * live_codes.shape[0] + high, return_index=True)
    low, high = low[first], high[first]
    distances = np.bitwise_count(live_codes[low] ^ live_codes[high]).sum(axis=1).astype(np.int64)
    return live_slots[low], live_slots[high], distances


class _Picker:
    """Walks candidates best first and keeps those a batch may show."""

    def __init__(self, store: Store, labelled: set, exclude: set, count: int):
        self.store = store
        self.taken = set(labelled) | set(exclude)
        self.per_photo: dict[str, int] = {}
        self.count = count
        self.pairs: list[PairSuggestion] = []
        self._images: dict[int, tuple[str, str]] = {}

    def _fetch(self, slots: Iterable[int]) -> None:
        missing = {int(s) for s in slots if s is not None} - self._images.keys()
        if missing:
            self._images.update(self.store.images_for_slots(sorted(missing)))

    def offer(self, candidates: list[tuple], limit: int) -> None:
        """``candidates``: (closeness, slot_a, slot_b, distance, reason, known_a) best first;
        known_a is (hash, path) for a query that has no slot."""
        goal = min(self.count, len(self.pairs) + limit)
        for start in range(0, len(candidates), _LOOKUP_BLOCK):
            if len(self.pairs) >= goal:
                return
            block = candidates[start:start + _LOOKUP_BLOCK]
            self._fetch(s for c in block for s in c[1:3])
            for closeness, slot_a, slot_b, distance, reason, known_a in block:
                a = known_a or self._images.get(slot_a)
                b = self._images.get(slot_b)
                if a is None or b is None or a[0] is None or b[0] is None or a[0] == b[0]:
                    continue  # gone since, or the same content twice
                key = canonical(a[0], b[0])
                if key in self.taken:
                    continue
                if self.per_photo.get(a[0], 0) >= MAX_PER_PHOTO or self.per_photo.get(b[0], 0) >= MAX_PER_PHOTO:
                    continue
                self.taken.add(key)
                for digest in key:
                    self.per_photo[digest] = self.per_photo.get(digest, 0) + 1
                self.pairs.append(PairSuggestion(
                    None if slot_a is None else int(slot_a), int(slot_b), a[1], b[1], a[0], b[0],
                    int(distance), reason, float(closeness)))
                if len(self.pairs) >= goal:
                    return


# ------------------------------------------------------------------ suggestions


def suggest_pairs(store: Store, codes: np.ndarray, *, bits: int | None = None, count: int = 20,
                  recent: Sequence[RecentSearch] = (), exclude: Iterable[tuple[str, str]] = (),
                  seed: int = 0, recent_share: float = 0.5) -> Suggestions:
    """Up to ``count`` pairs to label, sorted by closeness to the boundary.

    ``codes``: the active model's packed codes, one row per slot (Library.codes()). Pairs from
    ``recent`` searches (most recent first) take up to ``recent_share`` of the batch; the rest
    are the model's uncertain pairs. ``exclude``: pairs (content hashes, any order) not to
    suggest, such as those already shown; labelled pairs are always left out. ``seed``
    chooses the sampled photos: pass a new one for each batch of a session.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint64:
        raise ValueError(f"codes must be a (N, W) uint64 array, not {codes.dtype} {codes.shape}")
    words = codes.shape[1]
    max_distance = int(bits) if bits else 64 * words
    live = store.live_mask()
    n = min(len(live), len(codes))
    live = live[:n]
    live_slots = np.flatnonzero(live)
    rng = np.random.default_rng(seed)

    distances, similar, label_rows, slot_of = _labelled_distances(store, codes, live)
    labelled = {canonical(row[0], row[1]) for row in label_rows}
    result = Suggestions([], None, live=int(live_slots.size), labelled=len(label_rows))
    if live_slots.size < 2 or count <= 0:
        return result
    live_codes = np.ascontiguousarray(codes[live_slots])
    anchors = rng.choice(live_slots.size, anchor_count(live_slots.size, words), replace=False)  # random order
    result.anchors = int(anchors.size)

    boundary = label_boundary(distances, similar, max_distance)
    if boundary is None:
        value = neighbour_boundary(live_codes, anchors[:BOUNDARY_ANCHORS])
        boundary = Boundary(value, "neighbours", labelled_pairs=int(similar.size))
        if similar.size:
            result.notes.append("the labels so far are all similar or all dissimilar: "
                                "the boundary comes from the photos' neighbours until there are both")
    result.boundary = boundary
    exclude = {canonical(*pair) for pair in exclude}
    picker = _Picker(store, labelled, exclude, count)

    # recent searches first: pairs the person has just looked at
    recent_candidates = []
    for age, search in enumerate(recent):
        query_slot = search.query_slot
        if query_slot is not None and not (0 <= query_slot < n and live[query_slot]):
            query_slot = None
        for rank, (slot, searched_distance) in enumerate(search.results):
            if not 0 <= slot < n or not live[slot]:
                continue  # no longer indexed
            if query_slot is not None:
                # measured with today's model, which may not be the one the search used
                distance = int(np.bitwise_count(codes[query_slot] ^ codes[slot]).sum())
            else:
                distance = int(searched_distance)
            recent_candidates.append(((abs(distance - boundary.value), age, rank),
                                      (abs(distance - boundary.value), query_slot, int(slot), distance,
                                       RECENT_SEARCH, (search.query_hash, search.query_path))))
    recent_candidates.sort(key=lambda c: c[0])
    if recent_candidates:
        picker.offer([c[1] for c in recent_candidates], limit=math.ceil(count * recent_share))

    taken = _taken_partners(store, live_slots, labelled | exclude, slot_of)
    slot_a, slot_b, d = _uncertain_candidates(live_codes, live_slots, anchors, boundary.value, max_distance, rng,
                                              taken)
    closeness = np.abs(d - boundary.value)
    order = np.lexsort((rng.random(len(d)), closeness))  # ties in random order: variety across the library
    picker.offer([(float(closeness[i]), int(slot_a[i]), int(slot_b[i]), int(d[i]), UNCERTAIN, None)
                  for i in order], limit=count)

    result.pairs = sorted(picker.pairs, key=lambda p: p.closeness)  # stable: recent searches first on ties
    return result


def recent_search(store: Store, query_path: str | os.PathLike, hits: Sequence[tuple[str, int]]) -> RecentSearch | None:
    """A search as :func:`suggest_pairs` takes it, from the query file and its results' (path, distance).

    None when the query file cannot be read any more.
    """
    try:
        digest, indexed = photo_hash(store, query_path)
    except UserError:
        return None
    query_slot = store.slots_for_hashes([digest]).get(digest) if indexed else None
    results = []
    for path, distance in hits:
        row = store.image_by_path(str(path))
        if row is not None and row.slot is not None:
            results.append((int(row.slot), int(distance)))
    return RecentSearch(digest, os.path.abspath(query_path), query_slot, tuple(results))

