"""Indexing throughput: end to end against decode-only and encode-only, measured in one run.

    .venv/bin/python tests/bench/bench_index.py [--count 120] [--dir /tmp/lookalike-bench-photos]

Makes (once, then reuses) a folder of 12-megapixel phone-style JPEGs, then measures on all
cores: decode-only images/s (the indexer's worker function in a process pool: read, hash,
draft decode, thumbnail), encode-only images/s (ONNX Runtime alone, all cores), and the
indexer end to end into a fresh library. The pipeline bound is 1 / (1/decode + 1/encode):
the rate if the cores did both jobs back to back with no overhead. Prints peak memory.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import index as index_module  # noqa: E402
from engine.encoder import Encoder  # noqa: E402
from engine.index import Indexer  # noqa: E402
from engine.library import Library  # noqa: E402


def phone_photo(seed: int, path: Path) -> None:
    """A 4000x3000 JPEG of about 3 MB: smooth scene plus sensor-like noise, quality 92."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.integers(-12, 13, (3000, 4000, 1), dtype=np.int16)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=92)


def ensure_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"IMG_{i:04d}.jpg" for i in range(count)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"generating {len(missing)} 12 MP JPEGs in {folder} ...", flush=True)
        with cf.ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(phone_photo, [int(p.stem[4:]) for p in missing], missing))
    return paths


def decode_only(paths: list[Path], model_dir: Path, thumbs: Path, workers: int) -> float:
    from engine.encoder import ModelInfo

    info = ModelInfo.load(model_dir)
    lib = Path(tempfile.mkdtemp()) / "lib"
    Library(lib).close()  # an empty catalog for the workers' hash look-ups
    initargs = (str(lib / "catalog.sqlite3"), info.input_size, info.resize, 256, str(thumbs))
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                initializer=index_module._worker_init, initargs=initargs) as pool:
        list(pool.map(index_module._process_file, [str(paths[0])] * workers))  # warm up workers
        start = time.perf_counter()
        results = list(pool.map(index_module._process_file, map(str, paths), chunksize=1))
        elapsed = time.perf_counter() - start
    assert all(r[0] == "new" for r in results), {r[0] for r in results}
    return len(paths) / elapsed


def encode_only(model_dir: Path, count: int, batch: int) -> float:
    enc = Encoder(model_dir, providers="cpu")  # every core
    size = enc.info.input_size
    pixels = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    enc.encode(pixels)
    start = time.perf_counter()
    done = 0
    while done < count:
        enc.encode(pixels)
        done += batch
    return done / (time.perf_counter() - start)


class PeakRss:
    """Samples the RSS of this process plus its children (decoder workers)."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            total = self.proc.memory_info().rss
            for child in self.proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except Exception:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-photos")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: build/cached default)")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    from engine.default_model import build_default_model

    model_dir = args.model or build_default_model(64)
    paths = ensure_photos(args.dir, args.count)
    cores = os.cpu_count()
    size_mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"{len(paths)} JPEGs of 4000x3000, {size_mb:.1f} MB each; {cores} cores; "
          f"model {model_dir.name}")

    thumbs = Path(tempfile.mkdtemp())
    decode_rate = decode_only(paths, model_dir, thumbs, cores)
    shutil.rmtree(thumbs)
    encode_rate = encode_only(model_dir, max(256, args.count * 2), args.batch)
    bound = 1 / (1 / decode_rate + 1 / encode_rate)

    libdir = Path(tempfile.mkdtemp()) / "lib"
    with Library(libdir) as lib:
        lib.install_model(model_dir)
        with PeakRss() as rss:
            start = time.perf_counter()
            report = Indexer(lib, batch_size=args.batch).run([args.dir])
            elapsed = time.perf_counter() - start
    assert report.added == len(paths), report
    e2e = len(paths) / elapsed

    print()
    print("| measure | images/s |")
    print("|---|---|")
    print(f"| decode only ({cores} processes: read, hash, draft decode, thumbnail) | {decode_rate:.1f} |")
    print(f"| encode only (ONNX Runtime, CPU, {cores} threads, batch {args.batch}) | {encode_rate:.1f} |")
    print(f"| pipeline bound 1/(1/decode + 1/encode) | {bound:.1f} |")
    print(f"| indexer end to end (walk, decode, encode, store, commit) | {e2e:.1f} |")
    print(f"\nend to end / bound = {e2e / bound:.2f} (target >= 0.85)")
    print(f"peak RSS while indexing (main + workers): {rss.peak / 2**20:.0f} MiB; "
          f"main process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    shutil.rmtree(libdir.parent)


if __name__ == "__main__":
    main()
