"""Calibrates engine.similarity's words: scores of copies, second shots and unrelated photos, default model.

    PYTHONPATH=. python tests/bench/bench_similarity_words.py [--out /tmp/simwords]

Builds the README's demo photos (dev/screenshots.py: 17 bundled sample photos, four edited
copies of each, 12 MP camera versions of eight, a second shot of the motorcycle, a query
sent back by a chat app) and 40 procedural scenes with the tests' edited copies
(tests/photos.py), indexes them with the default model, searches every original, and prints
the score of each kind of hit (percentiles) and the words engine.similarity gives them
(Hit.similarity: in the code space a copy is told by its feature cosine).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "dev"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--scenes", type=int, default=40)
    args = parser.parse_args()
    import screenshots

    from engine.default_model import build_default_model
    from engine.index import Indexer
    from engine.library import Library
    from engine.search import SearchParams
    from tests.photos import edited_copies, scene

    out = Path(args.out or tempfile.mkdtemp(prefix="simwords-"))
    if out.exists():
        shutil.rmtree(out)
    photos = screenshots.make_demo_photos(out / "demo")
    group_of: dict[str, str] = {}  # path -> which photo it shows
    for name, path in photos["originals"].items():
        group_of[str(path)] = name
        for copy in photos["edited"][name].values():
            group_of[str(copy)] = name
    for number, name in enumerate(screenshots.CAMERA):
        group_of[str(photos["pictures"] / "Camera" / f"IMG_{2041 + 7 * number}.jpg")] = name
    group_of[str(photos["pictures"] / "Trips" / "motorcycle-2.jpg")] = "motorcycle-second-shot"
    group_of[str(photos["query"])] = "coffee"
    scenes = out / "scenes"
    originals = list(photos["originals"].values())
    for seed in range(args.scenes):
        image = scene(seed)
        path = scenes / f"s{seed}" / "original.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=92)
        group_of[str(path)] = f"scene{seed}"
        originals.append(path)
        for copy in edited_copies(image, scenes / f"s{seed}").values():
            group_of[str(copy)] = f"scene{seed}"

    scores: dict[str, dict[str, list[tuple[float, str]]]] = defaultdict(lambda: defaultdict(list))
    with Library(out / "library") as library:
        library.install_model(build_default_model(64, quiet=True))
        Indexer(library, workers=0).run([photos["pictures"], photos["query"].parent, scenes])
        for space in ("features", "code"):
            for query in [*originals, photos["query"]]:
                example = library.example_from_file(query)
                from engine.library import Query

                hits = library.search_query(Query((example,)), SearchParams(k=200, rerank=space))
                mine = group_of[str(query)]
                for hit in hits:
                    if hit.path == str(query):
                        continue
                    theirs = group_of.get(hit.path, "?")
                    if theirs == mine:
                        kind = "copy (sample)" if not mine.startswith("scene") else "copy (scene)"
                    elif {mine, theirs} == {"motorcycle", "motorcycle-second-shot"}:
                        kind = "second shot"
                    elif mine.startswith("scene") and theirs.startswith("scene"):
                        kind = "other scene"
                    elif mine.startswith("scene") or theirs.startswith("scene"):
                        kind = "sample vs scene"
                    else:
                        kind = "other sample"
                    scores[space][kind].append((hit.score, hit.similarity.label))
    for space, kinds in scores.items():
        print(f"rerank={space}")
        print(f"  {'kind':16} {'n':>5} {'min':>6} {'p5':>6} {'p50':>6} {'p95':>6} {'max':>6}  words")
        for kind, values in sorted(kinds.items()):
            v = np.array([score for score, _ in values])
            words = defaultdict(int)
            for _, label in values:
                words[label] += 1
            summary = ", ".join(f"{w} {n}" for w, n in sorted(words.items(), key=lambda x: -x[1]))
            print(f"  {kind:16} {len(v):5d} {v.min():6.3f} {np.percentile(v, 5):6.3f} {np.median(v):6.3f} "
                  f"{np.percentile(v, 95):6.3f} {v.max():6.3f}  {summary}")


if __name__ == "__main__":
    main()
