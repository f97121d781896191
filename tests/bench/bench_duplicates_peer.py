"""Duplicate groups against a peer, czkawka's similar-image finder, on one folder of photos with planted copies.

    PYTHONPATH=. python tests/bench/bench_duplicates_peer.py [--folder DIR] [--seed 2]

The folder (tests/bench/duplicate_photos.py): generated scenes and upscaled Fashion-MNIST
garments (look-alikes of one kind that are not copies); some of them with five edited copies
each (resized to 60%, JPEG quality 60, PNG, EXIF-rotated, 5% cropped off every side) and a
byte copy. Pairwise precision and recall against the true copy pairs; time from process start
(Lookalike: `index`, then `duplicates --json`, each a fresh process, the default model already
built; czkawka: its scan in this process). Seed 1 is the set the thresholds were calibrated on;
the default seed 2 is held out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.duplicate_photos import make_photo_set, pair_scores  # noqa: E402


def run_lookalike(folder: Path, library: Path, strictness: str) -> tuple[list[list[str]], float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "app.cli", "index", "--library", str(library), "-q", str(folder)],
                   env=env, check=True)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "app.cli", "duplicates", "--library", str(library), "--json",
                          "--strictness", strictness], env=env, check=True, capture_output=True, text=True).stdout
    t_dup = time.perf_counter() - t0
    groups = [[g["keep"], *g["others"]] for g in map(json.loads, out.splitlines())]
    return groups, t_index, t_dup


def run_czkawka(folder: Path, level: int) -> tuple[list[list[str]], float]:
    from czkawka import ImageSimilarity

    t0 = time.perf_counter()
    finder = ImageSimilarity()
    finder.set_directories([folder])
    finder.set_similarity(level)
    groups = [[str(p) for p in group] for group in finder.find_similar()]
    return groups, time.perf_counter() - t0


def sweep(library: Path, truth) -> None:
    from engine import duplicates
    from engine.library import Library

    with Library(library, create=False) as lib:
        for edge in (0.85, 0.86, 0.88, 0.90, 0.92):
            for group in (0.75, 0.80, 0.84):
                duplicates.STRICTNESS["sweep"] = duplicates.Strictness("sweep", 8, edge, group)
                groups = [g.paths for g in duplicates.find_duplicates(lib, "sweep")]
                scores = pair_scores(groups, truth)
                print(f"edge {edge:.2f} group {group:.2f}: precision {scores['precision']:.3f} "
                      f"recall {scores['recall']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="where to write the photos (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--fashion", type=int, default=100)
    parser.add_argument("--copied", type=int, default=60)
    parser.add_argument("--czkawka-levels", default="5,10,15,20")
    parser.add_argument("--sweep", action="store_true",
                        help="also Lookalike's near level over a grid of (edge, group) cosines: how they were set")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = (args.folder or Path(tmp) / "photos").resolve()
        files, truth = make_photo_set(folder, scenes=args.scenes, fashion=args.fashion, copied=args.copied,
                                      seed=args.seed)
        print(f"{len(files)} photos, {len(truth)} true copy pairs, seed {args.seed}")
        library = Path(tmp) / "library"
        for strictness in ("near", "similar", "exact"):
            groups, t_index, t_dup = run_lookalike(folder, library, strictness)
            print(json.dumps({"tool": "lookalike", "strictness": strictness, **pair_scores(groups, truth),
                              "index_s": round(t_index, 2), "duplicates_s": round(t_dup, 2)}), flush=True)
        if args.sweep:
            sweep(library, truth)
        for level in (int(x) for x in args.czkawka_levels.split(",")):
            groups, elapsed = run_czkawka(folder, level)
            print(json.dumps({"tool": "czkawka", "similarity": level, **pair_scores(groups, truth),
                              "scan_s": round(elapsed, 2)}), flush=True)


if __name__ == "__main__":
    main()
