"""Which space should the fine stage rank a trained version's Hamming pool in? The person's case.

    .venv/bin/python tests/bench/bench_spaces.py --dir DIR [--library LIB] [--pool N] [--queries all|unseen]

DIR is bench_person.py's folder (for the photos' classes); LIB the library to read (default
DIR/library, i.e. after bench_person's last run; its versions are all measured). For each
version and each photo the labels never mention (2,000 of the 3,000, or the 200 unseen
queries), the default Hamming pool (the photo itself left out) is ranked several ways and
mAP@100 computed (relevant = same class):

- hamming: Hamming distance only (ties by slot), what `--rerank none` does;
- features: cosine on the stored features (the zero-label default's fine stage);
- tanh cosine: cosine of tanh(f W + b), the head's continuous code, on both sides;
- logit cosine: cosine of f W + b;
- asymmetric: tanh(q W + b) against the stored sign bits, what `--rerank code` ranks by;
- asymmetric, feature ties: the same, ties broken by feature cosine;
- features + tanh cosine: their sum;
- shipped "code": asymmetric, copies (feature cosine >= 0.90) first, ties by feature cosine;
- copies at 0.85 / 0.80: the same with a lower copy threshold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import arrays  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.search import default_pool, hamming_topk  # noqa: E402
from tests.bench.bench_feedback import person_photos  # noqa: E402
from tests.bench.bench_person import average_precision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--pool", type=int, default=None, help="Hamming pool (default: the search's default)")
    parser.add_argument("--queries", default="all", choices=["all", "unseen"])
    args = parser.parse_args()
    classes, unseen = person_photos(args.dir)
    queries = unseen if args.queries == "unseen" else list(classes)[1000:]
    with Library(args.library or args.dir / "library", create=False) as lib:
        features = np.asarray(lib.features(), np.float32)
        path_of = lib.store.paths_for_slots(lib.store.live_slots())
        versions = []
        for model in lib.store.models():
            codes = arrays.read_rows(lib.store.codes_path(model.id), np.uint64, model.words, lib.store.next_slot)
            if len(codes) == len(features) and model.backbone_id == lib.active_model().backbone_id:
                versions.append((model, np.array(codes), *lib.head(model)))
    slot_of = {p: s for s, p in path_of.items()}
    pool = args.pool or default_pool(len(features))
    live = np.zeros(len(features), bool)
    live[list(path_of)] = True
    print(f"{len(queries)} queries, pool {pool}; mAP@100\n")
    names = None
    for model, codes, weight, bias in versions:
        logits = features @ weight + bias
        tanh = np.tanh(logits)
        tanh_unit = tanh / np.linalg.norm(tanh, axis=1, keepdims=True)
        logit_unit = logits / np.linalg.norm(logits, axis=1, keepdims=True)
        signs = 2.0 * np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little")[:, :weight.shape[1]] - 1
        results: dict[str, list[float]] = {}
        for query in queries:
            q = slot_of[query]
            slots, hamming = hamming_topk(codes, codes[q], pool + 1, live)
            keep = slots != q
            slots, hamming = slots[keep], hamming[keep]
            cosine = features[slots] @ features[q]
            asymmetric = (signs[slots] @ tanh[q]) / np.abs(tanh[q]).sum()
            keys = {
                "hamming": (np.zeros(len(slots)),),
                "features": (cosine,),
                "tanh cosine": (tanh_unit[slots] @ tanh_unit[q],),
                "logit cosine": (logit_unit[slots] @ logit_unit[q],),
                "asymmetric": (asymmetric,),
                "asymmetric, feature ties": (asymmetric, cosine),
                "features + tanh cosine": (cosine + tanh_unit[slots] @ tanh_unit[q],),
            }
            for threshold, name in ((0.90, "shipped code: copies >= 0.90 first"), (0.85, "copies >= 0.85"),
                                    (0.80, "copies >= 0.80")):
                keys[name] = (np.where(cosine >= threshold, 2 + cosine, asymmetric), cosine)
            for name, key in keys.items():
                tie = key[1] if len(key) > 1 else np.zeros(len(slots))
                order = slots[np.lexsort((slots, hamming, -tie, -key[0]))]
                results.setdefault(name, []).append(
                    average_precision([path_of[int(s)] for s in order], classes[query], classes))
        if names is None:
            names = list(results)
            print("| version | " + " | ".join(names) + " |")
            print("|---" * (len(names) + 1) + "|")
        print(f"| v{model.id} {model.name} | " + " | ".join(f"{np.mean(results[n]):.3f}" for n in names) + " |")


if __name__ == "__main__":
    main()
