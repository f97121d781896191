"""Library scale: open time, query latency end to end, and memory, at 1e5 and 1e6 photos.

    .venv/bin/python tests/bench/bench_library.py [--sizes 1e5,1e6] [--queries 20]

Builds synthetic libraries (real catalog rows, random unit features and codes from the
default model's head, so the data path is the real one; only the pixels are missing: each
photo is an empty file, since search drops results whose files are gone), then
measures: opening the library and getting ready to search (catalog, live mask, array
maps), a query end to end (decode a 12 MP JPEG, encode, search, look up paths), and the
search alone, with peak RSS. The peer for the query is the decode + encode alone, so the
share that search adds is visible.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import models  # noqa: E402
from engine.codes import codes_from_logits  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.store import NewImage  # noqa: E402


def build(path: Path, model_dir: Path, n: int, chunk: int = 50_000, *, photos: Path | None = None) -> None:
    """``photos``: a folder to hold an empty file for each photo, so that search, which drops
    results that are no longer on disk and photos under roots that are gone, returns them
    (without it the root is the made-up /bench)."""
    rng = np.random.default_rng(0)
    weight, bias = models.read_head(model_dir)
    with Library(path) as lib:
        lib.install_model(model_dir)
        model = lib.active_model()
        root = str(photos) if photos is not None else "/bench"
        root_id = lib.store.add_root(root)
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            # Clustered features, so codes and neighbours look like real ones.
            centres = rng.standard_normal((64, model.feature_dim)).astype(np.float32)
            feats = centres[rng.integers(0, 64, count)] + 0.6 * rng.standard_normal((count, model.feature_dim),
                                                                                  dtype=np.float32)
            feats /= np.linalg.norm(feats, axis=1, keepdims=True)
            codes = codes_from_logits(feats @ weight + bias)
            # as the indexer writes them: rows synced, then committed with their checksums
            sums = lib.store.append_rows(lib.store.arrays_of(model), start, features=feats.astype(np.float16),
                                         codes=codes)
            items = [NewImage(f"{root}/{(start + i) // 1000:04d}/IMG_{start + i:07d}.jpg", root_id, 3_000_000,
                              1_700_000_000_000_000_000, f"{start + i:032x}", 4000, 3000, None, slot=start + i)
                     for i in range(count)]
            if photos is not None:
                for item in items:
                    os.makedirs(os.path.dirname(item.path), exist_ok=True)
                    open(item.path, "wb").close()
            lib.store.commit_batch(items, run_id=1, next_slot=start + count, sums=sums)


def measure_open(path: Path, repeats: int = 5) -> tuple[float, float]:
    """Median seconds to open the library in a fresh process and be ready to search, and the
    memory (MiB) of such a process after 20 searches (no model loaded: search alone): private
    (anonymous) memory, and the feature file's page cache mapped into it (shared, reclaimable:
    the kernel maps cached neighbours of each re-ranked row)."""
    code = (
        "import time, sys, resource; t = time.perf_counter()\n"
        "from engine.library import Library\n"
        f"lib = Library({str(path)!r}, create=False)\n"
        "codes, feats, live = lib.codes(), lib.features(), lib.store.live_mask()\n"
        "opened = time.perf_counter() - t\n"
        "import numpy as np\n"
        "rng = np.random.default_rng(1)\n"
        "for i in range(20):\n"
        "    f = rng.standard_normal(feats.shape[1]).astype(np.float32); f /= np.linalg.norm(f)\n"
        "    lib.search_vector(codes[i * 997 % len(codes)], f)\n"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status') if l.startswith(('RssAnon', 'RssFile')))\n"
        "print(opened, int(status['RssAnon'].split()[0]) / 1024, int(status['RssFile'].split()[0]) / 1024)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(repeats)]
    return (statistics.median(float(r[0]) for r in runs), max(float(r[1]) for r in runs),
            max(float(r[2]) for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e5,1e6")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-libraries")
    args = parser.parse_args()

    from engine.default_model import build_default_model
    from engine.search import SearchParams
    from tests.bench.bench_index import ensure_photos

    model_dir = build_default_model(64)
    queries = ensure_photos(Path(tempfile.gettempdir()) / "lookalike-bench-photos", 8)
    print(f"{os.cpu_count()} cores; numpy {np.__version__}; queries: 12 MP JPEGs")
    print()
    print("| photos | build s | open+ready ms (fresh process) | decode+encode p50 ms | query end to end p50 / p95 ms"
          " | search only p50 ms | search-only process: private / mapped file MiB | peak RSS MiB, this process |")
    print("|---|---|---|---|---|---|---|---|")
    for size in (int(float(s)) for s in args.sizes.split(",")):
        path, photos = args.dir / f"lib-{size}", args.dir / f"photos-{size}"
        start = time.perf_counter()
        if not (path / "catalog.sqlite3").exists() or not photos.is_dir():  # (older builds had no files)
            shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(photos, ignore_errors=True)
            build(path, model_dir, size, photos=photos)
        built = time.perf_counter() - start
        open_s, search_anon, search_file = measure_open(path)
        with Library(path, create=False) as lib:
            params = SearchParams()
            # warm: session, kernel, page cache; and a library whose results were all dropped
            # (files missing) would measure an empty search
            if not lib.search_file(queries[0], params):
                raise SystemExit(f"{path}: the search returned nothing; are the photo files under {photos}?")
            e2e, enc, only = [], [], []
            for i in range(args.queries):
                q = queries[i % len(queries)]
                t0 = time.perf_counter()
                words, feature = lib.encode_file(q)
                t1 = time.perf_counter()
                lib.search_vector(words, feature, params)
                t2 = time.perf_counter()
                enc.append(t1 - t0)
                only.append(t2 - t1)
                e2e.append(t2 - t0)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        p = lambda xs, q: 1000 * float(np.percentile(xs, q))  # noqa: E731
        print(f"| {size:,} | {built:.0f} | {open_s * 1000:.0f} | {p(enc, 50):.0f} | {p(e2e, 50):.0f} / {p(e2e, 95):.0f}"
              f" | {p(only, 50):.1f} | {search_anon:.0f} / {search_file:.0f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
