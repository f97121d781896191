"""Instant feedback on the person's case: marking results similar / dissimilar, no training.

    .venv/bin/python tests/bench/bench_feedback.py --dir DIR [--queries 200] [--variants]

DIR is bench_person.py's folder (its indexed library, DIR/library.indexed, is copied; the
zero-label model, nothing trained). For each unseen query: `lookalike search --json -k 21 Q`
(one call for all queries), then the first 3 results of the query's kind and the first 3 of
another kind among its top 20 are marked, and `lookalike search --json -k 101 --like A
--like B --like C --unlike D --unlike E --unlike F Q` runs (one call per query: each has its
own marks). mAP@100 of both rankings, relevant = same Fashion-MNIST class, the query and the
six marked photos left out of both, so the figure is about the photos not marked yet.

--variants adds in-process comparisons through engine.search.search_probe (the function the
CLI ends in): Rocchio weights, the coarse stage (the query's own Hamming pool against the
union with the similar examples' pools, at a small pool that stands for a large library),
and several query photos (their mean vector against the minimum of their cosines).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_person import average_precision, cli  # noqa: E402

MARKS = 3


def person_photos(folder: Path, photos: int = 3000, labelled: int = 1000, queries: int = 200):
    """bench_person's photos (same seed and order): classes, and the unseen queries."""
    from trainer.data import load_fashion_mnist

    _, labels = load_fashion_mnist()
    chosen = np.random.default_rng(0).choice(len(labels), photos, replace=False)
    classes = {str(folder / "photos" / f"{n // 500:02d}" / f"item_{i:05d}.png"): int(labels[i])
               for n, i in enumerate(chosen)}
    paths = list(classes)
    return classes, paths[labelled:labelled + queries]


def marks(ranked: list[str], kind: int, classes: dict[str, int]) -> tuple[list[str], list[str]]:
    top = ranked[:20]
    return ([p for p in top if classes[p] == kind][:MARKS], [p for p in top if classes[p] != kind][:MARKS])


def cli_feedback(env, classes, queries) -> tuple[float, float, float, int]:
    """(mAP@100 before, after, median seconds per refined call, queries with both kinds of marks)."""
    first = {}
    for start in range(0, len(queries), 100):
        for line in cli(env, "search", "--json", "-k", "101", *queries[start:start + 100]).stdout.splitlines():
            answer = json.loads(line)
            first[answer["query"]] = [r["path"] for r in answer["results"] if r["path"] != answer["query"]]
    before, after, seconds, both = [], [], [], 0
    for query in queries:
        like, unlike = marks(first[query], classes[query], classes)
        both += bool(like and unlike)
        left_out = {query, *like, *unlike}
        args = [a for p in like for a in ("--like", p)] + [a for p in unlike for a in ("--unlike", p)]
        started = time.monotonic()
        answer = json.loads(cli(env, "search", "--json", "-k", "101", *args, query).stdout)
        seconds.append(time.monotonic() - started)
        refined = [r["path"] for r in answer["results"] if r["path"] not in left_out]
        assert not set(unlike) & {r["path"] for r in answer["results"]}
        before.append(average_precision([p for p in first[query] if p not in left_out], classes[query], classes))
        after.append(average_precision(refined, classes[query], classes))
    return float(np.mean(before)), float(np.mean(after)), float(np.median(seconds)), both


def variants(lib_dir: Path, classes: dict[str, int], queries: list[str]) -> None:
    """In-process comparisons of the choices behind the shipped method, over the same queries."""
    from engine.library import Library
    from engine.search import FeatureSpace, Probe, SearchParams, search_probe

    with Library(lib_dir, create=False) as lib:
        codes, features = lib.codes(), np.asarray(lib.features(), np.float32)
        path_of = lib.store.paths_for_slots(lib.store.live_slots())
    slot_of = {p: s for s, p in path_of.items()}
    space = FeatureSpace()

    def ranked(probe: Probe, pool: int) -> list[str]:
        result = search_probe(codes, features, probe, SearchParams(k=101, pool=pool), space=space)
        return [path_of[int(s)] for s in result.slots]

    def feedback(weights, pool: int, union: bool) -> tuple[float, float]:
        before, after = [], []
        for query in queries:
            q = slot_of[query]
            plain = Probe(codes[[q]], features[q], features[q])
            first = [p for p in ranked(plain, pool) if p != query]
            like, unlike = marks(first, classes[query], classes)
            left_out = {query, *like, *unlike}
            a, b, c = weights  # engine.search.refined_vector's, spelled out to vary them
            like_f = features[[slot_of[p] for p in like]] if like else None
            unlike_f = features[[slot_of[p] for p in unlike]] if unlike else None
            vector = a * features[q]
            if like_f is not None:
                vector = vector + b * like_f.mean(axis=0)
            if unlike_f is not None:
                vector = vector - c * unlike_f.mean(axis=0)
            seeds = [q] + ([slot_of[p] for p in like] if union else [])
            probe = Probe(codes[seeds], vector / np.linalg.norm(vector), features[q],
                          exclude=np.array([slot_of[p] for p in unlike], dtype=np.int64))
            after.append(average_precision([p for p in ranked(probe, pool) if p not in left_out],
                                           classes[query], classes))
            before.append(average_precision([p for p in first if p not in left_out], classes[query], classes))
        return float(np.mean(before)), float(np.mean(after))

    print("\nRocchio weights (query, similar, dissimilar), default pool, union of pools:")
    print("| weights | before | after | lift |\n|---|---|---|---|")
    for weights in ((1, 1, 1), (1, 0.75, 0.15), (1, 1, 0.5), (1, 1.5, 1.5), (1, 1, 0), (1, 0, 1)):
        b, a = feedback(weights, None, True)
        print(f"| {weights} | {b:.3f} | {a:.3f} | {a - b:+.3f} |")
    print("\nCoarse stage at a pool of 200 (a library where the pool is a small share), weights (1, 1, 1):")
    print("| candidates | before | after | lift |\n|---|---|---|---|")
    for union in (False, True):
        b, a = feedback((1, 1, 1), 200, union)
        print(f"| {'union of the query and similar examples pools' if union else 'the query pool only'} | "
              f"{b:.3f} | {a:.3f} | {a - b:+.3f} |")

    print("\nSeveral query photos (3 of one class; mAP@100 with the three left out), 300 trials:")
    rng = np.random.default_rng(1)
    every = [p for p in classes if p in slot_of]
    scores = {"one photo": [], "mean vector (shipped)": [], "minimum of the cosines": []}
    for _ in range(300):
        first = every[rng.integers(len(every))]
        same = [p for p in every if classes[p] == classes[first] and p != first]
        group = [first, *rng.choice(same, 2, replace=False)]
        slots = [slot_of[p] for p in group]
        vectors = features[slots]
        pool = search_probe(codes, features, Probe(codes[slots], vectors.mean(axis=0), vectors[0]),
                            SearchParams(k=2000), space=space).slots
        cosines = features[pool] @ vectors.T
        for name, score in (("one photo", cosines[:, 0]), ("mean vector (shipped)", cosines.mean(axis=1)),
                            ("minimum of the cosines", cosines.min(axis=1))):
            order = [path_of[int(s)] for s in pool[np.argsort(-score, kind="stable")] if path_of[int(s)] not in group]
            scores[name].append(average_precision(order, classes[first], classes))
    print("| query | mAP@100 |\n|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="bench_person.py's --dir (indexed once there)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--variants", action="store_true", help="also the in-process comparisons")
    args = parser.parse_args()
    pristine = args.dir / "library.indexed"
    if not pristine.exists():
        raise SystemExit(f"{pristine} is missing: run tests/bench/bench_person.py --dir {args.dir} first")
    library = args.dir / "feedback-library"
    shutil.rmtree(library, ignore_errors=True)
    shutil.copytree(pristine, library)
    classes, queries = person_photos(args.dir, queries=args.queries)
    env = dict(os.environ, LOOKALIKE_LIBRARY=str(library))
    before, after, seconds, both = cli_feedback(env, classes, queries)
    print(f"{len(queries)} unseen queries, zero-label model; {MARKS} same-kind and {MARKS} other-kind photos marked "
          f"among each query's top 20 ({both} queries had both kinds)\n")
    print("| `lookalike search` | mAP@100, marked photos left out |\n|---|---|")
    print(f"| plain | {before:.3f} |\n| `--like` x3 `--unlike` x3 | {after:.3f} |")
    print(f"\nlift {after - before:+.3f} (target +0.06); a refined search took {seconds:.2f} s from process start "
          "(median)")
    if args.variants:
        variants(library, classes, queries)


if __name__ == "__main__":
    main()
