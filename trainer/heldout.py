"""Held-out checks of a model version as the person meets it: searches with held-out labelled pairs.

The labelled pairs are split three ways (:func:`split_pairs`): most train; a *selection* part
chooses the best head step or epoch (and, in full mode, the re-rank space); a *gate* part,
used for nothing else, decides activation and gives the before/after figures the person is
shown, so the reported "after" is not one that was chosen on the same pairs.

Figures come from real searches through engine.search (coarse Hamming pool, then the fine
stage as the version is configured), the query photo itself left out of its results. For
each held-out similar pair, each photo in turn is the query and the other its *partner*:

- ``percentile``: the share of the library the search ranks below the partner, averaged
  (1 = always first). Photos beyond the coarse pool follow it in Hamming order, which is how
  they would come if the pool were larger. It is what the gate compares first and what
  selection maximises: it moves smoothly with the ranking whatever the size of the person's
  "kinds".
- ``top10``: how often the partner is among the first 10 results. The easiest to read, but
  its ceiling is about 10 / (photos of the partner's kind): on the person's case (a kind is a
  Fashion-MNIST class of ~300 photos in 3,000) even a perfect ranking of kinds scores ~3 %,
  and 400 searches give a few dozen hits, so it went 2.6 % -> 1.7 % for a full-mode version
  that lifted the person's mAP@100 from 0.761 to 0.857 (percentile 0.850 -> 0.930). Reported,
  and the gate's second key.
- ``map``: mean average precision over the held-out groups (similar held-out pairs joined
  into groups, split where a held-out dissimilar pair says so), in the first 100 results,
  counting only the held-out photos (the other photos carry no held-out judgement).
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
class Ranking:
    """One search as the checks read it: ``rows`` the results best first as labelled rows
    (-1 for photos that are not labelled), the query left out; ``others`` the photos that
    could be returned; ``beyond(row)`` the rank of a labelled photo not among ``rows``
    (how many photos come before it), or None when ``rows`` is the whole ranking."""

    rows: np.ndarray
    others: int
    beyond: Callable[[int], float] | None = None

    def rank(self, row: int) -> float:
        where = np.flatnonzero(self.rows == row)
        if len(where):
            return float(where[0])
        return float(self.others - 1) if self.beyond is None else float(self.beyond(row))


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

    def figures(self, search: Callable[[int], "Ranking"]) -> dict:
        """{"percentile", "top10", "map", "searches", "percentiles"}; NaN figures when the part is
        empty. ``percentiles``: one per held-out (query, partner), in a fixed order, so two
        rankings' figures can be compared pair by pair.

        ``search(row)``: the Ranking of a search with that labelled photo.
        """
        if not self:
            return {"percentile": float("nan"), "top10": float("nan"), "map": float("nan"), "searches": 0,
                    "percentiles": np.zeros(0)}
        hits, percentiles, average_precisions = [], [], []
        for query, partners in zip(self.queries, self.partners):
            ranking = search(int(query))
            for partner in partners:
                rank = ranking.rank(int(partner))
                hits.append(rank < TOP)
                percentiles.append(1.0 - rank / max(ranking.others - 1, 1))
            average_precisions.append(self._average_precision(int(query), ranking.rows[:DEPTH]))
        return {"percentile": float(np.mean(percentiles)), "top10": float(np.mean(hits)),
                "map": float(np.mean(average_precisions)), "searches": len(self.queries),
                "percentiles": np.array(percentiles)}

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


def clearly_better(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether per-pair figures ``a`` beat ``b`` (the same pairs, in the same order) by more
    than twice the standard error of their mean difference: more than noise."""
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(difference) < 2:
        return False
    return bool(difference.mean() > 2 * difference.std(ddof=1) / np.sqrt(len(difference)))


GATE_KEYS = ("percentile", "top10", "map", "pair_accuracy")


def better_or_equal(after: dict, before: dict) -> bool:
    """The gate: the new version is not worse when its figures, compared in the order of
    GATE_KEYS, are higher at the first that differs, or all equal. True when the old
    figures are missing (nothing to compare)."""
    if np.isnan(before.get(GATE_KEYS[0], np.nan)):
        return True
    for key in GATE_KEYS:
        a, b = after.get(key, np.nan), before.get(key, np.nan)
        if np.isnan(a) or np.isnan(b):
            continue
        if a != b:
            return bool(a > b)
    return True
