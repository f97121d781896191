"""The person's case: a library of Fashion-MNIST photos, ~1,000 of them labelled through pairs.

    .venv/bin/python tests/bench/bench_person.py [--photos 3000] [--labelled 1000] [--pairs 4000]
        [--mode full] [--train-args '--epochs 8'] [--config '{"steps": 3000}'] [--dir DIR]

Writes the photos as PNG files, indexes them with the CLI (zero-label default: ITQ on the
library's own features), imports a CSV of pairs among the labelled photos (half similar),
runs `lookalike train` with its defaults, and reports mAP@100 of Hamming ranking for
queries the labels never mention, before and after, with the float cosine ranking of the
same features as the peer. Everything goes through the real CLI and library.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.library import Library  # noqa: E402
from trainer.data import load_fashion_mnist  # noqa: E402
from trainer.evaluate import mean_average_precision  # noqa: E402


def cli(env, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lookalike {' '.join(args)} failed: {proc.stderr}")
    return proc


def measure(lib_dir: Path, classes: dict[str, int], queries: list[str], database: list[str]) -> tuple[float, float]:
    with Library(lib_dir, create=False) as lib:
        codes, features = lib.codes(), lib.features()
        slot = {p: lib.store.image_by_path(p).slot for p in queries + database}
    q = [slot[p] for p in queries]
    d = [slot[p] for p in database]
    ql = np.array([classes[p] for p in queries])
    dl = np.array([classes[p] for p in database])
    hamming = mean_average_precision(codes[q], codes[d], ql, dl, topk=100)
    cosine = mean_average_precision(None, None, ql, dl, topk=100, query_features=np.asarray(features[q], np.float32),
                                    db_features=np.asarray(features[d], np.float32))
    return hamming, cosine


def train_in_process(lib_dir: Path, fields: dict, method: str | None, mode: str | None) -> list[dict]:
    """`train --force` with config fields the CLI does not expose."""
    from trainer.fit import HeadConfig
    from trainer.full import FullConfig
    from trainer.library_train import train_library, train_library_full

    events: list[dict] = []
    config_class, train = (FullConfig, train_library_full) if mode == "full" else (HeadConfig, train_library)
    with Library(lib_dir, create=False) as lib:
        config = config_class(bits=lib.active_model().bits, **({"method": method} if method else {}), **fields)
        train(lib, config, activate="always", progress=events.append)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=3000)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--method", default=None, help="train --method (default: the CLI's default)")
    parser.add_argument("--mode", default=None, help="train --mode (default: the CLI's default)")
    parser.add_argument("--train-args", default="", help="more arguments for train, e.g. '--epochs 4'")
    parser.add_argument("--config", default=None, metavar="JSON",
                        help='train in-process with these HeadConfig (or, with --mode full, FullConfig) fields, '
                             'e.g. \'{"head_lr_scale": 30}\' (the sweeps in docs/TRAINING.md)')
    parser.add_argument("--dir", type=Path, default=Path(tempfile.mkdtemp(prefix="lookalike-person-")))
    args = parser.parse_args()

    images, labels = load_fashion_mnist()
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(labels), args.photos, replace=False)
    photos = args.dir / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    classes: dict[str, int] = {}
    for n, index in enumerate(chosen):
        path = photos / f"{n // 500:02d}" / f"item_{index:05d}.png"
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            Image.fromarray(images[index]).resize((112, 112), Image.Resampling.BICUBIC).save(path)
        classes[str(path)] = int(labels[index])
    paths = list(classes)
    labelled = paths[: args.labelled]
    queries = paths[args.labelled: args.labelled + args.queries]
    database = paths[args.labelled + args.queries:]

    env = dict(os.environ, LOOKALIKE_LIBRARY=str(args.dir / "library"))
    # Indexing takes minutes: a run in the same --dir starts again from the indexed library.
    pristine = args.dir / "library.indexed"
    started = time.monotonic()
    if pristine.exists():
        shutil.rmtree(args.dir / "library", ignore_errors=True)
        shutil.copytree(pristine, args.dir / "library")
    else:
        cli(env, "index", "-q", str(photos))
        shutil.copytree(args.dir / "library", pristine)
    index_s = time.monotonic() - started
    before, cosine = measure(args.dir / "library", classes, queries, database)

    lines = ["a,b,label"]
    similar = dissimilar = 0
    while similar + dissimilar < args.pairs:
        a, b = rng.choice(len(labelled), 2, replace=False)
        same = classes[labelled[a]] == classes[labelled[b]]
        if same and similar < args.pairs // 2:
            similar += 1
        elif not same and dissimilar < args.pairs // 2:
            dissimilar += 1
        else:
            continue
        lines.append(f"{labelled[a]},{labelled[b]},{'similar' if same else 'dissimilar'}")
    (args.dir / "pairs.csv").write_text("\n".join(lines) + "\n")
    cli(env, "labels", "import", str(args.dir / "pairs.csv"))

    started = time.monotonic()
    train_args = (["train", "--progress", "json"] + (["--method", args.method] if args.method else [])
                  + (["--mode", args.mode] if args.mode else []) + args.train_args.split())
    if args.config is not None:
        events = train_in_process(args.dir / "library", json.loads(args.config), args.method, args.mode)
    else:
        events = [json.loads(line) for line in cli(env, *train_args).stdout.splitlines()]
    (args.dir / "train-events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    train_s = time.monotonic() - started
    after, cosine_after = measure(args.dir / "library", classes, queries, database)
    done = events[-1]

    print(f"{args.photos} photos ({index_s:.0f} s to index), {args.labelled} labelled through "
          f"{similar} similar + {dissimilar} dissimilar pairs; {len(queries)} unseen queries, "
          f"{len(database)} database photos")
    print()
    print("| ranking | mAP@100 |")
    print("|---|---|")
    print(f"| float cosine on the features (peer) | {cosine:.3f} |")
    print(f"| zero-label default codes (Hamming) | {before:.3f} |")
    print(f"| after `lookalike train` ({done['name']}, {train_s:.0f} s) | {after:.3f} |")
    print(f"| float cosine on the features after training | {cosine_after:.3f} |")
    print(f"\ngain {after - before:+.3f} (target +0.10 within 5 minutes); held-out pair accuracy "
          f"{done['held_out_accuracy_before']:.3f} -> {done['held_out_accuracy_after']:.3f}; "
          f"activated: {done['activated']}")


if __name__ == "__main__":
    main()
