"""The person's case: a library of Fashion-MNIST photos, ~1,000 of them labelled through pairs.

    .venv/bin/python tests/bench/bench_person.py [--photos 3000] [--labelled 1000] [--pairs 6000]
        [--queries 200] [--mode full] [--train-args '--epochs 8'] [--config '{"steps": 3000}'] [--dir DIR]

Writes the photos as PNG files, indexes them with the CLI (zero-label default: ITQ on the
library's own features), imports a CSV of pairs among the labelled photos (half similar),
runs `lookalike train` with its defaults, and reports mAP@100 of what `lookalike search`
returns (`search --json -k 101 Q1 Q2 ...`, many queries per call, the query itself left out,
relevant = same class, over the whole library) for queries the labels never mention, before
and after. Extra rows, labelled as such: the same searches with `--rerank none` (Hamming
only) and the other re-rank spaces, and float cosine over the whole library (in-process,
the peer). Everything else goes through the real CLI and library.
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


def cli(env, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lookalike {' '.join(args[:6])} ... failed: {proc.stderr}")
    return proc


def average_precision(ranked: list[str], wanted: int, classes: dict[str, int], k: int = 100) -> float:
    """AP@k of a ranked list of paths (DeepHash's convention: over the relevant ones retrieved)."""
    relevant = np.array([classes[p] == wanted for p in ranked[:k]], dtype=bool)
    if not relevant.any():
        return 0.0
    precision = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
    return float(precision[relevant].sum() / relevant.sum())


def search_map(env, classes: dict[str, int], queries: list[str], *options: str, batch: int = 100) -> float:
    """mAP@100 of `lookalike search --json -k 101 [options] Q...`, each query left out of its results."""
    scores = []
    for start in range(0, len(queries), batch):
        chunk = queries[start:start + batch]
        out = cli(env, "search", "--json", "-k", "101", *options, *chunk).stdout.splitlines()
        for line in out:
            answer = json.loads(line)
            ranked = [r["path"] for r in answer["results"] if r["path"] != answer["query"]]
            scores.append(average_precision(ranked, classes[answer["query"]], classes))
    assert len(scores) == len(queries)
    return float(np.mean(scores))


def cosine_map(lib_dir: Path, classes: dict[str, int], queries: list[str]) -> float:
    """The peer: exact float cosine over every photo's stored features (query left out)."""
    with Library(lib_dir, create=False) as lib:
        features = np.asarray(lib.features(), np.float32)
        path_of = lib.store.paths_for_slots(lib.store.live_slots())
    slots = np.array(sorted(path_of))
    slot_index = {path_of[s]: n for n, s in enumerate(slots)}
    db = features[slots]
    scores = []
    for q in queries:
        n = slot_index[q]
        similarity = db @ db[n]
        similarity[n] = -np.inf
        order = np.argsort(-similarity, kind="stable")[:100]
        scores.append(average_precision([path_of[slots[i]] for i in order], classes[q], classes))
    return float(np.mean(scores))


def measure(env, lib_dir: Path, classes: dict[str, int], queries: list[str]) -> dict[str, float]:
    return {"default": search_map(env, classes, queries),
            "none": search_map(env, classes, queries, "--rerank", "none"),
            "features": search_map(env, classes, queries, "--rerank", "features"),
            "code": search_map(env, classes, queries, "--rerank", "code"),
            "cosine": cosine_map(lib_dir, classes, queries)}


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
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--queries", type=int, default=200)
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
    before = measure(env, args.dir / "library", classes, queries)

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
    after = measure(env, args.dir / "library", classes, queries)
    done = events[-1]

    print(f"{args.photos} photos ({index_s:.0f} s to index), {args.labelled} labelled through "
          f"{similar} similar + {dissimilar} dissimilar pairs; {len(queries)} unseen queries searched over "
          f"the whole library")
    print()
    print(f"| mAP@100 | before | after `lookalike train` ({done['name']}, {train_s:.0f} s, re-ranks by "
          f"{done.get('rerank', '?')}) |")
    print("|---|---|---|")
    print(f"| **`lookalike search` (default)** | **{before['default']:.3f}** | **{after['default']:.3f}** |")
    print(f"| extra: `search --rerank none` (Hamming only) | {before['none']:.3f} | {after['none']:.3f} |")
    print(f"| extra: `search --rerank features` | {before['features']:.3f} | {after['features']:.3f} |")
    print(f"| extra: `search --rerank code` | {before['code']:.3f} | {after['code']:.3f} |")
    print(f"| extra: float cosine on the features, whole library (peer) | {before['cosine']:.3f} | "
          f"{after['cosine']:.3f} |")
    print(f"\ngain of the default search {after['default'] - before['default']:+.3f}; "
          f"activated: {done['activated']}; held-out check (gate pairs): partner ranked ahead of "
          f"{done.get('percentile_before', float('nan')):.3f} -> {done.get('percentile_after', float('nan')):.3f} "
          f"of the library, in the top 10 "
          f"{done.get('top10_before', float('nan')):.3f} -> {done.get('top10_after', float('nan')):.3f}, "
          f"mAP {done.get('map_before', float('nan')):.3f} -> {done.get('map_after', float('nan')):.3f}, "
          f"pair accuracy {done['held_out_accuracy_before']:.3f} -> {done['held_out_accuracy_after']:.3f}")


if __name__ == "__main__":
    main()
