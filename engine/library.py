"""A library as the CLI and GUI see it: its store, active model, encoder and search."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import models
from engine.codes import codes_from_logits
from engine.encoder import Encoder, ModelInfo
from engine.errors import DecodeError, EnvironmentProblem, LibraryDamaged, UserError
from engine.hashing import default_min_for_itq, make_head
from engine.imageio import content_hash, decode_image, decode_path, read_file
from engine.paths import default_library_path
from engine.reencode import encode_missing
from engine.search import CodeSpace, FeatureSpace, Probe, SearchParams, refined_vector, search_probe
from engine.store import ModelRow, Store, read_manifest
from engine.similarity import Similarity, describe

log = logging.getLogger(__name__)

FIT_SAMPLE = 100_000


@dataclass(frozen=True)
class Example:
    """One photo in a query, as the active model sees it: code words (W,) and feature (D,).

    ``slots``: the library's slots holding this photo's content (empty when it is not indexed);
    results never include them when the photo is a dissimilar example. ``name`` is its path,
    or "slot N", for messages.
    """

    words: np.ndarray
    feature: np.ndarray
    slots: tuple[int, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class Query:
    """What to search for: one or more photos (several: photos like all of them), refined by
    examples marked similar (``like``) and dissimilar (``unlike``), which results exclude.

    The window keeps one per result list and adds marks with :meth:`refined`.
    """

    photos: tuple[Example, ...]
    like: tuple[Example, ...] = ()
    unlike: tuple[Example, ...] = ()

    def refined(self, like=(), unlike=()) -> "Query":
        """This query with more examples; an indexed photo marked again keeps only its new mark."""
        like, unlike = tuple(like), tuple(unlike)
        marked = like + unlike
        return Query(self.photos, tuple(e for e in self.like if not _same_photo(e, marked)) + like,
                     tuple(e for e in self.unlike if not _same_photo(e, marked)) + unlike)

    @property
    def is_refined(self) -> bool:
        return len(self.photos) > 1 or bool(self.like) or bool(self.unlike)


def _same_photo(example: Example, others) -> bool:
    return bool(example.slots) and any(set(example.slots) & set(o.slots) for o in others)


@dataclass(frozen=True)
class Hit:
    """One search result: both stages' distances, so a face can explain the ranking."""

    path: str
    hamming: int
    score: float
    slot: int
    space: str | None = "features"  # the fine stage the score comes from ("code", or None: Hamming order)
    cosine: float | None = None  # in the code space: the feature cosine to the query

    @property
    def similarity(self) -> Similarity:
        """How alike, in words (engine.similarity): the same for the window and the CLI."""
        return describe(self.score, self.space, self.cosine)


class Library:
    """Open library: one per thread (it owns a SQLite connection and an ONNX session)."""

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True, readonly: bool = False):
        self.path = Path(path) if path is not None else default_library_path()
        self.store = Store.open(self.path, create=create, readonly=readonly)
        self._encoder: Encoder | None = None
        self._encoder_key: tuple | None = None
        self._heads: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # model id -> (W, b)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ models

    def active_model(self) -> ModelRow:
        model = self.store.active_model()
        if model is None:
            raise UserError(f"the library at {self.path} has no model yet (run 'lookalike model build')")
        return model

    def model_info(self, model: ModelRow | None = None) -> ModelInfo:
        model = model or self.active_model()
        return ModelInfo.load(self.store.model_dir(model.id))

    def encoder(self, *, providers: str | list[str] = "auto", threads: int | None = None,
                spin: bool = True) -> Encoder:
        """The active model's encoder, created once per settings."""
        model = self.active_model()
        key = (model.id, str(providers), threads, spin)
        if self._encoder is None or self._encoder_key != key:
            self._encoder = Encoder(self.store.model_dir(model.id), providers=providers, threads=threads,
                                    spin=spin, cache_dir=self.path / "cache" / "tensorrt")
            self._encoder_key = key
        return self._encoder

    def install_model(self, model_dir: str | os.PathLike, *, activate: bool = True, progress=None, cancel=None,
                      workers: int | None = None) -> ModelRow:
        """Add a model version built elsewhere (the default model, a trained one).

        The version is installed inactive; with ``activate`` it is then activated as
        ``activate()`` does, encoding first whatever its backbone has no features for
        (``progress``, ``cancel``: see there). A cancelled or killed activation leaves the
        version installed and the previous one active.
        """
        with self.store.writing():
            row = self._install_model(model_dir)
            if activate:
                row = self.activate(row.id, progress=progress, cancel=cancel, workers=workers)
            return row

    def _install_model(self, model_dir) -> ModelRow:
        info = ModelInfo.load(model_dir)
        codes = None
        backbone_id = read_manifest(model_dir)["backbone_id"]
        weight, bias = models.read_head(model_dir)
        features = self.store.features_file(backbone_id, info.feature_dim)
        if self.store.next_slot and features.rows() >= self.store.next_slot:
            # Same backbone as the features we hold: code the library without decoding.
            codes = self._codes_from_features(backbone_id, info.feature_dim, weight, bias)
        row = self.store.add_model(model_dir, codes, activate=False)
        models.write_head_arrays(self.store.model_dir(row.id), weight, bias)
        return row

    def activate(self, model_id: int, *, progress=None, cancel=None, workers: int | None = None) -> ModelRow:
        """Make a version active, first giving it codes (and features) for every photo.

        Codes come from stored features when the version's backbone has them; photos indexed
        while another backbone was active are decoded again (with ``progress``, cancellable,
        resumable: see engine.reencode).
        """
        with self.store.writing():
            model = self.store.model(model_id)
            encode_missing(self.store, model, workers=workers, progress=progress, cancel=cancel)
            self.store.activate(model.id)
            self._encoder = None
            return self.store.model(model.id)

    def roll_back(self, *, progress=None, cancel=None, workers: int | None = None) -> ModelRow:
        """Re-activate the model active before the current one (Store.roll_back), first giving it
        codes for photos indexed since it was last active (as ``activate`` does)."""
        with self.store.writing():
            target = self.store.previous_model()
            if target is None:
                raise UserError("there is no earlier model to roll back to")
            encode_missing(self.store, target, workers=workers, progress=progress, cancel=cancel)
            row = self.store.roll_back(expected=target.id)
            self._encoder = None
            return row

    def delete_model(self, model_id: int) -> list[Path]:
        """Delete a version that is not active, with its files (Store.delete_model); labels stay."""
        return self.store.delete_model(model_id)

    def _codes_from_features(self, backbone_id: str, dim: int, weight, bias, start: int = 0) -> np.ndarray:
        """Codes of slots ``start`` onwards from the stored features (dead slots zeroed),
        the features checked against their checksums first."""
        array = self.store.features_file(backbone_id, dim)
        check = self.store.verify_array(array, start, self.store.next_slot)
        if check.damaged:
            raise LibraryDamaged(f"{check.describe()}; run 'lookalike repair'")
        features = array.read(self.store.next_slot)
        codes = codes_from_logits(models.head_logits(features[start:], weight, bias))
        codes[~self.store.live_mask()[start:start + codes.shape[0]]] = 0
        return codes

    def refit_head(self, kind: str = "itq", *, seed: int = 0) -> ModelRow:
        """Fit a classical head on the stored features and activate it as a new version."""
        with self.store.writing():
            return self._refit_head(kind, seed)

    def _refit_head(self, kind: str, seed: int) -> ModelRow:
        active = self.active_model()
        live = self.store.live_slots()
        features = self.store.arrays_of(active).features.read(self.store.next_slot)
        sample = live
        if sample.size > FIT_SAMPLE:
            # A fit on 100k photos is as good as on all, and bounds memory and time.
            sample = np.sort(np.random.default_rng(seed).choice(live, FIT_SAMPLE, replace=False))
        try:
            head = make_head(kind, active.bits, seed=seed).fit(np.asarray(features[sample], dtype=np.float32))
        except ValueError as exc:  # too few photos for this head
            raise UserError(f"cannot fit a {kind} head: {exc}") from exc
        linear = head.linear()
        if linear is None:
            raise UserError(f"a {kind} head is not linear and cannot be a model's head")
        weight, bias = linear
        with self.store.work_dir() as tmp:
            target = Path(tmp) / "model"
            base = active.manifest.get("base_name", active.name.rsplit("-", 1)[0])
            models.write_with_head(
                self.store.model_dir(active.id), target, weight, bias,
                {"name": f"{base}-{kind}", "base_name": base, "rerank": "features",
                 "head": {"kind": kind, "fitted_on": int(live.size), "seed": seed}},
            )
            codes = self._codes_from_features(active.backbone_id, active.feature_dim, weight, bias)
            row = self.store.add_model(target, codes, activate=True)
            models.write_head_arrays(self.store.model_dir(row.id), weight, bias)
        self._encoder = None
        return row

    def maybe_refit_default_head(self) -> ModelRow | None:
        """Zero-label policy: move from LSH to ITQ once there are enough photos, and refit
        when the library has doubled since the last fit. Learned heads are never replaced."""
        active = self.active_model()
        head = active.manifest.get("head", {})
        if head.get("kind") not in ("lsh", "itq"):
            return None
        count = int(self.store.live_slots().size)
        if count >= default_min_for_itq(active.bits) and (head.get("kind") == "lsh" or count >= 2 * int(head.get("fitted_on", 0))):
            log.info("refitting the default hash head (ITQ) on %d photos", count)
            return self.refit_head("itq")
        return None

    # ------------------------------------------------------------------ search

    _codes_checked: tuple | None = None  # (model id, next_slot, first row to check next time)

    def codes(self) -> np.ndarray:
        """The active version's codes, checked against their checksums on first use and then
        only what was appended since (about a millisecond per million photos, once)."""
        model = self.active_model()
        array = self.store.arrays_of(model).codes
        next_slot = self.store.next_slot
        checked = self._codes_checked
        if checked is None or checked[:2] != (model.id, next_slot):
            first = checked[2] if checked is not None and checked[0] == model.id else 0
            check = self.store.verify_array(array, first)
            if check.damaged:
                raise LibraryDamaged(f"the codes of model v{model.id} are damaged ({check.describe()}); "
                                     "run 'lookalike repair'")
            self._codes_checked = (model.id, next_slot, max(first, check.recorded))
        return array.read(next_slot)

    def features(self) -> np.ndarray:
        model = self.active_model()
        return self.store.arrays_of(model).features.read(self.store.next_slot, random_access=True)

    def encode_file(self, image_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
        """Query image to (packed code words (W,), feature (D,)); a bad file is the person's error."""
        info = self.model_info()
        try:
            decoded = decode_path(image_path, size=info.input_size, resize=info.resize, thumb_size=0)
        except DecodeError as exc:
            raise UserError(f"{image_path}: {exc.reason}") from exc
        logits, features = self.encoder().encode(decoded.pixels)
        return codes_from_logits(logits)[0], features[0]

    # ------------------------------------------------------------------ queries

    def example_from_file(self, image_path: str | os.PathLike) -> Example:
        """A photo given by path: an indexed photo (found by content, so a copy or a moved file
        counts) uses its stored code and feature; any other is decoded and encoded."""
        try:
            data = read_file(image_path)
        except DecodeError as exc:
            raise UserError(f"{image_path}: {exc.reason}") from exc
        slots = [s for s in self.store.slots_with_hash(content_hash(data)) if s < self.store.next_slot]
        if slots:
            return Example(np.array(self.codes()[slots[0]]), np.asarray(self.features()[slots[0]], np.float32),
                           tuple(slots), os.fspath(image_path))
        info = self.model_info()
        try:
            decoded = decode_image(data, size=info.input_size, resize=info.resize, thumb_size=0)
        except DecodeError as exc:
            raise UserError(f"{image_path}: {exc.reason}") from exc
        logits, features = self.encoder().encode(decoded.pixels)
        return Example(codes_from_logits(logits)[0], features[0], (), os.fspath(image_path))

    def example_from_slot(self, slot: int) -> Example:
        """An indexed photo by slot (a result tile): stored code and feature, no decoding."""
        slot = int(slot)
        if not 0 <= slot < self.store.next_slot:
            raise UserError(f"slot {slot} is not in this library")
        found = self.store.images_for_slots([slot]).get(slot)
        slots = tuple(self.store.slots_with_hash(found[0])) if found and found[0] else (slot,)
        return Example(np.array(self.codes()[slot]), np.asarray(self.features()[slot], np.float32),
                       slots if slot in slots else (slot, *slots), found[1] if found else f"slot {slot}")

    def head(self, model: ModelRow | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A version's linear hash head (W [D, K], b [K]), read once per Library: from the .npy
        files written at install, else (versions installed before them) from model.onnx."""
        model = model or self.active_model()
        head = self._heads.get(model.id)
        if head is None:
            directory = self.store.model_dir(model.id)
            head = models.load_head_arrays(directory, model.feature_dim, model.bits)
            if head is None:
                head = models.read_head(directory)
                if head[0].shape != (model.feature_dim, model.bits) or head[1].shape != (model.bits,):
                    raise EnvironmentProblem(f"model v{model.id}'s head is {head[0].shape}, not "
                                             f"({model.feature_dim}, {model.bits}) as its manifest says")
            self._heads[model.id] = head
        return head

    def rerank_space(self, choice: str | bool = "auto", model: ModelRow | None = None):
        """The fine stage for a SearchParams.rerank choice: "auto" (True) is what the version's
        manifest says ("features" when it says nothing); None for "none" (False)."""
        model = model or self.active_model()
        choice = SearchParams(rerank=choice).rerank_choice()
        if choice == "auto":
            choice = models.rerank_space(model.manifest)
        if choice == "none":
            return None
        if choice == "code":
            return CodeSpace(*self.head(model))
        return FeatureSpace()

    def search_query(self, query: Query, params=None, *, folder: str | os.PathLike | None = None) -> list[Hit]:
        """Best first: how the CLI, the window and the benchmarks search (the trainer's held-out
        check runs the same engine.search functions on a candidate version's arrays).

        Coarse: the union of the Hamming pools of the query photos and the similar examples
        (each candidate keeps its smallest distance), dissimilar examples excluded. Fine: the
        pool ranked in the re-rank space (params.rerank; "auto" is the version's own) by the
        query moved toward the similar and away from the dissimilar examples (Rocchio). With
        "none", a refined query ranks by Hamming distance to its refined code (the sign of the
        same vector in the head's space). ``folder`` keeps only photos under that folder (the
        mask is applied before the coarse search, so k results still come back when it has them).
        """
        params = params or SearchParams()
        if not query.photos:
            raise UserError("a search needs at least one query photo")
        if self.store.next_slot == 0:
            raise UserError(f"the library at {self.path} is empty (run 'lookalike index PATH' first)")
        model = self.active_model()
        self.model_info(model)  # a version this engine cannot read is refused, arrays or not
        space = self.rerank_space(params.rerank_choice(), model)
        live = self.searchable_mask()
        if folder is not None:
            live &= self._folder_mask(folder, live.size)
        codes, features = self.codes(), self.features()
        if min(len(codes), len(features)) < live.size:
            # Only after damage (activation needs complete arrays): answering from part of the
            # library would be a silent wrong answer.
            raise LibraryDamaged(f"model v{model.id} has codes for {min(len(codes), len(features))} "
                                 f"of {live.size} photos (its arrays were damaged); run 'lookalike repair'")
        probe = self._probe(query, space, model)
        # A result is a file the person can open: files gone since the last index run are
        # dropped (k stats) and the search runs again without them, so k still come back.
        for _ in range(3):
            result = search_probe(codes, features, probe, params, live=live, space=space)
            if result.score.size and not (np.isfinite(result.score).all() and np.abs(result.score).max() <= 1.01):
                # Stored features are unit vectors and code scores lie in [-1, 1]: beyond is a
                # damaged row, not a match.
                raise LibraryDamaged(f"the stored features of model v{model.id} are damaged (a "
                                     "score beyond 1); run 'lookalike repair'")
            paths = self.store.paths_for_slots(result.slots)
            cosines = result.cosine if result.cosine is not None else [None] * len(result.slots)
            space_name = None if space is None else space.name
            hits = [Hit(paths[int(slot)], int(ham), float(score), int(slot), space_name,
                        None if cosine is None else float(cosine))
                    for slot, ham, score, cosine in zip(result.slots, result.hamming, result.score, cosines)
                    if int(slot) in paths]
            gone = [hit.slot for hit in hits if not os.path.exists(hit.path)]
            if not gone:
                return hits
            log.info("%d results are no longer on disk; leaving them out", len(gone))
            live[gone] = False
        return [hit for hit in hits if hit.slot not in set(gone)]

    def _probe(self, query: Query, space, model: ModelRow):
        """The query as engine.search sees it: seeds for the coarse stage, the vector for the fine one."""
        def stack(examples) -> np.ndarray | None:
            return np.stack([np.asarray(e.feature, np.float32) for e in examples]) if examples else None

        photos, like, unlike = stack(query.photos), stack(query.like), stack(query.unlike)
        feature = photos[0] if len(photos) == 1 else photos.mean(axis=0)
        feature = feature / max(float(np.linalg.norm(feature)), 1e-12) if query.is_refined else feature
        seeds = [np.asarray(e.words, np.uint64) for e in (*query.photos, *query.like)]
        if space is None:
            vector = feature
            if query.is_refined:  # Hamming only: the refined query's own code is the one seed
                head = CodeSpace(*self.head(model))
                embed = [None if x is None else head.embed(x) for x in (photos, like, unlike)]
                seeds = [codes_from_logits(refined_vector(*embed)[None, :])[0]]
        elif query.is_refined:
            embed = [None if x is None else space.embed(x) for x in (photos, like, unlike)]
            vector = space.finish(refined_vector(*embed))
        else:
            vector = space.embed(photos[0])
        exclude = np.array(sorted({s for e in query.unlike for s in e.slots}), dtype=np.int64)
        return Probe(seeds=np.stack(seeds), vector=vector, feature=feature, exclude=exclude)

    def search_vector(self, words: np.ndarray, feature: np.ndarray, params=None, *,
                      folder: str | os.PathLike | None = None) -> list[Hit]:
        """One query photo's code words and feature; see :meth:`search_query`."""
        return self.search_query(Query((Example(np.asarray(words), np.asarray(feature)),)), params, folder=folder)

    def searchable_mask(self) -> np.ndarray:
        """Boolean mask over slots: the photos a search may return (live, under a reachable root)."""
        live = self.store.live_mask()
        unreachable = self._unreachable_slots()
        live[unreachable[unreachable < live.size]] = False
        return live

    def _unreachable_slots(self) -> np.ndarray:
        """Slots of the photos under roots that are not there now (an unplugged drive, a moved folder)."""
        gone = [root_id for root_id, root in self.store.roots() if not os.path.isdir(root)]
        return self.store.slots_of_roots(gone) if gone else np.zeros(0, dtype=np.int64)

    def roots(self) -> list[dict]:
        """Each root: path, whether it is reachable now, photos indexed and files skipped under it."""
        return [{"path": path, "reachable": os.path.isdir(path), "photos": photos, "skipped": skipped}
                for _, path, photos, skipped in self.store.root_counts()]

    def forget_root(self, path: str | os.PathLike) -> int:
        """Forget a root and its photos (labels stay: they are keyed by content); returns how many."""
        absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
        known = [root for _, root in self.store.roots()]
        if absolute not in known:
            listed = ", ".join(known) or "none"
            raise UserError(f"{path} is not a root of this library (its roots: {listed})")
        with self.store.writing():
            return self.store.remove_root(absolute)

    # -- folder filter (search_vector's folder=) ----------------------------------------

    _FOLDER_CACHE_SIZE = 8
    _folder_slots: dict | None = None  # folder -> (catalog generation, slots under it)

    def _folder_mask(self, folder: str | os.PathLike, size: int) -> np.ndarray:
        """Boolean mask over ``size`` slots: the slots of photos under ``folder`` (any depth).

        One range query on the images table's path index, cached per folder until the
        catalog changes: the key holds SQLite's data_version (bumped by other connections'
        commits, e.g. an indexer's) and this connection's own change count.
        """
        directory = os.path.abspath(os.path.expanduser(os.fspath(folder)))
        generation = self.store.change_generation()
        if self._folder_slots is None:
            self._folder_slots = {}
        cache = self._folder_slots
        slots = cache.get(directory)
        if slots is None or slots[0] != generation:
            if len(cache) >= self._FOLDER_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            slots = cache[directory] = (generation, self.store.slots_under(directory))
        mask = np.zeros(size, dtype=bool)
        found = slots[1]
        mask[found[found < size]] = True
        return mask

    def search_file(self, image_path: str | os.PathLike, params=None) -> list[Hit]:
        return self.search_query(Query((self.example_from_file(image_path),)), params)

    # ------------------------------------------------------------------ status

    def status(self) -> dict:
        counts = self.store.counts()
        model = self.store.active_model()
        return {
            "library": str(self.path),
            **counts,
            "roots": [path for _, path in self.store.roots()],
            "model": None if model is None else {
                "version": model.id, "name": model.name, "bits": model.bits,
                "feature_dim": model.feature_dim, "head": model.manifest.get("head", {}),
                "created_at": model.created_at, "rerank": models.rerank_space(model.manifest),
            },
            "skip_reasons": dict(self.store.skip_reasons()),
            "last_run": self.store.last_run(),
        }
