"""Train on a library's labelled pairs: fit, check on held-out pairs, write and activate a version.

Held-out pairs are split (trainer.heldout): a selection part chooses the best head step or
epoch (and a full-mode version's re-rank space), a gate part decides activation and gives the
before/after figures, measured by searches through engine.search exactly as `lookalike search`
ranks with each version (the active one as configured, the candidate as it will be).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import models
from engine.atomic import write_json_atomic
from engine.codes import codes_from_logits
from engine.errors import DecodeError, UserError
from engine.imageio import decode_path
from engine.layout import thumbnail_path
from engine.library import Library
from engine.reencode import encode_missing
from engine.search import CodeSpace, FeatureSpace, SearchParams, default_pool, hamming_distances, search, warm_up
from engine.store import utc_now
from trainer.data import groups_from_pairs
from trainer.fit import HeadConfig, fit_head
from trainer.export import check_parity, export_onnx
from trainer.full import FullConfig, backbone_fingerprint, fit_full
from trainer.heldout import Ranking, RetrievalCheck, better_or_equal, clearly_better, split_pairs

log = logging.getLogger(__name__)

MIN_SIMILAR_PAIRS = 5


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


ACTIVATE_POLICIES = ("auto", "always", "never")


@dataclass
class Labelled:
    """A library's usable labels as training data: photos (content hashes), pairs split three ways, groups."""

    keys: list[str]            # content hashes of the labelled photos; row n of every array below
    slots: np.ndarray          # their slots in the library
    train: PairSet
    select: PairSet            # held out: chooses the best step / epoch / re-rank space
    gate: PairSet              # held out: decides activation and gives the reported figures
    groups: np.ndarray         # group id per photo, from the training pairs only
    pairs: int                 # usable labelled pairs
    seed: int = 0

    def start_event(self, mode: str, method: str, bits: int) -> dict:
        return {"event": "start", "pairs": self.pairs, "train_pairs": len(self.train.label),
                "held_out_pairs": len(self.select.label) + len(self.gate.label),
                "selection_pairs": len(self.select.label), "gate_pairs": len(self.gate.label),
                "photos": len(self.keys), "groups": int(self.groups.max()) + 1 if len(self.groups) else 0,
                "method": method, "bits": bits, "mode": mode}

    def pair_accuracy(self, codes: np.ndarray, part: PairSet | None = None) -> float:
        """Held-out pair accuracy of packed codes for these photos (threshold set on the training
        pairs), on the gate pairs unless another part is given."""
        return pair_accuracy(codes, self.train, self.gate if part is None else part)

    def check(self, part: PairSet) -> RetrievalCheck:
        return RetrievalCheck.of(part.i, part.j, part.label, len(self.keys), seed=self.seed)


def labelled_photos(library: Library, seed: int) -> Labelled:
    """The library's labels among indexed photos, split into training, selection and gate pairs."""
    store = library.store
    rows = store.labels()
    slot_of = store.slots_for_hashes({r[0] for r in rows} | {r[1] for r in rows})
    usable = [(a, b, label) for a, b, label, *_ in rows if a in slot_of and b in slot_of]
    if sum(1 for *_, label in usable if label > 0) < MIN_SIMILAR_PAIRS:
        raise UserError(f"training needs at least {MIN_SIMILAR_PAIRS} pairs labelled similar among indexed photos "
                        f"(have {sum(1 for *_, label in usable if label > 0)})")
    train_idx, select_idx, gate_idx = split_pairs(np.array([label for *_, label in usable]), seed)
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
                    as_set([usable[k] for k in select_idx]), as_set([usable[k] for k in gate_idx]),
                    groups, len(usable), seed)


# -- searches the checks run --------------------------------------------------------------


def _space(name: str, weight: np.ndarray, bias: np.ndarray):
    return CodeSpace(weight, bias) if name == "code" else FeatureSpace()


def search_ranking(codes: np.ndarray, features: np.ndarray, slot: int, space, row_of_slot: np.ndarray,
                   slot_of_row: np.ndarray, live: np.ndarray | None = None) -> Ranking:
    """A search with the photo at ``slot`` as `lookalike search` runs it (the default pool,
    then ``space``), read as a Ranking of labelled rows: the pool in order, the query left out;
    photos beyond the pool follow it in Hamming order (ties: half of them first)."""
    pool = default_pool(len(codes))
    query_feature = np.asarray(features[slot], dtype=np.float32)
    found = search(codes, features, codes[slot], query_feature, SearchParams(k=pool), live, space=space).slots
    found = found[found != slot]
    others = (len(codes) if live is None else int(live.sum())) - 1
    if len(found) >= others:
        return Ranking(row_of_slot[found], others)
    distances: list[np.ndarray] = []

    def beyond(row: int) -> float:
        if not distances:  # one Hamming pass per query, only when a partner is beyond the pool
            outside = np.ones(len(codes), dtype=bool) if live is None else live.copy()
            outside[found] = False
            outside[slot] = False
            distances.append(hamming_distances(codes, codes[slot]).astype(np.int64))
            distances.append(outside)
        d, outside = distances
        mine = d[slot_of_row[row]]
        ahead = int(np.count_nonzero(outside & (d < mine)))
        tied = int(np.count_nonzero(outside & (d == mine))) - 1
        return len(found) + ahead + tied / 2

    return Ranking(row_of_slot[found], others, beyond)


def selection_figures(check: RetrievalCheck, codes: np.ndarray, features: np.ndarray, space) -> dict:
    """Figures of searches among the labelled photos only (codes and features of those photos,
    ranked in ``space``): what selection reads."""
    rows = np.arange(len(codes))
    return check.figures(lambda row: search_ranking(codes, features, row, space, rows, rows))


def selection_percentile(check: RetrievalCheck, codes: np.ndarray, features: np.ndarray, space) -> float:
    """The selection figure: the mean rank percentile of each held-out partner (selection_figures)."""
    if not check:
        return float("nan")
    return selection_figures(check, codes, features, space)["percentile"]


def gate_figures(library: Library, data: Labelled, check: RetrievalCheck, codes: np.ndarray,
                 features: np.ndarray, space, labelled_codes: np.ndarray) -> dict:
    """The gate's figures for one version: searches over the whole library (its codes and
    features, ranked in ``space``, the default pool, as `lookalike search` does), plus held-out
    pair accuracy of the labelled photos' codes."""
    live = library.searchable_mask()
    row_of_slot = np.full(len(codes), -1, dtype=np.int64)
    row_of_slot[data.slots] = np.arange(len(data.slots))
    figures = check.figures(lambda row: search_ranking(codes, features, int(data.slots[row]), space, row_of_slot,
                                                       data.slots, live))
    figures["pair_accuracy"] = data.pair_accuracy(labelled_codes)
    return figures


def _evaluated_event(before: dict, after: dict, not_worse: bool, accept: bool, rerank: str, **extra) -> dict:
    """The "evaluated" event: the fields the retrain dialog has always read, then the retrieval figures."""
    return {"event": "evaluated", "held_out_accuracy_before": before["pair_accuracy"],
            "held_out_accuracy_after": after["pair_accuracy"], "not_worse": bool(not_worse),
            "accepted": bool(accept), **_figure_fields(before, after), "rerank": rerank, **extra}


def _figure_fields(before: dict, after: dict) -> dict:
    return {"percentile_before": before["percentile"], "percentile_after": after["percentile"],
            "top10_before": before["top10"], "top10_after": after["top10"],
            "map_before": before["map"], "map_after": after["map"], "gate_searches": after.get("searches", 0)}


def _begin(library: Library, config, activate: str, progress, mode: str):
    """Checks and the labelled photos every training mode starts from; emits the start event."""
    _check_policy(activate)
    with library.store.writing():
        pass  # the result is installed under the writer lock: refuse a busy library before the work
    emit = progress or (lambda event: None)
    data = labelled_photos(library, config.seed)
    # The checks run hundreds of searches: the numba kernels make each about a millisecond.
    warm_up()
    emit(data.start_event(mode, config.method, config.bits))
    return emit, data


def _check_policy(activate: str) -> None:
    if activate not in ACTIVATE_POLICIES:
        raise ValueError(f"activate is one of {ACTIVATE_POLICIES}, not {activate!r}")


def train_library(library: Library, config: HeadConfig, *, activate: str = "auto",
                  progress: Callable[[dict], None] | None = None) -> dict:
    """Head mode: fit on the stored features of the labelled photos; no decoding.

    The head step kept is the one the selection pairs like best (searches among the labelled
    photos, in the head's space); the new version re-ranks in that space ("rerank": "code").
    Returns a report with the gate pairs' figures before (the active version as the person
    searches with it) and after (the new one), and whether it was activated. ``activate``:
    "auto" activates only when the figures are not worse (trainer.heldout.better_or_equal),
    "always" regardless, "never" leaves it for the person to activate.
    """
    started = time.monotonic()
    emit, data = _begin(library, config, activate, progress, "head")
    store = library.store
    active = library.active_model()
    all_features = library.features()
    stored = np.ascontiguousarray(all_features[data.slots])  # float16, as searches read them
    features = stored.astype(np.float32)

    base_dir = store.model_dir(active.id)
    init = library.head(active) if config.bits == active.bits else None
    selection = data.check(data.select)

    def select(w: np.ndarray, b: np.ndarray) -> float:
        return selection_percentile(selection, codes_from_logits(features @ w + b), stored, CodeSpace(w, b))

    weight, bias, info = fit_head(features, data.groups, config, progress=emit, init=init,
                                  score=select if selection else None)
    nothing_learned = info.get("best_step") == 0 and init is not None
    # A head that learned nothing is the active one: it keeps ranking as the active one did.
    rerank = models.rerank_space(active.manifest) if nothing_learned else "code"

    gate = data.check(data.gate)
    candidate_codes = codes_from_logits(models.head_logits(all_features, weight, bias))
    before = gate_figures(library, data, gate, library.codes(), all_features, library.rerank_space("auto", active),
                          library.codes()[data.slots])
    after = gate_figures(library, data, gate, candidate_codes, all_features, _space(rerank, weight, bias),
                         candidate_codes[data.slots])
    better = better_or_equal(after, before)
    accept = activate == "always" or (activate == "auto" and better)
    emit(_evaluated_event(before, after, better, accept, rerank))

    base = _base_name(active)
    with library.store.work_dir() as tmp:
        target = Path(tmp) / "model"
        models.write_with_head(base_dir, target, weight, bias, {
            "name": f"{base}-{config.method}", "base_name": base, "bits": config.bits, "rerank": rerank,
            "head": {"kind": config.method, "mode": "head", "fitted_on": len(data.keys), "pairs": data.pairs,
                     "seed": config.seed, "steps": info["steps"], "best_step": info.get("best_step")},
            "metrics": {"held_out_pair_accuracy": after["pair_accuracy"],
                        "previous_held_out_pair_accuracy": before["pair_accuracy"],
                        "held_out_percentile": after["percentile"], "previous_held_out_percentile": before["percentile"],
                        "held_out_top10": after["top10"], "previous_held_out_top10": before["top10"],
                        "held_out_map": after["map"], "previous_held_out_map": before["map"],
                        "selection_percentile": info.get("held_out_accuracy"),
                        "train_seconds": info["seconds"]},
        })
        row = library.install_model(target, activate=accept)
    report = {"event": "done", "version": row.id, "name": row.name, "activated": bool(accept),
              "held_out_accuracy_before": before["pair_accuracy"], "held_out_accuracy_after": after["pair_accuracy"],
              **_figure_fields(before, after), "rerank": rerank,
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

    Each epoch is rated on the selection pairs by searches among the labelled photos in both
    spaces the new version could re-rank in (its tuned features, its head's code); the best
    epoch is kept and re-ranks in the space that rated it higher. The new version is installed
    inactive, then every photo is encoded with it (resumable: a killed run leaves the old model
    active and ``model activate`` finishes the encoding), then activated by the same gate as
    head mode, judged over the whole library. Under "auto" a version whose selection figure is
    already below the active version's is not re-encoded; its gate figures are then measured
    among the labelled photos only (``"scope": "labelled photos"`` in the events).
    """
    started = time.monotonic()
    emit, data = _begin(library, config, activate, progress, "full")
    store = library.store
    active = library.active_model()
    active_space = library.rerank_space("auto", active)
    active_codes = np.array(library.codes()[data.slots])
    active_features = np.ascontiguousarray(library.features()[data.slots])  # float16, as stored
    selection = data.check(data.select)
    selection_before = selection_percentile(selection, active_codes, active_features, active_space)

    pixels, ok = _training_pixels(library, data, config.input_size, emit)
    if not ok.all():
        log.warning("%d labelled photos could not be read and are left out", int((~ok).sum()))
    emit({"event": "phase", "phase": "train", "done": 0, "total": config.epochs})

    def readable_rows(values: np.ndarray, fill: np.ndarray) -> np.ndarray:
        # an unreadable photo keeps the active version's row (zeros where widths differ)
        out = fill.copy() if fill.shape[1:] == values.shape[1:] else np.zeros((len(ok), *values.shape[1:]), values.dtype)
        out[ok] = values
        return out

    def rate(features_ok: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[float, dict]:
        features = readable_rows(features_ok.astype(np.float16), active_features)  # stored as float16
        codes = readable_rows(codes_from_logits(features_ok @ weight + bias), active_codes)
        figures = {name: selection_figures(selection, codes, features, _space(name, weight, bias))
                   for name in ("features", "code")}
        # The head's space unless the tuned features rank the selection partners clearly
        # higher: a difference within noise goes to the space trained for ranking (on the
        # person's case the two were within noise while code ranked unseen photos better:
        # docs/TRAINING.md, "Full mode").
        best = ("features" if clearly_better(figures["features"]["percentiles"], figures["code"]["percentiles"])
                else "code")
        return figures[best]["percentile"], {"rerank": best, **{k: v["percentile"] for k, v in figures.items()},
                                             "features_array": features, "codes": codes}

    net, info = fit_full(pixels[ok], data.groups[ok], config, score=rate if selection else None, progress=emit)
    details = info.get("best_details") or {}
    rerank = details.get("rerank", "code")
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
                    "feature_dim": net.feature_dim, "rerank": rerank,
                    "head": {"kind": config.method, "mode": "full", "fitted_on": len(data.keys),
                             "pairs": data.pairs, "seed": config.seed, "epochs": info["epochs"],
                             "best_epoch": info["best_epoch"], "stopped": info["stopped"],
                             "tuned_blocks": info["tuned_blocks"]},
                    "metrics": {"selection_percentile": estimate,
                                "selection_percentile_by_space": {k: details.get(k) for k in ("features", "code")},
                                "previous_selection_percentile": selection_before,
                                "train_seconds": info["seconds"], "device": info["device"], "parity": parity},
                    "created_at": utc_now()}
        write_json_atomic(target / "manifest.json", manifest)
        emit({"event": "phase", "phase": "export", "done": 1, "total": 1})
        row = library.install_model(target, activate=False)

    gate = data.check(data.gate)
    weight, bias = library.head(row)
    if activate == "auto" and not (np.isnan(selection_before) or np.isnan(estimate) or estimate >= selection_before):
        # Not worth encoding the library: the gate's figures among the labelled photos only.
        before = _labelled_gate_figures(data, gate, active_codes, active_features, active_space)
        after = _labelled_gate_figures(data, gate, details["codes"], details["features_array"],
                                       _space(rerank, weight, bias))
        accept = False
        emit(_evaluated_event(before, after, False, False, rerank, scope="labelled photos"))
        store.update_model_metrics(row.id, {"held_out_pair_accuracy_estimate": after["pair_accuracy"]})
    else:
        def on_encode(state) -> None:
            emit({"event": "phase", "phase": "encode", "done": state.done, "total": state.total,
                  "rate": state.rate})

        encode_missing(store, row, progress=on_encode, cancel=cancel)
        row_arrays = store.arrays_of(row)
        codes = row_arrays.codes.read(store.next_slot)
        features = row_arrays.features.read(store.next_slot, random_access=True)
        before = gate_figures(library, data, gate, library.codes(), library.features(), active_space, active_codes)
        after = gate_figures(library, data, gate, codes, features, _space(rerank, weight, bias),
                             np.array(codes[data.slots]))
        better = better_or_equal(after, before)
        accept = activate == "always" or (activate == "auto" and better)
        emit(_evaluated_event(before, after, better, accept, rerank, scope="library"))
        store.update_model_metrics(row.id, {
            "held_out_pair_accuracy": after["pair_accuracy"], "previous_held_out_pair_accuracy": before["pair_accuracy"],
            "held_out_percentile": after["percentile"], "previous_held_out_percentile": before["percentile"],
            "held_out_top10": after["top10"], "previous_held_out_top10": before["top10"],
            "held_out_map": after["map"], "previous_held_out_map": before["map"]})
        if accept:
            library.activate(row.id)
    report = {"event": "done", "version": row.id, "name": row.name, "activated": bool(accept),
              "held_out_accuracy_before": before["pair_accuracy"], "held_out_accuracy_after": after["pair_accuracy"],
              **_figure_fields(before, after), "rerank": rerank,
              "seconds": time.monotonic() - started, "train_seconds": info["seconds"],
              "epochs": info["epochs"], "best_epoch": info["best_epoch"], "device": info["device"]}
    emit(report)
    return report


def _labelled_gate_figures(data: Labelled, check: RetrievalCheck, codes: np.ndarray, features: np.ndarray,
                           space) -> dict:
    """Gate figures from searches among the labelled photos only (a version not encoded)."""
    rows = np.arange(len(codes))
    figures = check.figures(lambda row: search_ranking(codes, features, row, space, rows, rows))
    figures["pair_accuracy"] = data.pair_accuracy(codes)
    return figures
