"""Duplicate groups at scale: the multi-index self-join, verification and grouping on synthetic codes
with planted copies (time, peak memory, recall), and radius search through the same index against
the linear scan.

    PYTHONPATH=. python tests/bench/bench_duplicates.py --sizes 100000,1000000 --radius-at 10000000

Items: random 64-bit codes and random unit features (D=64, float16, as the library stores them).
Planted: 2% of the items are originals with 1-3 copies each (about 4% of the items are copies),
each copy 0-6 code bits away from its original and its feature the original's plus noise
(cosine about 0.97), scattered through the slots. Recall of planted pairs: every pair within a
planted group (original-copy and copy-copy) that ends in one group. Join check: for a sample of
items, the pairs a brute-force scan finds within the radius and above the edge cosine, against
the pairs the multi-index join reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from engine import duplicates as D  # noqa: E402
from engine import search  # noqa: E402

DIM = 64


def _plant_groups(rng, n: int):
    """2% of the n items get 1-3 copies each, at random slots: (group id per item, -1 for
    singletons; the originals' slots; the copies' slots; each copy's original, by index)."""
    group = np.full(n, -1, np.int64)
    originals = int(n * 0.02)
    copies_per = rng.integers(1, 4, originals)
    slots = rng.permutation(n)[: originals + int(copies_per.sum())]
    source, copy_slots = slots[:originals], slots[originals:]
    owner = np.repeat(np.arange(originals), copies_per)
    group[source] = np.arange(originals)
    group[copy_slots] = owner
    return group, source, copy_slots, owner


def _copy_features(rng, features: np.ndarray, originals: np.ndarray, copy_slots: np.ndarray) -> None:
    """Each copy's (unit) feature: its original's plus noise of norm 0.25, made unit again."""
    noise = rng.standard_normal((copy_slots.size, features.shape[1]), dtype=np.float32)
    noise *= 0.25 / np.linalg.norm(noise, axis=1, keepdims=True)
    copied = features[originals] + noise
    features[copy_slots] = copied / np.linalg.norm(copied, axis=1, keepdims=True)


def synthetic(n: int, seed: int = 0):
    """(codes (n, 1) uint64, features (n, DIM) float16, group id per item: -1 for singletons)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, (n, 1), dtype=np.uint64, endpoint=True)
    features = rng.standard_normal((n, DIM), dtype=np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    group, source, copy_slots, owner = _plant_groups(rng, n)
    total_copies = copy_slots.size
    base = codes[source[owner], 0]
    flips = rng.integers(0, 7, total_copies)
    for k in range(1, 7):
        rows = np.flatnonzero(flips >= k)
        bits = rng.integers(0, 64, rows.size).astype(np.uint64)
        base[rows] ^= np.uint64(1) << bits  # a repeated bit flips back: 0-6 bits in all
    codes[copy_slots, 0] = base
    _copy_features(rng, features, source[owner], copy_slots)
    return codes, features.astype(np.float16), group


def synthetic_clustered(n: int, seed: int = 0, dim: int = 256):
    """As ``synthetic``, but features from bench_search's clustered generator (1,000 clusters, each
    varying along a 32-dim subspace: look-alikes crowd together) and 64-bit ITQ codes computed from
    them, copies included: the codes are as clustered as a library's, and a copy's code differs by
    whatever its feature noise flips."""
    from tests.bench.bench_search import encode, fit_itq
    from tests.bench.bench_search import synthetic as clustered

    rng = np.random.default_rng(seed)
    features = clustered(n, dim, 1000, seed).astype(np.float32)
    group, source, copy_slots, owner = _plant_groups(rng, n)
    _copy_features(rng, features, source[owner], copy_slots)
    features = features.astype(np.float16)
    sample = features[rng.choice(n, min(n, 50_000), replace=False)].astype(np.float32)
    codes = encode(features, *fit_itq(sample, 64, seed))
    return codes, features, group


def planted_recall(groups, group_of: np.ndarray) -> tuple[float, int]:
    """Share of the planted pairs (both items in one planted group) found inside one found group."""
    found_id = np.full(group_of.size, -1, np.int64)
    for g, (rows, _) in enumerate(groups):
        found_id[rows] = g
    planted = group_of >= 0
    true_pairs = found_pairs = 0
    order = np.argsort(group_of[planted], kind="stable")
    rows = np.flatnonzero(planted)[order]
    ids = group_of[rows]
    bounds = np.flatnonzero(np.diff(ids)) + 1
    for members in np.split(rows, bounds):
        k = members.size
        true_pairs += k * (k - 1) // 2
        labels = found_id[members]
        labels = labels[labels >= 0]
        if labels.size:
            _, counts = np.unique(labels, return_counts=True)
            found_pairs += int((counts * (counts - 1) // 2).sum())
    return found_pairs / max(true_pairs, 1), true_pairs


def join_check(codes, features, i, j, strictness, sample: int, seed: int = 1) -> tuple[float, int, int]:
    """Recall of the join + verification against brute force on ``sample`` items, and wrong pairs."""
    n = codes.shape[0]
    reported = set((i.astype(np.int64) * n + j).tolist())
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, sample, replace=False)
    radius = strictness.radius_for(64)
    expected = 0
    hits = 0
    for a in rows:
        dist = np.bitwise_count(codes[:, 0] ^ codes[a, 0])
        near = np.flatnonzero(dist <= radius)
        near = near[near != a]
        for b in near:
            lo, hi = (a, b) if a < b else (b, a)
            expected += 1
            hits += (lo * n + hi) in reported
    return hits / max(expected, 1), expected, hits


def bench_groups(n: int, strictness_name: str, sample: int, clustered: bool = False) -> dict:
    codes, features, group_of = (synthetic_clustered if clustered else synthetic)(n)
    strictness = D.STRICTNESS[strictness_name]
    D._kernels()  # numba's load is a fixed start-up cost, not the join's
    tracemalloc.start()
    t0 = time.perf_counter()
    index = D.MultiIndex(codes, strictness.radius_for(64))
    t_build = time.perf_counter() - t0
    i, j, _ = index.pairs()
    t_join = time.perf_counter() - t0 - t_build
    score = D.pair_cosines(features, i, j)
    keep = score >= strictness.edge_cosine
    groups = D.complete_link_groups(features, i[keep], j[keep], score[keep], strictness.group_cosine)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    recall, planted_pairs = planted_recall(groups, group_of)
    join_recall, expected, hits = join_check(codes, features, i, j, strictness, sample)
    return {"n": n, "data": "clustered" if clustered else "uniform", "strictness": strictness_name, "tables": len(index.plan.tables),
            "probe_radius": index.plan.probe_radius, "candidates_within_radius": int(i.size),
            "edges": int(keep.sum()), "groups": len(groups), "build_s": round(t_build, 2),
            "join_s": round(t_join, 2), "total_s": round(elapsed, 2), "peak_traced_mb": round(peak / 1e6),
            "planted_pair_recall": round(recall, 4), "planted_pairs": planted_pairs,
            "join_recall_vs_brute_force": round(join_recall, 4), "sampled_pairs": expected,
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)}


def bench_radius(n: int, radius: int, queries: int) -> dict:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**64 - 1, (n, 1), dtype=np.uint64, endpoint=True)
    # queries near stored codes, so each has answers
    picks = rng.choice(n, queries, replace=False)
    query = codes[picks].copy()
    query[:, 0] ^= np.uint64(1) << rng.integers(0, 64, queries).astype(np.uint64)
    search.set_backend("numba")
    search.hamming_within(codes, query[0], radius)  # load the kernels before timing
    t0 = time.perf_counter()
    index = D.MultiIndex(codes, radius)
    build = time.perf_counter() - t0
    index.within(query[0])
    times_mih, times_scan = [], []
    agree = True
    for q in query:
        t = time.perf_counter()
        rows, dist = index.within(q)
        times_mih.append(time.perf_counter() - t)
        t = time.perf_counter()
        slots, sdist = search.hamming_within(codes, q, radius)
        times_scan.append(time.perf_counter() - t)
        agree &= rows.tolist() == slots.tolist()
    return {"n": n, "radius": radius, "tables": len(index.plan.tables), "probe_radius": index.plan.probe_radius,
            "build_s": round(build, 2), "mih_ms_p50": round(1e3 * float(np.median(times_mih)), 3),
            "scan_ms_p50": round(1e3 * float(np.median(times_scan)), 3), "same_results": bool(agree),
            "queries": queries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--strictness", default="near", choices=["near", "similar"])
    parser.add_argument("--sample", type=int, default=2000, help="items checked against brute force")
    parser.add_argument("--radius-at", type=int, default=10_000_000, help="codes for the radius search (0: skip)")
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--clustered", action="store_true",
                        help="clustered features and their ITQ codes instead of uniform random codes")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    for n in (int(float(s)) for s in args.sizes.split(",")):
        print(bench_groups(n, args.strictness, args.sample, args.clustered), flush=True)
    if args.radius_at:
        for radius in sorted({4, args.radius}):
            print(bench_radius(args.radius_at, radius, 200), flush=True)


if __name__ == "__main__":
    main()
