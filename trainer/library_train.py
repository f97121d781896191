"""Train on a library's labelled pairs: fit, gate on held-out pairs, write and activate a version."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import arrays, models
from engine.atomic import write_json_atomic
from engine.codes import codes_from_logits
from engine.errors import UserError
from engine.library import Library
from engine.store import utc_now
from trainer.data import groups_from_pairs
from trainer.fit import HeadConfig, fit_head
from trainer.full import FullConfig

log = logging.getLogger(__name__)

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


ACTIVATE_POLICIES = ("auto", "always", "never")


@dataclass
class Labelled:
    """A library's usable labels as training data: photos (content hashes), pairs split for the gate, groups."""

    keys: list[str]            # content hashes of the labelled photos; row n of every array below
    slots: np.ndarray          # their slots in the library
    train: PairSet
    test: PairSet
    groups: np.ndarray         # group id per photo, from the training pairs only
    pairs: int                 # usable labelled pairs

    def start_event(self, mode: str, method: str, bits: int) -> dict:
        return {"event": "start", "pairs": self.pairs, "train_pairs": len(self.train.label),
                "held_out_pairs": len(self.test.label), "photos": len(self.keys),
                "groups": int(self.groups.max()) + 1 if len(self.groups) else 0,
                "method": method, "bits": bits, "mode": mode}

    def score(self, codes: np.ndarray) -> float:
        """Held-out pair accuracy of packed codes for these photos (threshold set on the training pairs)."""
        return pair_accuracy(codes, self.train, self.test)


def labelled_photos(library: Library, seed: int) -> Labelled:
    """The library's labels among indexed photos, split into training and held-out pairs."""
    store = library.store
    rows = store.labels()
    slot_of = store.slots_for_hashes({r[0] for r in rows} | {r[1] for r in rows})
    usable = [(a, b, label) for a, b, label, *_ in rows if a in slot_of and b in slot_of]
    if sum(1 for *_, label in usable if label > 0) < MIN_SIMILAR_PAIRS:
        raise UserError(f"training needs at least {MIN_SIMILAR_PAIRS} pairs labelled similar among indexed photos "
                        f"(have {sum(1 for *_, label in usable if label > 0)})")
    train_idx, test_idx = _split_pairs(len(usable), seed)
    train_pairs = [usable[k] for k in train_idx]
    keys = sorted({h for a, b, _ in usable for h in (a, b)})
    row_of = {h: n for n, h in enumerate(keys)}

    def as_set(pairs) -> PairSet:
        return PairSet(np.array([row_of[a] for a, _, _ in pairs], dtype=np.int64),
                       np.array([row_of[b] for _, b, _ in pairs], dtype=np.int64),
                       np.array([label for *_, label in pairs], dtype=np.int64))

    group_of = groups_from_pairs(train_pairs)
    # Photos only in held-out pairs get their own groups: the fit must not see those labels.
    next_group = max(group_of.values(), default=-1) + 1
    groups = np.empty(len(keys), dtype=np.int64)
    for h, n in row_of.items():
        if h not in group_of:
            group_of[h] = next_group
            next_group += 1
        groups[n] = group_of[h]
    return Labelled(keys, np.array([slot_of[h] for h in keys], dtype=np.int64), as_set(train_pairs),
                    as_set([usable[k] for k in test_idx]), groups, len(usable))


def _begin(library: Library, config, activate: str, progress, mode: str):
    """Checks and the labelled photos every training mode starts from; emits the start event."""
    _check_policy(activate)
    with library.store.writing():
        pass  # the result is installed under the writer lock: refuse a busy library before the work
    emit = progress or (lambda event: None)
    data = labelled_photos(library, config.seed)
    emit(data.start_event(mode, config.method, config.bits))
    return emit, data


def _check_policy(activate: str) -> None:
    if activate not in ACTIVATE_POLICIES:
        raise ValueError(f"activate is one of {ACTIVATE_POLICIES}, not {activate!r}")


def train_library(library: Library, config: HeadConfig, *, activate: str = "auto",
                  progress: Callable[[dict], None] | None = None) -> dict:
    """Head mode: fit on the stored features of the labelled photos; no decoding.

    Returns a report with held-out pair accuracy before and after and whether the new version
    was activated. ``activate``: "auto" activates only when held-out accuracy is not worse than
    the active model's, "always" regardless, "never" leaves it for the person to activate.
    """
    started = time.monotonic()
    emit, data = _begin(library, config, activate, progress, "head")
    store = library.store
    active = library.active_model()
    features = np.asarray(library.features()[data.slots], dtype=np.float32)

    base_dir = store.model_dir(active.id)
    init = models.read_head(base_dir) if config.bits == active.bits else None
    weight, bias, info = fit_head(features, data.groups, config, progress=emit, init=init,
                                  score=lambda w, b: data.score(codes_from_logits(features @ w + b)))

    before = data.score(library.codes()[data.slots])
    after = data.score(codes_from_logits(features @ weight + bias))
    better = bool(np.isnan(before) or after >= before)
    accept = activate == "always" or (activate == "auto" and better)
    emit({"event": "evaluated", "held_out_accuracy_before": before, "held_out_accuracy_after": after,
          "not_worse": better, "accepted": bool(accept)})

    base = _base_name(active)
    with library.store.work_dir() as tmp:
        target = Path(tmp) / "model"
        models.write_with_head(base_dir, target, weight, bias, {
            "name": f"{base}-{config.method}", "base_name": base, "bits": config.bits,
            "head": {"kind": config.method, "mode": "head", "fitted_on": len(data.keys), "pairs": data.pairs,
                     "seed": config.seed, "steps": info["steps"], "best_step": info.get("best_step")},
            "metrics": {"held_out_pair_accuracy": after, "previous_held_out_pair_accuracy": before,
                        "train_seconds": info["seconds"]},
        })
        row = library.install_model(target, activate=accept)
    report = {"event": "done", "version": row.id, "name": row.name, "activated": bool(accept),
              "held_out_accuracy_before": before, "held_out_accuracy_after": after,
              "seconds": time.monotonic() - started, "best_step": info.get("best_step")}
    emit(report)
    return report


def _base_name(model) -> str:
    return model.manifest.get("base_name", model.name.rsplit("-", 1)[0])


def _training_pixels(library: Library, data: Labelled, size: int, emit) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, size, size, 3] of the labelled photos and a mask of those that decoded.

    From the thumbnail cache when there is one (256 px, written at indexing: a thousand
    photos decode in seconds instead of a minute), else from the original file.
    """
    from concurrent.futures import ThreadPoolExecutor

    from engine.errors import DecodeError
    from engine.imageio import decode_path
    from engine.index import thumbnail_path

    store = library.store
    paths = store.paths_for_slots(data.slots)
    thumbs = store.thumbs_dir()

    def load(n: int) -> np.ndarray | None:
        for source in (thumbnail_path(thumbs, data.keys[n]), paths.get(int(data.slots[n]))):
            if source is None or not os.path.exists(source):
                continue
            try:
                return decode_path(source, size=size, resize="center-crop", thumb_size=0).pixels
            except DecodeError:
                continue
        return None

    pixels = np.zeros((len(data.keys), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(data.keys), dtype=bool)
    # Pillow decodes without the GIL: two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for n, result in enumerate(pool.map(load, range(len(data.keys)))):
            if result is not None:
                pixels[n], ok[n] = result, True
            if n % 100 == 99 or n == len(data.keys) - 1:
                emit({"event": "phase", "phase": "decode", "done": n + 1, "total": len(data.keys)})
    return pixels, ok


def train_library_full(library: Library, config: FullConfig, *, activate: str = "auto",
                       progress: Callable[[dict], None] | None = None, cancel=None) -> dict:
    """Full mode: fine-tune the backbone on the labelled photos, export, re-encode the library.

    The new version is installed inactive, then every photo is encoded with it (resumable: a
    killed run leaves the old model active and ``model activate`` finishes the encoding),
    then activated by the same rule as head mode, judged on the codes search will use. Under
    "auto" a model whose held-out accuracy estimate is already worse is not re-encoded.
    """
    from trainer.export import check_parity, export_onnx

    from trainer.full import backbone_fingerprint, fit_full

    started = time.monotonic()
    emit, data = _begin(library, config, activate, progress, "full")
    store = library.store
    active = library.active_model()
    before = data.score(library.codes()[data.slots])

    pixels, ok = _training_pixels(library, data, config.input_size, emit)
    if not ok.all():
        log.warning("%d labelled photos could not be read and are left out", int((~ok).sum()))
    emit({"event": "phase", "phase": "train", "done": 0, "total": config.epochs})

    def score(codes_of_readable: np.ndarray) -> float:
        codes = np.zeros((len(data.keys), codes_of_readable.shape[1]), dtype=np.uint64)
        codes[ok] = codes_of_readable
        return data.score(codes)

    net, info = fit_full(pixels[ok], data.groups[ok], config, score=score, progress=emit)
    estimate = info["held_out_accuracy"]

    emit({"event": "phase", "phase": "export", "done": 0, "total": 1})
    base = _base_name(active)
    with library.store.work_dir() as tmp:
        target = Path(tmp) / "model"
        target.mkdir()
        export_onnx(net, target / "model.onnx")
        parity = check_parity(net, target / "model.onnx",
                              pixels[ok][:32])
        manifest = {**{k: v for k, v in active.manifest.items() if k not in ("metrics", "head", "created_at")},
                    "name": f"{base}-{config.method}-full", "base_name": base,
                    "backbone": config.backbone, "backbone_id": backbone_fingerprint(net),
                    "input_size": config.input_size, "resize": "center-crop", "bits": config.bits,
                    "feature_dim": net.feature_dim,
                    "head": {"kind": config.method, "mode": "full", "fitted_on": len(data.keys),
                             "pairs": data.pairs, "seed": config.seed, "epochs": info["epochs"],
                             "best_epoch": info["best_epoch"], "stopped": info["stopped"],
                             "tuned_blocks": info["tuned_blocks"]},
                    "metrics": {"held_out_pair_accuracy_estimate": estimate,
                                "previous_held_out_pair_accuracy": before, "train_seconds": info["seconds"],
                                "device": info["device"], "parity": parity},
                    "created_at": utc_now()}
        write_json_atomic(target / "manifest.json", manifest)
        emit({"event": "phase", "phase": "export", "done": 1, "total": 1})
        row = library.install_model(target, activate=False)

    if activate == "auto" and not (np.isnan(before) or estimate >= before):
        after, accept = estimate, False
        emit({"event": "evaluated", "held_out_accuracy_before": before, "held_out_accuracy_after": after,
              "not_worse": False, "accepted": False})
    else:
        from engine.reencode import encode_missing

        def on_encode(state) -> None:
            emit({"event": "phase", "phase": "encode", "done": state.done, "total": state.total,
                  "rate": state.rate})

        encode_missing(store, row, progress=on_encode, cancel=cancel)
        codes = arrays.read_rows(store.codes_path(row.id), np.uint64, row.words, store.next_slot)
        after = data.score(codes[data.slots])
        better = bool(np.isnan(before) or after >= before)
        accept = activate == "always" or (activate == "auto" and better)
        emit({"event": "evaluated", "held_out_accuracy_before": before, "held_out_accuracy_after": after,
              "not_worse": better, "accepted": bool(accept)})
        store.update_model_metrics(row.id, {"held_out_pair_accuracy": after})
        if accept:
            library.activate(row.id)
    report = {"event": "done", "version": row.id, "name": row.name, "activated": bool(accept),
              "held_out_accuracy_before": before, "held_out_accuracy_after": after,
              "seconds": time.monotonic() - started, "train_seconds": info["seconds"],
              "epochs": info["epochs"], "best_epoch": info["best_epoch"], "device": info["device"]}
    emit(report)
    return report
