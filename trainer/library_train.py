"""Train on a library's labelled pairs: fit, gate on held-out pairs, write and activate a version."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import models
from engine.codes import codes_from_logits
from engine.errors import UserError
from engine.library import Library
from trainer.data import groups_from_pairs
from trainer.fit import HeadConfig, fit_head

MIN_SIMILAR_PAIRS = 5
HELD_OUT = 0.2


@dataclass
class PairSet:
    """Labelled pairs as rows into a feature matrix: (i, j, label in {1, -1})."""

    i: np.ndarray
    j: np.ndarray
    label: np.ndarray


def pair_accuracy(codes: np.ndarray, train: PairSet, test: PairSet) -> float:
    """Accuracy of "similar iff Hamming distance <= t" on ``test``, t chosen on ``train``.

    Codes are compared the way search compares them, so this says how well a model keeps the
    person's similar pairs close and dissimilar pairs apart.
    """
    def distances(p: PairSet) -> np.ndarray:
        return np.bitwise_count(codes[p.i] ^ codes[p.j]).sum(axis=1)

    d_train = distances(train)
    best_t, best_acc = 0, -1.0
    for t in range(int(codes.shape[1] * 64) + 1):
        acc = float(np.mean((d_train <= t) == (train.label > 0))) if len(d_train) else 0.0
        if acc > best_acc:
            best_t, best_acc = t, acc
    if len(test.label) == 0:
        return float("nan")
    return float(np.mean((distances(test) <= best_t) == (test.label > 0)))


def _split_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    held = int(round(n * HELD_OUT)) if n >= 10 else 0
    return np.sort(order[held:]), np.sort(order[:held])


def train_library(library: Library, config: HeadConfig, *, force: bool = False,
                  progress: Callable[[dict], None] | None = None) -> dict:
    """Head mode: fit on the stored features of the labelled photos; no decoding.

    Returns a report with held-out pair accuracy before and after and whether the new version
    was activated (only when it is not worse than the active one, unless ``force``).
    """
    emit = progress or (lambda event: None)
    started = time.monotonic()
    store = library.store
    active = library.active_model()
    rows = store.labels()
    slot_of = store.slots_for_hashes({r[0] for r in rows} | {r[1] for r in rows})
    usable = [(a, b, label) for a, b, label, *_ in rows if a in slot_of and b in slot_of]
    if sum(1 for *_, label in usable if label > 0) < MIN_SIMILAR_PAIRS:
        raise UserError(f"training needs at least {MIN_SIMILAR_PAIRS} pairs labelled similar among indexed photos "
                        f"(have {sum(1 for *_, label in usable if label > 0)})")
    train_idx, test_idx = _split_pairs(len(usable), config.seed)
    train_pairs = [usable[k] for k in train_idx]
    keys = sorted({h for a, b, _ in usable for h in (a, b)})
    row_of = {h: n for n, h in enumerate(keys)}
    features = np.asarray(library.features()[[slot_of[h] for h in keys]], dtype=np.float32)

    def as_set(pairs) -> PairSet:
        return PairSet(np.array([row_of[a] for a, _, _ in pairs], dtype=np.int64),
                       np.array([row_of[b] for _, b, _ in pairs], dtype=np.int64),
                       np.array([label for *_, label in pairs], dtype=np.int64))

    train_set, test_set = as_set(train_pairs), as_set([usable[k] for k in test_idx])
    group_of = groups_from_pairs(train_pairs)
    # Photos only in held-out pairs get their own groups: the fit must not see those labels.
    next_group = max(group_of.values(), default=-1) + 1
    groups = np.empty(len(keys), dtype=np.int64)
    for h, n in row_of.items():
        if h not in group_of:
            group_of[h] = next_group
            next_group += 1
        groups[n] = group_of[h]
    emit({"event": "start", "pairs": len(usable), "train_pairs": len(train_set.label),
          "held_out_pairs": len(test_set.label), "photos": len(keys), "groups": int(next_group),
          "method": config.method, "bits": config.bits, "mode": "head"})

    base_dir = store.model_dir(active.id)
    init = models.read_head(base_dir) if config.bits == active.bits else None
    weight, bias, info = fit_head(features, groups, config, progress=emit, init=init)

    before = pair_accuracy(codes_from_logits(features @ init[0] + init[1]) if init is not None
                           else library.codes()[[slot_of[h] for h in keys]], train_set, test_set)
    after = pair_accuracy(codes_from_logits(features @ weight + bias), train_set, test_set)
    accept = force or np.isnan(before) or after >= before
    emit({"event": "evaluated", "held_out_accuracy_before": before, "held_out_accuracy_after": after,
          "accepted": bool(accept)})

    base = active.manifest.get("base_name", active.name.rsplit("-", 1)[0])
    with tempfile.TemporaryDirectory(dir=library.path) as tmp:
        target = Path(tmp) / "model"
        models.write_with_head(base_dir, target, weight, bias, {
            "name": f"{base}-{config.method}", "base_name": base, "bits": config.bits,
            "head": {"kind": config.method, "mode": "head", "fitted_on": len(keys), "pairs": len(usable),
                     "seed": config.seed, "steps": info["steps"]},
            "metrics": {"held_out_pair_accuracy": after, "previous_held_out_pair_accuracy": before,
                        "train_seconds": info["seconds"]},
        })
        row = library.install_model(target, activate=accept)
    report = {"event": "done", "version": row.id, "name": row.name, "activated": bool(accept),
              "held_out_accuracy_before": before, "held_out_accuracy_after": after,
              "seconds": time.monotonic() - started}
    emit(report)
    return report
