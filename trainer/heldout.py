"""Held-out checks of a model version as the person meets it: searches with held-out labelled pairs.

The labelled pairs are split three ways (:func:`split_pairs`): most train; a *selection* part
chooses the best head step or epoch (and, in full mode, the re-rank space); a *gate* part,
used for nothing else, decides activation and gives the before/after figures the person is
shown, so the reported "after" is not one that was chosen on the same pairs.

Figures come from real searches through engine.search (coarse Hamming pool, then the fine
stage as the version is configured), the query photo itself left out of its results:

- ``top10``: for each held-out similar pair, searching with one photo (each in turn) over the
  whole library, how often the other is among the first 10 results. Easy to understand, and
  what the activation gate compares first. It is small when the person's "kinds" are large
  (a partner is one of hundreds of look-alikes: 2-5 % on the person's case, where a kind is
  a Fashion-MNIST class of about 300 photos) and close to what one hopes for when kinds are
  small (a few photos of one thing).
- ``map``: mean average precision over the held-out groups (similar held-out pairs joined into
  groups, split where a held-out dissimilar pair says so), in the first 100 results, counting
  only the held-out photos (the other photos carry no held-out judgement).
- ``percentile``: mean over held-out similar pairs of the share of the other photos that the
  search ranks below the partner (1 = always first). Smooth where top10 moves by single
  hits, so it is what selection maximises (docs/TRAINING.md: on the person's case, choosing
  the head step by top10 of the selection pairs kept a head 0.024 mAP@100 worse than
  choosing by this, which matched the choice by pair accuracy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainer.data import groups_from_pairs

HELD_OUT = 0.2          # of each label's pairs, kept from training (half selection, half gate)
MIN_PART_SIMILAR = 3    # similar pairs a held-out part needs to say anything
MAX_QUERIES = 400       # query photos per check (seeded sample): bounds the cost in large label sets
TOP = 10
DEPTH = 100             # results read per search for the gate's figures


def split_pairs(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training, selection, gate) indices into ``labels`` (+1 similar, -1 dissimilar), sorted.

    Each label is split on its own (a part always gets its share of similar pairs). With
    fewer than 2 x MIN_PART_SIMILAR similar pairs to hold out there is no selection part (the
    fit runs its schedule to the end), with fewer than MIN_PART_SIMILAR no gate either: every
    pair trains and nothing checks the new version (10 pairs, 5 of them similar: 1 similar
    pair would be held out, so all 10 train and the report says there was no check).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    similar = np.flatnonzero(labels > 0)
    held_similar = int(round(HELD_OUT * len(similar)))
    parts = 2 if held_similar >= 2 * MIN_PART_SIMILAR else 1 if held_similar >= MIN_PART_SIMILAR else 0
    train, select, gate = [], [], []
    for members in (similar, np.flatnonzero(labels <= 0)):
        order = rng.permutation(members)
        held = int(round(HELD_OUT * len(order))) if parts else 0
        chosen = held // 2 if parts == 2 else 0
        select.append(order[:chosen])
        gate.append(order[chosen:held])
        train.append(order[held:])
    return tuple(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, select, gate))


@dataclass
class RetrievalCheck:
    """One held-out part's similar pairs as searches, over rows of the labelled photos."""

    queries: np.ndarray           # rows searched with, in order
    partners: list[np.ndarray]    # per query: rows labelled similar to it in this part
    group: np.ndarray             # per labelled row: its group in this part (-1: not in this part)
    group_size: np.ndarray        # per group id: members
    similar_pairs: int

    @classmethod
    def of(cls, i: np.ndarray, j: np.ndarray, label: np.ndarray, rows: int, *, seed: int = 0,
           max_queries: int = MAX_QUERIES) -> "RetrievalCheck":
        """From a part's pairs (rows ``i``, ``j`` into ``rows`` labelled photos, ``label`` +-1)."""
        i, j, label = (np.asarray(a, dtype=np.int64) for a in (i, j, label))
        partners: dict[int, list[int]] = {}
        for a, b in zip(i[label > 0], j[label > 0]):
            partners.setdefault(int(a), []).append(int(b))
            partners.setdefault(int(b), []).append(int(a))
        queries = np.array(sorted(partners), dtype=np.int64)
        if len(queries) > max_queries:
            queries = np.sort(np.random.default_rng(seed).choice(queries, max_queries, replace=False))
        group = np.full(rows, -1, dtype=np.int64)
        of_row = groups_from_pairs([(int(a), int(b), int(s)) for a, b, s in zip(i, j, label)])
        for row, g in of_row.items():
            group[row] = g
        sizes = np.bincount(group[group >= 0]) if (group >= 0).any() else np.zeros(0, np.int64)
        return cls(queries, [np.array(partners[int(q)], dtype=np.int64) for q in queries], group, sizes,
                   int((label > 0).sum()))

    def __bool__(self) -> bool:
        return len(self.queries) > 0

    def figures(self, ranked: Callable[[int], np.ndarray], library_size: int) -> dict:
        """{"top10", "map", "percentile", "searches"}; NaN figures when the part is empty.

        ``ranked(row)``: the search results of that labelled photo, best first, the photo
        itself left out, as labelled rows (-1 for photos that are not labelled); at least the
        first DEPTH when the library has them, all of them for an exact percentile (a partner
        not among them counts as ranked last). ``library_size``: photos that could be returned.
        """
        if not self:
            return {"top10": float("nan"), "map": float("nan"), "percentile": float("nan"), "searches": 0}
        hits, positions, average_precisions = [], [], []
        others = max(library_size - 1, 1)
        for query, partners in zip(self.queries, self.partners):
            results = np.asarray(ranked(int(query)), dtype=np.int64)
            for partner in partners:
                where = np.flatnonzero(results == partner)
                rank = int(where[0]) if len(where) else others
                hits.append(rank < TOP)
                positions.append(1.0 - min(rank, others) / others)
            average_precisions.append(self._average_precision(int(query), results[:DEPTH]))
        return {"top10": float(np.mean(hits)), "map": float(np.mean(average_precisions)),
                "percentile": float(np.mean(positions)), "searches": len(self.queries)}

    def _average_precision(self, query: int, results: np.ndarray) -> float:
        own = self.group[query]
        judged = results[(results >= 0)]
        judged = judged[self.group[judged] >= 0]
        relevant = self.group[judged] == own
        total = int(self.group_size[own]) - 1
        if total <= 0 or not relevant.any():
            return 0.0
        precision = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
        return float(precision[relevant].sum() / total)


def better_or_equal(after: dict, before: dict) -> bool:
    """The gate: the new version is not worse when its top-10 figure is higher, or equal with
    a mAP not lower, or both equal with a pair accuracy not lower (a few held-out pairs make
    equal top-10 figures common). True when the old figures are missing (nothing to compare)."""
    keys = ("top10", "map", "pair_accuracy")
    if any(np.isnan(before.get(k, np.nan)) for k in keys[:1]):
        return True
    for key in keys:
        a, b = after.get(key, np.nan), before.get(key, np.nan)
        if np.isnan(a) or np.isnan(b):
            continue
        if a != b:
            return a > b
    return True
