"""The held-out checks: a three-way split of the pairs, figures read off real rankings, and the gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.heldout import Ranking, RetrievalCheck, better_or_equal, split_pairs


def _labels(similar: int, dissimilar: int) -> np.ndarray:
    labels = np.array([1] * similar + [-1] * dissimilar)
    return np.random.default_rng(5).permutation(labels)


def test_the_split_is_three_disjoint_parts_each_with_its_share_of_similar_pairs():
    labels = _labels(300, 300)
    train, select, gate = split_pairs(labels, seed=0)
    assert len(set(train) | set(select) | set(gate)) == len(train) + len(select) + len(gate) == 600
    assert (labels[select] > 0).sum() == 30 and (labels[gate] > 0).sum() == 30
    assert (labels[select] < 0).sum() == 30 and (labels[gate] < 0).sum() == 30
    again = split_pairs(labels, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, select, gate)))
    assert not np.array_equal(split_pairs(labels, seed=1)[2], gate)


@pytest.mark.parametrize("similar, dissimilar, parts", [
    (5, 5, (10, 0, 0)),       # 10 pairs: one similar pair would be held out: all train, nothing checks
    (15, 10, (20, 0, 5)),     # 3 similar held out: a gate only, the fit runs to its end
    (30, 30, (48, 6, 6)),     # 6 similar held out: 3 select, 3 gate
])
def test_small_label_sets(similar, dissimilar, parts):
    train, select, gate = split_pairs(_labels(similar, dissimilar), seed=0)
    assert (len(train), len(select), len(gate)) == parts


def test_figures_are_read_off_the_ranking():
    # labelled rows 0..5; part: 0~1 similar, 0~2 similar, 3~4 similar, 0 !~ 3
    check = RetrievalCheck.of(np.array([0, 0, 3, 0]), np.array([1, 2, 4, 3]), np.array([1, 1, 1, -1]), rows=6)
    assert list(check.queries) == [0, 1, 2, 3, 4] and check.similar_pairs == 3
    assert check.group[0] == check.group[1] == check.group[2] != check.group[3] == check.group[4]
    assert check.group[5] == -1
    # a library of 101 photos besides the query; -1 = a photo nobody labelled
    rankings = {
        0: Ranking(np.array([1, -1, -1, 3, 2]), others=101, beyond=None),   # partners at ranks 0 and 4
        1: Ranking(np.array([-1] * 12 + [0]), others=101, beyond=None),     # partner at rank 12
        2: Ranking(np.array([0]), others=101, beyond=None),                 # partner first
        3: Ranking(np.array([-1, -1]), others=101, beyond=lambda row: 50.0),  # partner 4 beyond the list
        4: Ranking(np.array([3]), others=101, beyond=None),
    }
    figures = check.figures(lambda row: rankings[row])
    # directed pairs: (0,1) r0, (0,2) r4, (1,0) r12, (2,0) r0, (3,4) r50, (4,3) r0
    ranks = np.array([0, 4, 12, 0, 50, 0])
    assert figures["top10"] == pytest.approx(4 / 6)
    assert figures["percentile"] == pytest.approx(np.mean(1 - ranks / 100))
    # condensed lists over the labelled photos: 0 -> [1, 3, 2]: AP (1/1 + 2/3) / 2; 1 -> [0]: 1/2 (two
    # relevant, one found); 2 -> [0]: 1/2; 3 -> []: 0; 4 -> [3]: 1
    assert figures["map"] == pytest.approx(np.mean([(1 + 2 / 3) / 2, 0.5, 0.5, 0.0, 1.0]))
    assert figures["searches"] == 5
    empty = RetrievalCheck.of(np.array([0]), np.array([1]), np.array([-1]), rows=2)
    assert not empty and all(math.isnan(empty.figures(lambda row: None)[k]) for k in ("top10", "map", "percentile"))
    np.testing.assert_allclose(figures["percentiles"], 1 - ranks / 100)


def test_the_gate_compares_the_percentile_first_then_the_others():
    before = {"percentile": 0.80, "top10": 0.05, "map": 0.10, "pair_accuracy": 0.90}
    assert better_or_equal({**before, "percentile": 0.81, "top10": 0.01, "pair_accuracy": 0.5}, before)
    assert not better_or_equal({**before, "percentile": 0.79, "top10": 0.50, "pair_accuracy": 0.99}, before)
    assert not better_or_equal({**before, "top10": 0.04, "pair_accuracy": 0.99}, before)
    assert better_or_equal({**before, "map": 0.11, "pair_accuracy": 0.5}, before)
    assert better_or_equal(dict(before), before)
    nothing = {k: float("nan") for k in before}
    assert better_or_equal(before, nothing) and better_or_equal(nothing, nothing)


def test_a_space_is_clearly_better_only_beyond_the_noise():
    from trainer.heldout import clearly_better

    rng = np.random.default_rng(0)
    base = rng.random(400)
    assert clearly_better(base + 0.01, base)  # the same pairs, every one a little higher
    assert not clearly_better(base, base + 0.01)
    noisy = base + rng.normal(0, 0.1, 400) + 0.001  # a mean difference well inside its spread
    assert not clearly_better(noisy, base)
    assert not clearly_better(np.array([1.0]), np.array([0.0]))  # one pair says nothing
