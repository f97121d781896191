"""Tests of the retrieval metrics and reports (trainer.evaluate)."""

import importlib.util
import json

import numpy as np
import pytest

from engine.codes import pack_bits, unpack_bits
from engine.errors import EnvironmentProblem
from trainer.evaluate import (
    evaluate_codes,
    hamming_matrix,
    mean_average_precision,
    precision_recall_curve,
    precision_within_radius,
    relevance,
    write_report,
)

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def codes_at_distances(distances, bits=8):
    """Database codes whose Hamming distances to the all-zero query code are ``distances``."""
    rows = np.zeros((len(distances), bits), dtype=bool)
    for r, d in enumerate(distances):
        rows[r, :d] = True
    return pack_bits(rows)


ZERO = pack_bits(np.zeros((1, 8), dtype=bool))


# ---------------------------------------------------------------------------- distances


def test_hamming_matrix_matches_unpackbits_reference():
    rng = np.random.default_rng(0)
    bits = 100  # two words, the second half-used
    q = rng.random((7, bits)) < 0.5
    db = rng.random((33, bits)) < 0.5
    got = hamming_matrix(pack_bits(q), pack_bits(db))
    reference = (unpack_bits(pack_bits(q), bits)[:, None, :] != unpack_bits(pack_bits(db), bits)[None]).sum(-1)
    assert got.dtype == np.uint16 and got.shape == (7, 33)
    np.testing.assert_array_equal(got, reference)


def test_hamming_matrix_in_several_blocks(monkeypatch):
    import trainer.evaluate as ev

    monkeypatch.setattr(ev, "BLOCK_ELEMENTS", 10)  # one query per block
    rng = np.random.default_rng(1)
    q, db = pack_bits(rng.random((5, 64)) < 0.5), pack_bits(rng.random((20, 64)) < 0.5)
    expected = np.bitwise_count(q[:, None, 0] ^ db[None, :, 0])
    np.testing.assert_array_equal(hamming_matrix(q, db), expected)


def test_hamming_matrix_rejects_mismatched_codes():
    with pytest.raises(ValueError, match="words"):
        hamming_matrix(np.zeros((1, 1), np.uint64), np.zeros((2, 2), np.uint64))
    with pytest.raises(ValueError, match="uint64"):
        hamming_matrix(np.zeros((1, 1), np.int64), np.zeros((2, 1), np.uint64))


def test_relevance_single_and_multi_hot():
    np.testing.assert_array_equal(relevance([0, 1], [1, 0, 1]), [[False, True, False], [True, False, True]])
    q = np.array([[1, 0, 1], [0, 0, 0]])
    db = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(relevance(q, db), [[True, False, True], [False, False, False]])


# ---------------------------------------------------------------------------- mAP


def test_map_hand_computed():
    # distances 2, 1, 3 -> ranking d1, d0, d2
    db = codes_at_distances([2, 1, 3])
    db_labels = np.array([0, 1, 0])
    query = np.repeat(ZERO, 2, axis=0)
    # query 0 (label 0): ranked relevance F, T, T -> AP = (1/2 + 2/3) / 2 = 7/12
    # query 1 (label 1): ranked relevance T, F, F -> AP = 1
    assert mean_average_precision(query, db, [0, 1], db_labels) == pytest.approx((7 / 12 + 1) / 2)
    assert mean_average_precision(query[:1], db, [0], db_labels) == pytest.approx(7 / 12)


def test_map_topk_hand_computed():
    db = codes_at_distances([2, 1, 3])
    db_labels = np.array([0, 1, 0])
    query = np.repeat(ZERO, 2, axis=0)
    # top 2: query 0 F, T -> 1/2 normalised by the 1 relevant retrieved; query 1 T, F -> 1
    assert mean_average_precision(query, db, [0, 1], db_labels, topk=2) == pytest.approx(0.75)
    # top 1: query 0 retrieves nothing relevant -> AP 0, still counted
    assert mean_average_precision(query, db, [0, 1], db_labels, topk=1) == pytest.approx(0.5)
    # topk beyond the database is mAP@all
    assert mean_average_precision(query, db, [0, 1], db_labels, topk=99) == pytest.approx((7 / 12 + 1) / 2)


def test_map_ties_are_broken_by_database_index():
    db = codes_at_distances([1, 1, 1])
    assert mean_average_precision(ZERO, db, [0], [1, 0, 0]) == pytest.approx(7 / 12)  # F, T, T
    assert mean_average_precision(ZERO, db, [0], [0, 0, 1]) == pytest.approx(1.0)  # T, T, F
    feats = np.ones((3, 4))
    assert mean_average_precision(
        None, None, [0], [1, 0, 0], query_features=np.ones((1, 4)), db_features=feats
    ) == pytest.approx(7 / 12)


def test_float_ranking_is_a_stable_argsort():
    from trainer.evaluate import _stable_order

    rng = np.random.default_rng(5)
    key = rng.choice(np.array([-2.5, -1.0, -0.0, 0.0, 0.25, 1.0, 3.0e9], dtype=np.float32), (4, 200))
    expected = np.argsort(key + np.float32(0.0), axis=1, kind="stable")
    np.testing.assert_array_equal(_stable_order(key), expected)


def test_map_by_cosine_on_features():
    q = np.array([[1.0, 0.0]])
    db = np.array([[0.0, 3.0], [2.0, 0.1], [1.0, 1.0]])  # cosine order: d1, d2, d0
    # labels: d0 relevant, d1 not, d2 relevant -> F, T, T
    ap = mean_average_precision(None, None, [5], [5, 4, 5], query_features=q, db_features=db)
    assert ap == pytest.approx(7 / 12)
    with pytest.raises(ValueError, match="both"):
        mean_average_precision(None, None, [5], [5, 4, 5], query_features=q)


def test_perfect_codes_give_map_one_and_random_codes_the_base_rate():
    rng = np.random.default_rng(0)
    class_codes = rng.random((10, 64)) < 0.5
    q_labels = np.repeat(np.arange(10), 20)
    db_labels = np.repeat(np.arange(10), 200)
    q, db = pack_bits(class_codes[q_labels]), pack_bits(class_codes[db_labels])
    assert mean_average_precision(q, db, q_labels, db_labels) == pytest.approx(1.0)
    assert mean_average_precision(q, db, q_labels, db_labels, topk=100) == pytest.approx(1.0)
    assert precision_within_radius(q, db, q_labels, db_labels) == pytest.approx(1.0)

    random_q = pack_bits(rng.random((200, 32)) < 0.5)
    random_db = pack_bits(rng.random((2000, 32)) < 0.5)
    assert mean_average_precision(random_q, random_db, q_labels, db_labels) == pytest.approx(0.1, abs=0.02)


def test_map_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        mean_average_precision(ZERO, codes_at_distances([1, 2]), [0], [0, 1, 2])


# ---------------------------------------------------------------------------- hash lookup


def test_precision_within_radius_hand_computed():
    db = codes_at_distances([0, 2, 3, 1])
    # query 0 (label 0): within 2 are d0, d1, d3; relevant among them only d0 -> 1/3
    # query 1: code at distance 8 from... all ones: distances 8, 6, 5, 7 -> nothing within 2 -> 0
    query = np.concatenate([ZERO, pack_bits(np.ones((1, 8), dtype=bool))])
    labels = [0, 0]
    db_labels = [0, 1, 0, 1]
    assert precision_within_radius(query, db, labels, db_labels) == pytest.approx((1 / 3 + 0) / 2)
    assert precision_within_radius(query[:1], db, [0], db_labels, radius=0) == pytest.approx(1.0)
    assert precision_within_radius(query[:1], db, [0], db_labels, radius=3) == pytest.approx(0.5)


def test_precision_recall_curve_by_radius():
    db = codes_at_distances([0, 2, 3, 1])
    precision, recall = precision_recall_curve(ZERO, db, [0], [0, 1, 0, 1], bits=8)
    assert precision.shape == recall.shape == (9,)
    np.testing.assert_allclose(recall[:5], [0.5, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(precision[:5], [1.0, 0.5, 1 / 3, 0.5, 0.5])


def test_precision_recall_curve_on_random_codes():
    rng = np.random.default_rng(3)
    q_labels, db_labels = rng.integers(0, 5, 50), rng.integers(0, 5, 500)
    q, db = pack_bits(rng.random((50, 16)) < 0.5), pack_bits(rng.random((500, 16)) < 0.5)
    precision, recall = precision_recall_curve(q, db, q_labels, db_labels, bits=16)
    assert (np.diff(recall) >= 0).all() and recall[-1] == pytest.approx(1.0)
    base = relevance(q_labels, db_labels).mean()
    assert precision[-1] == pytest.approx(base)  # at radius K every item is returned
    assert np.isnan(precision).sum() <= 2  # only at radii where no query retrieves anything
    default_bits, _ = precision_recall_curve(q, db, q_labels, db_labels)
    assert default_bits.shape == (65,)
    with pytest.raises(ValueError, match="bits"):
        precision_recall_curve(q, db, q_labels, db_labels, bits=8)  # distances reach past 8


def test_evaluate_codes_agrees_with_the_single_metrics():
    rng = np.random.default_rng(4)
    centres = rng.random((4, 24)) < 0.5
    q_labels, db_labels = rng.integers(0, 4, 40), rng.integers(0, 4, 1500)
    noisy = lambda labels: pack_bits(centres[labels] ^ (rng.random((len(labels), 24)) < 0.2))  # noqa: E731
    q, db = noisy(q_labels), noisy(db_labels)
    got = evaluate_codes(q, db, q_labels, db_labels, bits=24)
    assert set(got) == {"map_all", "map_1000", "p_r2", "pr"}
    assert got["map_all"] == pytest.approx(mean_average_precision(q, db, q_labels, db_labels))
    assert got["map_1000"] == pytest.approx(mean_average_precision(q, db, q_labels, db_labels, topk=1000))
    assert got["p_r2"] == pytest.approx(precision_within_radius(q, db, q_labels, db_labels, 2))
    precision, recall = precision_recall_curve(q, db, q_labels, db_labels, bits=24)
    np.testing.assert_allclose(got["pr"]["precision"], precision)
    np.testing.assert_allclose(got["pr"]["recall"], recall)
    assert len(got["pr"]["recall"]) == 25 and isinstance(got["pr"]["recall"], list)
    assert 0.5 < got["map_all"] < 1.0


# ---------------------------------------------------------------------------- reports


def report_rows():
    pr = {"precision": [float("nan"), 0.9, 0.8, 0.5], "recall": [0.0, 0.2, 0.6, 1.0]}
    return [
        {"method": "dpsh", "bits": 12, "mode": "head", "map_all": 0.5, "map_1000": 0.6, "p_r2": 0.4,
         "train_seconds": 10.0, "pr": pr},
        {"method": "dpsh", "bits": 48, "mode": "head", "map_all": 0.7, "map_1000": 0.8, "p_r2": np.float64(0.3),
         "train_seconds": 20.0, "pr": pr},
        {"method": "itq", "bits": 48, "map_all": 0.45, "map_1000": 0.55, "p_r2": 0.2, "train_seconds": 1.5,
         "pr": pr},
        {"method": "cosine", "bits": None, "mode": "float", "map_all": 0.51, "map_1000": 0.6},
    ]


def test_write_report(tmp_path):
    out = tmp_path / "report"
    if HAVE_MATPLOTLIB:
        paths = write_report(report_rows(), out, title="Fashion-MNIST")
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        with pytest.raises(EnvironmentProblem, match="matplotlib"):
            write_report(report_rows(), out, title="Fashion-MNIST")
        assert not (out / "pr.png").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["results.json", "results.md"] + (["pr.png"] if HAVE_MATPLOTLIB else [])
    )

    data = json.loads((out / "results.json").read_text())
    assert data["title"] == "Fashion-MNIST" and len(data["rows"]) == 4
    assert data["rows"][0]["pr"]["precision"][0] is None  # NaN is not JSON
    assert data["rows"][1]["p_r2"] == 0.3

    md = (out / "results.md").read_text().splitlines()
    assert md[0] == "# Fashion-MNIST"
    assert "| method | 12 bits | 48 bits | float |" in md
    assert "| dpsh (head) | 0.500 | 0.700 | – |" in md
    assert "| itq | – | 0.450 | – |" in md
    assert "| cosine (float) | – | – | 0.510 |" in md
    assert "| dpsh (head) | 48 | 0.800 | 0.300 | 20.0 |" in md
    assert "| cosine (float) | – | 0.600 | – | – |" in md
    assert not list(out.glob("*.tmp"))
