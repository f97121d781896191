"""Refining results at once: the engine call the window makes when a tile is marked, at 1e5 photos.

    .venv/bin/python tests/bench/bench_refine.py [--size 100000] [--queries 30] [--dir DIR]

On bench_library's synthetic library (real catalog rows, code and feature arrays; empty files
for photos, so that results count as on disk)
plus a second version of the same model whose manifest re-ranks by code, each query is a
stored photo (Library.example_from_slot, what a result tile gives the window), refined by
examples taken from its own results: 3 marked similar and 3 dissimilar, then 10 and 10.
The clock covers what the window would do on a mark: read the marked photos' stored arrays
(example_from_slot) and Library.search_query (coarse union of pools, fine stage, paths).
Both backends: numba (the window warms it up at start) and numpy (a fresh CLI process).
The peer is the plain search of the same photo.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import models  # noqa: E402
from engine import search as engine_search  # noqa: E402
from engine.library import Library, Query  # noqa: E402
from engine.search import SearchParams  # noqa: E402
from tests.bench.bench_library import build  # noqa: E402


def ensure_code_version(path: Path) -> tuple[int, int]:
    """(features version, code version): the default model as built, and a copy that re-ranks by code."""
    with Library(path, create=False) as lib:
        versions = lib.store.models()
        first = versions[0]
        coded = [m for m in versions if m.manifest.get("rerank") == "code"]
        if coded:
            return first.id, coded[0].id
        weight, bias = lib.head(first)
        with lib.store.work_dir() as tmp:
            models.write_with_head(lib.store.model_dir(first.id), tmp / "model", weight, bias,
                                   {"name": "bench-code", "rerank": "code"})
            row = lib.install_model(tmp / "model", activate=False)
        return first.id, row.id


def timings(lib: Library, queries: list[int], like: int, unlike: int, k: int) -> tuple[list[float], list[float]]:
    """(plain search ms, refined search ms incl. reading the marked photos) per query."""
    plain, refined = [], []
    params = SearchParams(k=k)
    for slot in queries:
        start = time.perf_counter()
        query = Query((lib.example_from_slot(slot),))
        hits = lib.search_query(query, params)
        plain.append(1000 * (time.perf_counter() - start))
        marked_like = [h.slot for h in hits[1:1 + like]]
        marked_unlike = [h.slot for h in hits[1 + like:1 + like + unlike]]
        start = time.perf_counter()
        query = query.refined(like=[lib.example_from_slot(s) for s in marked_like],
                              unlike=[lib.example_from_slot(s) for s in marked_unlike])
        lib.search_query(query, params)
        refined.append(1000 * (time.perf_counter() - start))
    return plain, refined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--k", type=int, default=50, help="results shown (the window's default is 50)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-libraries")
    args = parser.parse_args()

    from engine.default_model import build_default_model

    path = args.dir / f"lib-{args.size}"
    if not (path / "catalog.sqlite3").exists():
        # the photos as empty files: search leaves out results no longer on disk
        build(path, build_default_model(64), args.size, photos=args.dir / f"photos-{args.size}")
    features_version, code_version = ensure_code_version(path)
    rng = np.random.default_rng(2)
    queries = [int(s) for s in rng.choice(args.size, args.queries, replace=False)]
    print(f"{args.size:,} photos, {args.queries} queries, k = {args.k}; medians (p95) in ms")
    print()
    print("| backend | version re-ranks by | plain search | 3 similar + 3 dissimilar marked | 10 + 10 marked |")
    print("|---|---|---|---|---|")
    for backend in ("numba", "numpy"):
        engine_search.set_backend(backend)
        if backend == "numba":
            engine_search.warm_up()
        for version, space in ((features_version, "features"), (code_version, "code")):
            with Library(path, create=False) as lib:
                lib.store.activate(version)
                timings(lib, queries[:3], 3, 3, args.k)  # warm: page cache, head arrays
                plain, three = timings(lib, queries, 3, 3, args.k)
                _, ten = timings(lib, queries, 10, 10, args.k)
            cell = lambda xs: f"{statistics.median(xs):.1f} ({np.percentile(xs, 95):.1f})"  # noqa: E731
            print(f"| {backend} | {space} | {cell(plain)} | {cell(three)} | {cell(ten)} |")
    with Library(path, create=False) as lib:
        lib.store.activate(features_version)


if __name__ == "__main__":
    main()
