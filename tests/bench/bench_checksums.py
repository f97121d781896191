"""What the array checksums cost: first-use check of the codes, per search, per batch, and a full check of the features.

    .venv/bin/python tests/bench/bench_checksums.py [--size 1e6] [--repeats 7]

Uses bench_library's synthetic library of that size (built there if missing: real catalog
rows and arrays with their checksums, as the indexer writes them). Peers, measured in the
same run: reading the codes without the check (what a search did before checksums), and the
batch's own write and fsync.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import arrays  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.store import NewImage  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1e6")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-libraries")
    args = parser.parse_args()
    size = int(float(args.size))

    from engine.default_model import build_default_model
    from tests.bench.bench_library import build

    path = args.dir / f"lib-{size}"
    if not (path / "catalog.sqlite3").exists():
        build(path, build_default_model(64), size)

    block = np.random.default_rng(0).integers(0, 256, 256 << 20, dtype=np.uint8)
    crc_gbs = block.nbytes / (median_ms(lambda: zlib.crc32(block), 3) / 1000) / 1e9
    print(f"zlib.crc32: {crc_gbs:.1f} GB/s")

    with Library(path, create=False) as lib:
        model = lib.active_model()
        codes_path = lib.store.codes_path(model.id)
        features_path = lib.store.features_path(model.backbone_id)
        n = lib.store.next_slot
        lib.codes()  # page cache warm for both sides

        def first_use():
            fresh = Library(path, create=False)
            fresh.codes()
            fresh.close()

        def open_only():
            Library(path, create=False).close()

        first = median_ms(first_use, args.repeats) - median_ms(open_only, args.repeats)
        read_unchecked = median_ms(lambda: arrays.read_rows(codes_path, np.uint64, model.words, lib.store.next_slot),
                                   args.repeats * 20)
        read_checked = median_ms(lib.codes, args.repeats * 20)
        verify_features = median_ms(lambda: lib.store.verify_array(lib.store.arrays_of(model).features),
                                    max(3, args.repeats // 2))
        feature_gb = n * model.feature_dim * 2 / 1e9
        print(f"{n:,} photos, {model.bits}-bit codes, {model.feature_dim}-d float16 features ({feature_gb:.2f} GB)")
        print(f"codes checked on first use (fresh Library, minus opening it): {first:.1f} ms")
        print(f"codes() per search, nothing appended since: {read_checked * 1000:.0f} us "
              f"(peer: mapping them unchecked {read_unchecked * 1000:.0f} us)")
        print(f"features, full check (repair --check): {verify_features:.0f} ms "
              f"({feature_gb / (verify_features / 1000):.1f} GB/s)")

    # Per batch: the indexer's 32 photos, on a scratch library (the big one stays as built).
    with tempfile.TemporaryDirectory() as scratch, Library(Path(scratch) / "lib") as lib:
        lib.install_model(build_default_model(64))
        model = lib.active_model()
        codes_path, features_path = lib.store.codes_path(model.id), lib.store.features_path(model.backbone_id)
        rng = np.random.default_rng(1)
        writes, sums_times = [], []
        for _ in range(4 * args.repeats):
            first = lib.store.next_slot
            codes = rng.integers(0, 1 << 63, (32, model.words), dtype=np.uint64)
            features = rng.standard_normal((32, model.feature_dim)).astype(np.float16)
            t0 = time.perf_counter()
            arrays.write_rows(codes_path, first, codes)
            arrays.write_rows(features_path, first, features)
            t1 = time.perf_counter()
            model_arrays = lib.store.arrays_of(model)
            sums = (lib.store.sums_for_write(model_arrays.codes, first, codes)
                    + lib.store.sums_for_write(model_arrays.features, first, features))
            t2 = time.perf_counter()
            items = [NewImage(f"/b/{first + i}", None, 1, 1, f"{first + i:032x}", slot=first + i) for i in range(32)]
            lib.store.commit_batch(items, 1, first + 32, sums)
            writes.append(t1 - t0)
            sums_times.append(t2 - t1)
        print(f"a batch of 32 photos: checksums {1000 * statistics.median(sums_times):.2f} ms "
              f"(peer: the batch's write + fsync of both arrays {1000 * statistics.median(writes):.2f} ms)")


if __name__ == "__main__":
    main()
