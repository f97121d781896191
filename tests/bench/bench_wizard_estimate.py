"""The wizard's time estimate against the time taken: a first run (model built), a re-run, a re-run with new photos.

    .venv/bin/python tests/bench/bench_wizard_estimate.py [--photos 150] [--size 2000x1500] [--workers 2]

Makes a photo folder (synthetic scenes, JPEG), then times what the wizard's index run does,
in the same order (IndexThread): build the default model in an empty cache (a torch
subprocess), install it into a new library, index; index again with nothing changed; add a
fifth more photos and index again. Each is printed next to the estimate the summary page
shows for it (app.index_wizard: engine.index.plan_index, RATE_ESTIMATE, RUN_OVERHEAD_ESTIMATE,
MODEL_BUILD_ESTIMATE).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=150)
    parser.add_argument("--size", default="2000x1500")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    scratch = Path(tempfile.mkdtemp(prefix="lookalike-bench-estimate-"))
    os.environ["LOOKALIKE_CACHE_DIR"] = str(scratch / "cache")  # no default model built yet

    from app.index_wizard import MODEL_BUILD_ESTIMATE, RATE_ESTIMATE, RUN_OVERHEAD_ESTIMATE
    from engine.default_model import build_default_model, default_model_built
    from engine.index import Indexer, plan_index
    from engine.library import Library
    from engine.store import Store
    from tests import photos

    folder = scratch / "photos"
    for i in range(args.photos):
        photos.save(photos.scene(5000 + i, (width, height)), folder / f"p{i:04d}.jpg", quality=90)
    library_path = scratch / "library"

    def estimate(build: bool) -> float:
        store = Store.open(library_path, create=False, readonly=True) if library_path.exists() else None
        try:
            plan = plan_index([str(folder)], store=store)
        finally:
            if store is not None:
                store.close()
        return (MODEL_BUILD_ESTIMATE if build else 0.0) + RUN_OVERHEAD_ESTIMATE + plan.to_read / RATE_ESTIMATE

    def index_run() -> tuple[float, object]:
        started = time.monotonic()
        with Library(library_path, create=True) as library:
            if library.store.active_model() is None:
                library.install_model(build_default_model(64, quiet=True))
            report = Indexer(library, workers=args.workers).run([str(folder)])
        return time.monotonic() - started, report

    print(f"{args.photos} photos of {width}x{height}, {args.workers} decoder processes, {os.cpu_count()} cores")
    print(f"{'run':<28} {'estimated':>10} {'taken':>8}")
    guess = estimate(not default_model_built(64))
    taken, report = index_run()
    print(f"{'first (model built)':<28} {guess:>9.1f}s {taken:>7.1f}s   ({report.added} encoded)")
    guess = estimate(False)
    taken, report = index_run()
    print(f"{'again, nothing changed':<28} {guess:>9.1f}s {taken:>7.1f}s   ({report.unchanged} unchanged)")
    for i in range(args.photos // 5):
        photos.save(photos.scene(9000 + i, (width, height)), folder / f"new{i:04d}.jpg", quality=90)
    guess = estimate(False)
    taken, report = index_run()
    print(f"{'again, a fifth more photos':<28} {guess:>9.1f}s {taken:>7.1f}s   ({report.added} encoded)")
    print(f"(scratch folder: {scratch})")


if __name__ == "__main__":
    main()
