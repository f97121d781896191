"""Pair suggestions on synthetic codes in a real store: the boundary, the invariants of a batch, recent searches."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest

from engine import arrays
from engine.imageio import content_hash
from engine.labels import export_csv_file, import_csv, photo_hash
from engine.store import NewImage, Store
from engine.suggest import (
    RECENT_SEARCH,
    UNCERTAIN,
    RecentSearch,
    anchor_count,
    canonical,
    label_boundary,
    pair_threshold,
    recent_search,
    suggest_pairs,
)

BITS = 64


def _fake_model(tmp_path, bits=BITS):
    folder = tmp_path / f"model-{bits}"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not needed here")
    (folder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": "fake", "backbone": "fake", "backbone_id": "bb01", "input_size": 32,
        "resize": "center-crop", "bits": bits, "feature_dim": 4, "head": {"kind": "lsh"},
    }))
    return folder


def _hash(i: int) -> str:
    return f"{i:032x}"


def _clustered_codes(n: int, seed: int = 0, cluster: int = 8, flips: int = 6) -> np.ndarray:
    """Clusters of photos whose codes differ from their centre's by a few random bits."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**63, size=(n // cluster + 1, 1), dtype=np.uint64)
    noise = np.zeros((n, 1), np.uint64)
    for _ in range(flips):
        bit = rng.integers(0, BITS, size=(n, 1)).astype(np.uint64)
        noise ^= np.where(rng.random((n, 1)) < 0.8, np.uint64(1) << bit, np.uint64(0))
    return centres[np.arange(n) // cluster] ^ noise


def _store(tmp_path, codes: np.ndarray, hashes: list[str] | None = None) -> Store:
    """A real store whose active model's codes are ``codes``; slot i is /photos/i.jpg."""
    n = len(codes)
    hashes = hashes or [_hash(i) for i in range(n)]
    store = Store.open(tmp_path / "lib")
    model = store.add_model(_fake_model(tmp_path), codes, activate=True)
    arrays.write_rows(store.features_path(model.backbone_id), 0, np.zeros((n, 4), np.float16))
    store.commit_batch([NewImage(f"/photos/{i}.jpg", None, 10, 20, hashes[i], slot=i) for i in range(n)],
                       run_id=1, next_slot=n)
    return store


def _distance(codes, a, b) -> int:
    return int(np.bitwise_count(codes[a] ^ codes[b]).sum())


def _check_batch(store: Store, codes: np.ndarray, pairs, boundary: float) -> None:
    """The invariants every batch keeps."""
    labelled = {canonical(row[0], row[1]) for row in store.labels()}
    hashes = {}
    for pair in pairs:
        assert pair.hash_a != pair.hash_b, "a photo paired with itself or a copy of itself"
        assert pair.key not in labelled, "a labelled pair was suggested"
        if pair.slot_a is not None:
            assert pair.hamming == _distance(codes, pair.slot_a, pair.slot_b)
            assert store.images_for_slots([pair.slot_a])[pair.slot_a] == (pair.hash_a, pair.path_a)
        assert pair.closeness == pytest.approx(abs(pair.hamming - boundary))
        for digest in pair.key:
            hashes[digest] = hashes.get(digest, 0) + 1
    assert len({pair.key for pair in pairs}) == len(pairs), "a pair suggested twice"
    assert max(hashes.values(), default=0) <= 2, "a photo in more than two pairs of a batch"
    closeness = [pair.closeness for pair in pairs]
    assert closeness == sorted(closeness), "not sorted by closeness to the boundary"


# ------------------------------------------------------------------ the boundary


def test_pair_threshold_is_the_trainers_rule():
    rng = np.random.default_rng(3)
    for trial in range(50):
        n = int(rng.integers(1, 40))
        distances = rng.integers(0, BITS + 1, n)
        similar = rng.random(n) < 0.5
        # trainer/library_train.pair_accuracy: the first t in 0..64 with the best accuracy
        best_t, best_acc = 0, -1.0
        for t in range(BITS + 1):
            acc = float(np.mean((distances <= t) == similar))
            if acc > best_acc:
                best_t, best_acc = t, acc
        assert pair_threshold(distances, similar, BITS) == best_t, trial
    assert pair_threshold([], [], BITS) == 0


def test_the_label_boundary_separates_similar_from_dissimilar_pairs():
    distances = [2, 3, 5, 20, 25, 31]
    similar = [True, True, True, False, False, False]
    boundary = label_boundary(distances, similar, BITS)
    assert boundary.source == "labels" and boundary.threshold == 5 and boundary.labelled_pairs == 6
    # the middle of the perfect thresholds 5..19: pairs at 12 and 13 are the least certain
    assert boundary.value == 12.5
    assert all(d < boundary.value for d, s in zip(distances, similar) if s)
    assert all(d > boundary.value for d, s in zip(distances, similar) if not s)
    # overlapping labels: the best threshold misclassifies the fewest
    boundary = label_boundary([1, 4, 9, 6, 12, 14], [True, True, True, False, False, False], BITS)
    assert boundary.threshold == 4 and boundary.value == 5.0


def test_one_sided_labels_draw_no_boundary():
    assert label_boundary([1, 2, 3], [True, True, True], BITS) is None
    assert label_boundary([30, 40], [False, False], BITS) is None
    assert label_boundary([], [], BITS) is None


def test_the_anchor_sample_follows_the_work_budget():
    assert anchor_count(10, 1) == 10
    assert anchor_count(5_000, 1) == 2000
    assert anchor_count(100_000, 1) == 150
    assert anchor_count(10_000_000, 4) == 32


# ------------------------------------------------------------------ uncertain pairs


def test_uncertain_pairs_keep_every_invariant_and_skip_labels_copies_and_dead_slots(tmp_path):
    codes = _clustered_codes(400)
    hashes = [_hash(i) for i in range(400)]
    codes[1] = codes[0]
    hashes[1] = hashes[0]  # slot 1 is a copy of slot 0: same content
    store = _store(tmp_path, codes, hashes)
    try:
        first = suggest_pairs(store, codes, bits=BITS, count=30, seed=1)
        assert first.boundary.source == "neighbours" and first.live == 400
        assert len(first.pairs) == 30 and {p.reason for p in first.pairs} == {UNCERTAIN}
        _check_batch(store, codes, first.pairs, first.boundary.value)
        # the default boundary is the median distance to the 10th nearest neighbour
        assert 1 <= first.boundary.value <= BITS / 2

        # label a few, with similar pairs closer than dissimilar ones: the boundary now comes from them
        for pair in first.pairs[:10]:
            store.add_label(pair.hash_a, pair.hash_b, 1 if pair.hamming <= first.boundary.value else -1,
                            source="test")
        similar_pair = min(first.pairs, key=lambda p: p.hamming)
        store.add_label(similar_pair.hash_a, similar_pair.hash_b, 1, source="test")
        store.add_label(_hash(10), _hash(300), -1, source="test")
        second = suggest_pairs(store, codes, bits=BITS, count=30, seed=1)
        assert second.boundary.source == "labels"
        _check_batch(store, codes, second.pairs, second.boundary.value)
        assert not {p.key for p in second.pairs} & {p.key for p in first.pairs[:10]}

        # what the caller has shown already stays out; so does a replaced file's old slot
        shown = {p.key for p in second.pairs}
        third = suggest_pairs(store, codes, bits=BITS, count=30, seed=1, exclude=shown)
        assert third.pairs and not {p.key for p in third.pairs} & shown
        _check_batch(store, codes, third.pairs, third.boundary.value)
    finally:
        store.close()


def test_a_labelled_boundary_puts_the_closest_distances_first(tmp_path):
    codes = _clustered_codes(300, seed=5)
    store = _store(tmp_path, codes)
    try:
        # similar pairs within 6 bits, dissimilar ones beyond 20: the boundary is 13.5... or so
        store.add_label(_hash(0), _hash(1), 1, source="test")
        store.add_label(_hash(0), _hash(200), -1, source="test")
        d_similar, d_dissimilar = _distance(codes, 0, 1), _distance(codes, 0, 200)
        assert d_similar < d_dissimilar
        batch = suggest_pairs(store, codes, bits=BITS, count=20, seed=2)
        assert batch.boundary.source == "labels" and batch.boundary.labelled_pairs == 2
        assert d_similar < batch.boundary.value < d_dissimilar
        assert batch.boundary.threshold == d_similar
        assert batch.boundary.value == (d_similar + d_dissimilar) / 2
        _check_batch(store, codes, batch.pairs, batch.boundary.value)
        # the sample holds pairs at the boundary's own distances: the batch starts there
        assert batch.pairs[0].closeness <= 1.0
    finally:
        store.close()


def test_batch_after_batch_a_small_library_offers_every_pair_once(tmp_path):
    rng = np.random.default_rng(17)
    codes = rng.integers(0, 2**63, size=(12, 1), dtype=np.uint64)  # all pairs near the default boundary
    store = _store(tmp_path, codes)
    try:
        shown: set = set()
        for seed in range(40):
            batch = suggest_pairs(store, codes, bits=BITS, count=5, seed=seed, exclude=shown)
            _check_batch(store, codes, batch.pairs, batch.boundary.value)
            if not batch.pairs:
                break
            keys = {p.key for p in batch.pairs}
            assert not keys & shown
            shown |= keys
        assert not batch.pairs, "never ran out"
        assert len(shown) == 12 * 11 // 2
    finally:
        store.close()


def test_dead_slots_and_missing_photos_are_never_suggested(tmp_path):
    codes = _clustered_codes(64, seed=7)
    store = _store(tmp_path, codes)
    try:
        # replace 20 files: their old slots die, the new ones are appended
        replaced = list(range(0, 40, 2))
        first = store.next_slot
        new_codes = np.concatenate([codes, codes[replaced]])
        arrays.write_rows(store.codes_path(1), first, codes[replaced])
        store.commit_batch([NewImage(f"/photos/{s}.jpg", None, 11, 21, _hash(1000 + s), slot=first + i)
                            for i, s in enumerate(replaced)], run_id=2, next_slot=first + len(replaced))
        batch = suggest_pairs(store, new_codes, bits=BITS, count=40, seed=0)
        assert batch.live == 64
        for pair in batch.pairs:
            assert pair.slot_a not in replaced and pair.slot_b not in replaced
        _check_batch(store, new_codes, batch.pairs, batch.boundary.value)
    finally:
        store.close()


def test_copies_of_one_photo_are_never_a_pair_even_at_the_boundary(tmp_path):
    rng = np.random.default_rng(13)
    codes = rng.integers(0, 2**63, size=(13, 1), dtype=np.uint64)  # ~32 bits apart: far from any boundary
    hashes = [_hash(i) for i in range(13)]
    codes[10], hashes[10] = codes[0], hashes[0]  # a copy: same content, same code
    codes[11] = codes[1]  # another photo with the same code
    codes[12] = codes[2] ^ np.uint64(1)  # and one a bit away
    store = _store(tmp_path, codes, hashes)
    try:
        store.add_label(_hash(1), _hash(11), 1, source="test")
        store.add_label(_hash(2), _hash(12), -1, source="test")
        batch = suggest_pairs(store, codes, bits=BITS, count=10)
        assert batch.boundary.value == 0.5  # right where the copy pair (distance 0) sits
        _check_batch(store, codes, batch.pairs, batch.boundary.value)
        assert batch.pairs == []
    finally:
        store.close()


def test_fewer_than_two_photos_give_nothing(tmp_path):
    codes = _clustered_codes(1)
    store = _store(tmp_path, codes)
    try:
        batch = suggest_pairs(store, codes, bits=BITS)
        assert batch.pairs == [] and batch.boundary is None and batch.live == 1
    finally:
        store.close()


def test_every_pair_labelled_leaves_nothing_to_suggest(tmp_path):
    codes = _clustered_codes(4)
    store = _store(tmp_path, codes)
    try:
        for a in range(4):
            for b in range(a + 1, 4):
                store.add_label(_hash(a), _hash(b), 1 if b - a == 1 else -1, source="test")
        batch = suggest_pairs(store, codes, bits=BITS)
        assert batch.pairs == [] and batch.labelled == 6
    finally:
        store.close()


# ------------------------------------------------------------------ recent searches


def test_recent_searches_suggest_query_result_pairs_near_the_boundary(tmp_path):
    codes = _clustered_codes(200, seed=11)
    store = _store(tmp_path, codes)
    try:
        query = 17
        order = np.argsort([_distance(codes, query, s) for s in range(200)], kind="stable")
        results = tuple((int(s), _distance(codes, query, s)) for s in order[:15])
        indexed = RecentSearch(_hash(query), f"/photos/{query}.jpg", query, results)
        outside = RecentSearch("f" * 32, "/downloads/outside.jpg", None, ((5, 9), (6, 30), (7, 12)))
        store.add_label(_hash(query), _hash(int(order[1])), 1, source="feedback")  # already labelled
        batch = suggest_pairs(store, codes, bits=BITS, count=10, seed=0, recent=[indexed, outside])
        _check_batch(store, codes, batch.pairs, batch.boundary.value)
        recent = [p for p in batch.pairs if p.reason == RECENT_SEARCH]
        assert 0 < len(recent) <= 5  # at most half the batch
        for pair in recent:
            assert pair.hash_a in (_hash(query), "f" * 32)
        # the search of an outside file keeps the distances it measured
        outside_pairs = [p for p in recent if p.hash_a == "f" * 32]
        assert outside_pairs and all(p.slot_a is None and p.path_a == "/downloads/outside.jpg"
                                     for p in outside_pairs)
        assert {(p.slot_b, p.hamming) for p in outside_pairs} <= {(5, 9), (6, 30), (7, 12)}
        # the query is in two pairs at most, and never with itself (the first result)
        assert sum(1 for p in recent if p.hash_a == _hash(query)) <= 2
        assert all(p.slot_b != query for p in recent)
    finally:
        store.close()


def test_recent_search_resolves_the_query_file_and_the_results(tmp_path):
    photo = tmp_path / "q.jpg"
    photo.write_bytes(b"pretend jpeg bytes")
    stat = os.stat(photo)
    store = Store.open(tmp_path / "lib")
    try:
        digest = content_hash(photo.read_bytes())
        store.commit_batch([NewImage(str(photo), None, stat.st_size, stat.st_mtime_ns, digest, slot=0),
                            NewImage("/photos/r.jpg", None, 1, 1, _hash(1), slot=1)], run_id=1, next_slot=2)
        search = recent_search(store, photo, [("/photos/r.jpg", 7), ("/gone.jpg", 3)])
        assert search == RecentSearch(digest, str(photo), 0, ((1, 7),))
        assert recent_search(store, tmp_path / "missing.jpg", []) is None
    finally:
        store.close()


# ------------------------------------------------------------------ store and label helpers


def test_photo_hash_uses_the_stored_hash_of_an_unchanged_file_and_hashes_others(tmp_path):
    indexed = tmp_path / "indexed.jpg"
    indexed.write_bytes(b"indexed bytes")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"outside bytes")
    stat = os.stat(indexed)
    store = Store.open(tmp_path / "lib")
    try:
        store.commit_batch([NewImage(str(indexed), None, stat.st_size, stat.st_mtime_ns, "stored-hash", slot=0)],
                           run_id=1, next_slot=1)
        assert photo_hash(store, indexed) == ("stored-hash", True)
        assert photo_hash(store, outside) == (content_hash(b"outside bytes"), False)
        indexed.write_bytes(b"changed bytes, not indexed yet")
        assert photo_hash(store, indexed) == (content_hash(b"changed bytes, not indexed yet"), False)
        with pytest.raises(Exception, match="file not found"):
            photo_hash(store, tmp_path / "missing.jpg")
    finally:
        store.close()


def test_labels_can_be_read_back_with_current_paths_put_back_and_deleted(tmp_path):
    store = Store.open(tmp_path / "lib")
    try:
        store.commit_batch([NewImage("/now/b.jpg", None, 1, 1, "bbb", slot=0)], run_id=1, next_slot=1)
        store.add_label("bbb", "aaa", 1, source="pairs", path_a="/then/b.jpg", path_b="/then/a.jpg")
        (row,) = store.label_rows()
        assert (row.hash_a, row.hash_b, row.label, row.source) == ("aaa", "bbb", 1, "pairs")
        assert (row.path_a, row.path_b, row.current_a, row.current_b) == ("/then/a.jpg", "/then/b.jpg", None, "/now/b.jpg")
        assert store.label("bbb", "aaa") == row and store.label("aaa", "ccc") is None
        store.add_label("aaa", "bbb", -1, source="feedback")
        store.add_label("aaa", "bbb", row.label, source=row.source, created_at=row.created_at)  # undo
        assert store.label("aaa", "bbb") == row
        assert store.label_count() == 1
        assert store.delete_label("bbb", "aaa") and not store.delete_label("aaa", "bbb")
        assert store.label_rows() == [] and store.label_count() == 0
    finally:
        store.close()


def test_export_csv_file_is_atomic_and_reads_back(tmp_path):
    store = Store.open(tmp_path / "lib")
    try:
        store.commit_batch([NewImage(f"/p/{n}.jpg", None, 1, 1, n * 3, slot=i) for i, n in enumerate("abc")],
                           run_id=1, next_slot=3)
        store.add_label("aaa", "bbb", 1, source="pairs")
        store.add_label("ccc", "aaa", -1, source="feedback")
        out = tmp_path / "labels.csv"
        out.write_text("old")
        assert export_csv_file(store, out) == 2
        rows = list(csv.reader(io.StringIO(out.read_text())))
        assert rows == [["a", "b", "label"], ["/p/a.jpg", "/p/b.jpg", "similar"], ["/p/a.jpg", "/p/c.jpg", "dissimilar"]]
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("labels.csv.")] == []
        for row in store.label_rows():
            store.delete_label(row.hash_a, row.hash_b)
        report = import_csv(store, out)
        assert report.problems == [] and report.added == 2
        assert sorted((r.hash_a, r.hash_b, r.label) for r in store.label_rows()) == [("aaa", "bbb", 1), ("aaa", "ccc", -1)]
        with pytest.raises(Exception, match="cannot write"):
            export_csv_file(store, tmp_path / "no-such-folder" / "labels.csv")
    finally:
        store.close()
