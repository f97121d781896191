"""Bring a model version's features and codes up to every slot, decoding photos again when its backbone is new."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine import models
from engine.codes import codes_from_logits
from engine.encoder import Encoder, ModelInfo
from engine.errors import Cancelled, DecodeError, LibraryDamaged
from engine.imageio import content_hash as hash_of, decode_image, read_file
from engine.layout import thumbnail_path
from engine.store import ModelRow, Store
from engine.workers import Crashed, DecoderPool, crash_if_marked

log = logging.getLogger(__name__)

CHUNK = 64  # slots per write: one fsync per chunk, progress a few times a second


@dataclass
class EncodeProgress:
    """How far a catch-up is: ``done`` of ``total`` slots, and how many fell back or failed."""

    done: int = 0
    total: int = 0
    from_thumbnail: int = 0
    unreadable: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


def _decode_for_slot(path: str | None, content_hash: str, thumb: str, size: int, resize: str
                     ) -> tuple[np.ndarray | None, str]:
    """(pixels, source) for one indexed photo: the original when it still holds the indexed
    content, else the thumbnail cached at indexing, else (None, reason)."""
    if path is not None:
        crash_if_marked(path)  # tests only; see engine.workers.TEST_CRASH_ENV
        try:
            data = read_file(path)
            if hash_of(data) == content_hash:
                return decode_image(data, size=size, resize=resize, thumb_size=0).pixels, "original"
        except (DecodeError, MemoryError):  # the thumbnail will do
            data = None
    try:
        return decode_image(read_file(thumb), size=size, resize=resize, thumb_size=0).pixels, "thumbnail"
    except DecodeError as exc:
        return None, exc.reason


def _slot_sources(store: Store, start: int, stop: int) -> dict[int, tuple[str, str]]:
    """slot -> (path, content hash) for the live slots in [start, stop)."""
    return {slot: (path, digest) for slot, path, digest in store.images_in_slot_range(start, stop)}


SMALL_JOB = 16  # fewer photos than this are decoded in this process: a spawned pool costs a second


def encode_missing(store: Store, model: ModelRow, *, workers: int | None = None, providers: str | list[str] = "auto",
                   progress: Callable[[EncodeProgress], None] | None = None,
                   cancel: threading.Event | None = None) -> EncodeProgress:
    """Extend ``model``'s feature and code arrays to ``store.next_slot``; resumable.

    Codes for slots whose features of this backbone are stored come from those features (no
    decoding). The rest are decoded again (originals, or their thumbnails when an original
    has changed or gone since it was indexed), encoded, and appended chunk by chunk with an
    fsync, then their checksums committed, so a killed or cancelled run keeps what it wrote
    and the next one continues. Dead slots and photos that can no longer be read get zero
    rows (they never match). Needs the writer lock (the caller's or its own); raises
    ``Cancelled`` on ``cancel``.
    """
    with store.writing():
        model_arrays = store.arrays_of(model)
        need = store.next_slot
        have_features, have_codes = model_arrays.cut_to_resume(need)
        if have_codes < have_features:  # the cheap part first: codes from stored features
            codes_from_stored_features(store, model, have_codes, have_features)
        state = EncodeProgress(total=need - have_features)
        if state.total == 0:
            return state
        log.info("encoding %d photos with model v%d (backbone %s)", state.total, model.id, model.backbone_id)
        with SlotEncoder(store, model, workers=0 if state.total < SMALL_JOB else workers, providers=providers) as encoder:
            for start in range(have_features, need, CHUNK):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"stopped after {state.done} of {state.total} photos; run again to continue")
                stop = min(start + CHUNK, need)
                features, codes = encoder.encode(start, stop, state)
                # Features before codes (append's order): a crash between leaves codes short,
                # which the cheap path above completes on the next run.
                sums = store.append_rows(model_arrays, start, features=features, codes=codes)
                with store.transaction():
                    store.record_sums(sums)
                state.done += stop - start
                if progress:
                    progress(state)
        return state


def codes_from_stored_features(store: Store, model: ModelRow, start: int, stop: int) -> None:
    """Write ``model``'s codes for slots [start, stop) from its backbone's stored features,
    checked against their checksums first (codes are never made from damaged features)."""
    model_arrays = store.arrays_of(model)
    check = store.verify_array(model_arrays.features, start, stop)
    if check.damaged:
        raise LibraryDamaged(f"{check.describe()}; run 'lookalike repair'")
    weight, bias = models.read_head(store.model_dir(model.id))
    live = store.live_mask()
    stored = model_arrays.features.read(stop)
    for first in range(start, stop, 65536):  # bounded memory at a million photos
        last = min(first + 65536, stop)
        codes = codes_from_logits(models.head_logits(stored[first:last], weight, bias))
        codes[~live[first:last]] = 0
        sums = store.write_rows(model_arrays.codes, first, codes)
        with store.transaction():
            store.record_sums(sums)


class SlotEncoder:
    """Decodes the photos of a range of slots again and encodes them with a model version."""

    def __init__(self, store: Store, model: ModelRow, *, workers: int | None = None,
                 providers: str | list[str] = "auto"):
        self.store, self.model = store, model
        model_dir = store.model_dir(model.id)
        self.info = ModelInfo.load(model_dir)
        self.encoder = Encoder(model_dir, providers=providers, spin=False)
        self.thumbs_dir = str(store.thumbs_dir())
        self.live = store.live_mask()
        workers = (os.cpu_count() or 1) if workers is None else workers
        self.pool = DecoderPool(workers) if workers > 0 else None

    def __enter__(self) -> "SlotEncoder":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def encode(self, start: int, stop: int, state: EncodeProgress) -> tuple[np.ndarray, np.ndarray]:
        """(features float16, codes uint64) rows for slots [start, stop); zero rows for dead
        slots and photos that can no longer be read (counted in ``state``)."""
        model, info = self.model, self.info
        sources = _slot_sources(self.store, start, stop)
        jobs = {slot: (path, digest, str(thumbnail_path(self.thumbs_dir, digest)), info.input_size, info.resize)
                for slot, (path, digest) in sources.items() if slot < len(self.live) and self.live[slot]}
        decoded = (_decode_in_pool(self.pool, jobs) if self.pool is not None
                   else {slot: _decode_for_slot(*job) for slot, job in jobs.items()})
        features = np.zeros((stop - start, model.feature_dim), dtype=np.float16)
        codes = np.zeros((stop - start, model.words), dtype=np.uint64)
        ok = [slot for slot, (pixels, _) in decoded.items() if pixels is not None]
        if ok:
            logits, feats = self.encoder.encode(np.stack([decoded[slot][0] for slot in ok]))
            rows = np.array(ok) - start
            features[rows] = feats.astype(np.float16)
            codes[rows] = codes_from_logits(logits)
        state.from_thumbnail += sum(1 for _, source in decoded.values() if source == "thumbnail")
        state.unreadable += len(decoded) - len(ok)
        for slot, (pixels, reason) in decoded.items():
            if pixels is None:
                log.warning("slot %d (%s): cannot be encoded again: %s", slot, sources[slot][0], reason)
        return features, codes


def _decode_star(job: tuple) -> tuple[np.ndarray | None, str]:
    return _decode_for_slot(*job)


def _decode_in_pool(pool: DecoderPool, jobs: dict[int, tuple]) -> dict[int, tuple[np.ndarray | None, str]]:
    """slot -> _decode_for_slot(*job) in the pool; a photo whose original kills its decoder is
    encoded from its thumbnail (in the pool too), or given up with the reason."""
    decoded: dict[int, tuple[np.ndarray | None, str]] = {}
    crashed: dict[int, tuple] = {}
    for slot, result in pool.imap(_decode_star, jobs, window=max(4, pool.workers * 4), arg_of=jobs.get):
        if isinstance(result, Crashed):
            path, *rest = jobs[slot]
            log.warning("slot %d (%s): %s; using its thumbnail", slot, path, result.reason)
            crashed[slot] = (None, *rest)
        else:
            decoded[slot] = result
    for slot, result in pool.imap(_decode_star, crashed, window=1, arg_of=crashed.get):
        decoded[slot] = (None, result.reason) if isinstance(result, Crashed) else result
    return decoded


def is_complete(store: Store, model: ModelRow) -> bool:
    """Whether ``model`` has codes and features for every slot (so activating it is instant)."""
    return store.covers(model)
