"""Every label read and write, in order, in a LibraryThread of its own (see the package's docstring for why)."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.background import LibraryThread, LibraryWorker
from app.labeling.items import FEEDBACK_SOURCE, SIMILAR, LabelEntry, PairItem, SuggestionBatch
from engine.errors import UserError
from engine.paths import display_path
from engine.store import LabelRow
from engine.suggest import PairSuggestion, canonical, recent_search, suggest_pairs


class LabelService(QObject):
    """Every label read and write, in order, in a LibraryThread of its own; one per window.

    The answers come back as the signals below, in the GUI thread.
    """

    suggested = Signal(int, object)  # request id, SuggestionBatch
    labelsChanged = Signal(int)  # after any label was written or deleted: labels in the library
    writeFailed = Signal(object, str)  # PairSuggestion, why: the pair view takes its label back
    deleted = Signal(int)  # labels deleted
    listed = Signal(int, list)  # request id, [LabelEntry]
    exported = Signal(str, int)  # path, labels written
    feedbackDone = Signal(str)  # a message for the status bar
    failed = Signal(str, str)  # what was being done, why it failed

    def __init__(self, library_path: str | os.PathLike, parent: QObject | None = None):
        super().__init__(parent)
        self._library = LibraryThread(library_path, "lookalike-labels", parent=self)
        # (hash_a, hash_b) -> previous values of that pair, newest last, for undo; touched in
        # the worker thread only, where the writes run in order
        self._undo: dict[tuple[str, str], list[LabelRow | None]] = {}
        # pair -> its label before a result was first marked (None: it had none), for unmarking;
        # worker thread only, like _undo
        self._before_mark: dict[tuple[str, str], LabelRow | None] = {}
        self._request = 0

    def next_request(self) -> int:
        self._request += 1
        return self._request

    def _call(self, what: str, function: Callable[[LibraryWorker], object], done: Callable[[object], None]) -> None:
        self._library.call(function, done, lambda message: self.failed.emit(what, message), what=what)

    # ------------------------------------------------------------------ requests (GUI thread)

    def suggest(self, request_id: int, recent: list, exclude: list, seed: int, count: int) -> None:
        self._call("suggesting pairs", lambda worker: self._suggest(worker, recent, exclude, seed, count),
                   lambda batch: self.suggested.emit(request_id, batch))

    def write(self, pair: PairSuggestion, label: int, source: str) -> None:
        self._library.call(lambda worker: self._write(worker, pair, label, source), self.labelsChanged.emit,
                           lambda message: self.writeFailed.emit(pair, message), what="saving the label")

    def undo(self, key: tuple) -> None:
        self._call("undoing the label", lambda worker: self._undo_label(worker, tuple(key)), self.labelsChanged.emit)

    def delete(self, keys: list) -> None:
        self._call("deleting labels", lambda worker: self._delete(worker, list(keys)), self._on_deleted)

    def feedback(self, query_path: str, result_path: str, label: int) -> None:
        self._call("saving the feedback", lambda worker: self._feedback(worker, query_path, result_path, label),
                   self._on_feedback)

    def unfeedback(self, query_path: str, result_path: str) -> None:
        """Take back the label a mark wrote (the pair's earlier label, if any, comes back);
        a label written since by other means (the pair view, an import) stays."""
        self._call("removing the feedback", lambda worker: self._unfeedback(worker, query_path, result_path),
                   self._on_unfeedback)

    def list_labels(self, request_id: int) -> None:
        self._call("listing labels", self._list, lambda entries: self.listed.emit(request_id, entries))

    def export(self, path: str) -> None:
        self._call("exporting labels", lambda worker: self._export(worker, path),
                   lambda written: self.exported.emit(path, written))

    def shutdown(self) -> None:
        """Close the library after the work already queued, and end the thread."""
        self._library.shutdown()

    def _on_deleted(self, answer: tuple[int, int]) -> None:
        removed, count = answer
        self.deleted.emit(removed)
        self.labelsChanged.emit(count)

    def _on_unfeedback(self, answer: tuple[str, int] | None) -> None:
        if answer is not None:  # None: no mark of this session wrote that label
            self._on_feedback(answer)

    def _on_feedback(self, answer: tuple[str, int]) -> None:
        message, count = answer
        self.feedbackDone.emit(message)
        self.labelsChanged.emit(count)

    # ------------------------------------------------------------------ work (worker thread)

    # engine.index and engine.labels (which loads engine.library) are imported in the worker
    # thread: this module loads with the window, and they would add a good part of a second.

    def _suggest(self, worker: LibraryWorker, recent: list, exclude: list, seed: int, count: int) -> SuggestionBatch:
        from engine.layout import thumbnail_path

        library = worker.library_or_none()
        if library is None:
            return SuggestionBatch([], "There is no library yet: add your photo folders first "
                                       "(File > Add photo folders…).", 0)
        store = library.store
        model = store.active_model()
        if model is None:
            return SuggestionBatch([], "This library has no model yet: add photo folders to index first.",
                                   store.label_count())
        searches = [s for s in (recent_search(store, query, hits) for query, hits in recent) if s is not None]
        batch = suggest_pairs(store, library.codes(), bits=model.bits, count=count, recent=searches,
                              exclude=[tuple(pair) for pair in exclude], seed=seed)
        if batch.live < 2:
            return SuggestionBatch([], f"Labelling needs at least two photos; this library has {batch.live}. "
                                       "Add photo folders first.", batch.labelled)
        thumbs = store.thumbs_dir()

        def thumb(digest: str) -> str | None:
            path = thumbnail_path(thumbs, digest)
            return str(path) if path.exists() else None

        items = [PairItem(pair, thumb(pair.hash_a), thumb(pair.hash_b), batch.boundary) for pair in batch.pairs]
        empty = None if items else ("No more pairs to suggest right now: the pairs the model is unsure about "
                                    "are labelled or were shown in this session.")
        return SuggestionBatch(items, empty, batch.labelled)

    def _write(self, worker: LibraryWorker, pair: PairSuggestion, label: int, source: str) -> int:
        store = worker.library().store
        previous = store.label(pair.hash_a, pair.hash_b)
        store.add_label(pair.hash_a, pair.hash_b, label, source=source, path_a=pair.path_a, path_b=pair.path_b)
        self._undo.setdefault(pair.key, []).append(previous)
        return store.label_count()

    def _undo_label(self, worker: LibraryWorker, key: tuple) -> int:
        history = self._undo.get(key)
        if not history:
            raise UserError("nothing to undo for that pair")
        previous = history.pop()
        store = worker.library().store
        if previous is None:
            store.delete_label(*key)
        else:
            store.add_label(previous.hash_a, previous.hash_b, previous.label, source=previous.source,
                            path_a=previous.path_a, path_b=previous.path_b, created_at=previous.created_at)
        return store.label_count()

    def _delete(self, worker: LibraryWorker, keys: list) -> tuple[int, int]:
        store = worker.library().store
        with store.transaction():
            removed = sum(store.delete_label(a, b) for a, b in keys)
        return removed, store.label_count()

    def _feedback(self, worker: LibraryWorker, query_path: str, result_path: str, label: int) -> tuple[str, int]:
        from engine.labels import photo_hash

        store = worker.library().store
        result = store.image_by_path(result_path)
        if result is None or result.content_hash is None or result.slot is None:
            raise UserError(f"{display_path(os.path.basename(result_path))} is no longer in the library")
        query_hash, indexed = photo_hash(store, query_path)
        if query_hash == result.content_hash:
            raise UserError("that result is the query photo itself")
        self._before_mark.setdefault(canonical(query_hash, result.content_hash),
                                     store.label(query_hash, result.content_hash))
        store.add_label(query_hash, result.content_hash, label, source=FEEDBACK_SOURCE,
                        path_a=os.path.abspath(query_path), path_b=result_path)
        verdict = "similar" if label == SIMILAR else "dissimilar"
        message = f"Marked {display_path(os.path.basename(result_path))} {verdict} to the query"
        if not indexed:
            message += ("; the query is not in the library, so this label counts for training once "
                        "that photo is indexed")
        return message, store.label_count()

    def _unfeedback(self, worker: LibraryWorker, query_path: str, result_path: str) -> tuple[str, int] | None:
        from engine.labels import photo_hash

        store = worker.library().store
        result = store.image_by_path(result_path)
        if result is None or result.content_hash is None:
            return None
        query_hash, _ = photo_hash(store, query_path)
        key = canonical(query_hash, result.content_hash)
        if key not in self._before_mark:
            return None  # no mark of this session wrote it
        previous = self._before_mark.pop(key)
        current = store.label(*key)
        if current is None or current.source != FEEDBACK_SOURCE:
            return None
        if previous is None:
            store.delete_label(*key)
        else:
            store.add_label(previous.hash_a, previous.hash_b, previous.label, source=previous.source,
                            path_a=previous.path_a, path_b=previous.path_b, created_at=previous.created_at)
        return f"Unmarked {display_path(os.path.basename(result_path))}: its label is removed", store.label_count()

    def _list(self, worker: LibraryWorker) -> list[LabelEntry]:
        from engine.layout import thumbnail_path

        library = worker.library_or_none()
        if library is None:
            return []
        store = library.store
        thumbs = store.thumbs_dir()

        def thumb(digest: str, current: str | None) -> str | None:
            path = thumbnail_path(thumbs, digest)
            return str(path) if path.exists() else current

        return [LabelEntry(row, thumb(row.hash_a, row.current_a), thumb(row.hash_b, row.current_b))
                for row in store.label_rows()]

    def _export(self, worker: LibraryWorker, path: str) -> int:
        from engine.labels import export_csv_file

        return export_csv_file(worker.library().store, path)
