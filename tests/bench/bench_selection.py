"""Which held-out figure should choose the head step? One head-mode run, every checkpoint scored.

    .venv/bin/python tests/bench/bench_selection.py --dir DIR [--labelled 1000] [--pairs 6000] [--seed 0]

DIR is bench_person.py's folder (its indexed library is copied; the photos' classes are
known). Pairs are drawn among the first ``--labelled`` labelled photos as bench_person draws
them (half similar; ``--seed`` picks another draw), imported, split as `train` splits them,
and a DPSH head is fitted with its default schedule, keeping the head at each of the 31
checks. Each checkpoint is then rated by the candidate selection figures on the selection
pairs, all through searches among the labelled photos in the head's space (pair accuracy is
the old one, on codes), and by the truth: mAP@100 of `search`'s ranking (head's space,
default pool) for the 200 unseen queries over the whole library. Printed: the checkpoint
each figure would keep, and its truth.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.codes import codes_from_logits  # noqa: E402
from engine.labels import import_csv  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.search import CodeSpace, SearchParams, search, warm_up  # noqa: E402
from tests.bench.bench_feedback import person_photos  # noqa: E402
from trainer.fit import HeadConfig, fit_head  # noqa: E402
from trainer.library_train import labelled_photos, search_ranking  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0, help="which draw of pairs")
    args = parser.parse_args()
    classes, queries = person_photos(args.dir)
    labelled = list(classes)[:args.labelled]
    rng = np.random.default_rng(args.seed)
    lines, similar, dissimilar = ["a,b,label"], 0, 0
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
    library = args.dir / "selection-library"
    shutil.rmtree(library, ignore_errors=True)
    shutil.copytree(args.dir / "library.indexed", library)
    (args.dir / "selection-pairs.csv").write_text("\n".join(lines) + "\n")
    warm_up()
    with Library(library, create=False) as lib:
        import_csv(lib.store, args.dir / "selection-pairs.csv")
        data = labelled_photos(lib, 0)
        all_features = np.asarray(lib.features(), np.float32)
        stored = np.ascontiguousarray(lib.features()[data.slots])
        init = lib.head()
        slot_of = {p: lib.store.image_by_path(p).slot for p in queries}
    features = stored.astype(np.float32)
    heads = []

    def keep_every(w, b):  # always "better": the fit keeps going and we see every checkpoint
        heads.append((w.copy(), b.copy()))
        return float(len(heads))

    fit_head(features, data.groups, HeadConfig(method="dpsh", bits=64), init=init, score=keep_every)
    check = data.check(data.select)
    rows = np.arange(len(features))
    table = []
    for w, b in heads:
        codes, space = codes_from_logits(features @ w + b), CodeSpace(w, b)
        figures = check.figures(lambda row: search_ranking(codes, stored, row, space, rows, rows))
        library_codes = codes_from_logits(all_features @ w + b)
        truth = []
        for query in queries:
            s = slot_of[query]
            found = search(library_codes, all_features, library_codes[s], all_features[s], SearchParams(k=101),
                           space=space).slots
            truth.append(_ap(found[found != s], classes[query], slot_classes(classes, library)))
        table.append({"pair accuracy": data.pair_accuracy(codes, data.select), "percentile": figures["percentile"],
                      "top10": figures["top10"], "map": figures["map"], "truth": float(np.mean(truth))})
    print(f"{args.pairs} pairs among {args.labelled} photos (draw {args.seed}): {len(data.select.label)} selection "
          f"pairs, {len(check.queries)} query photos; {len(heads)} checkpoints\n")
    print("| kept by | checkpoint | truth: mAP@100 of search |\n|---|---|---|")
    for name in ("pair accuracy", "percentile", "top10", "map"):
        values = [row[name] for row in table]
        best = int(np.argmax(values))  # the first best: ties keep the earlier head, as fit_head does
        print(f"| {name} | {best} | {table[best]['truth']:.3f} |")
    truths = [row["truth"] for row in table]
    print(f"| (the best checkpoint) | {int(np.argmax(truths))} | {max(truths):.3f} |")
    print(f"| (the start, the zero-label head) | 0 | {truths[0]:.3f} |")
    print(f"| (the last) | {len(truths) - 1} | {truths[-1]:.3f} |")


_SLOT_CLASSES: dict = {}


def slot_classes(classes: dict[str, int], library: Path) -> np.ndarray:
    """Class of every slot (cached): the truth's relevance."""
    if "array" not in _SLOT_CLASSES:
        with Library(library, create=False) as lib:
            paths = lib.store.paths_for_slots(lib.store.live_slots())
            out = np.full(lib.store.next_slot, -1)
            for slot, path in paths.items():
                out[slot] = classes[path]
        _SLOT_CLASSES["array"] = out
    return _SLOT_CLASSES["array"]


def _ap(slots: np.ndarray, kind: int, slot_class: np.ndarray, k: int = 100) -> float:
    relevant = slot_class[slots[:k]] == kind
    if not relevant.any():
        return 0.0
    precision = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
    return float(precision[relevant].sum() / relevant.sum())


if __name__ == "__main__":
    main()
