"""Labelling in the window: the pair view, the list of labels, and relevance feedback on results.

Every read and write of the catalog here happens in one worker thread (:class:`LabelService`'s
LibraryThread, owning a Library of its own). A label is one small row, but the catalog is shared with the
indexer and the trainer, and SQLite makes a writer wait (up to the store's 30 s busy
timeout) while another holds the write lock; the GUI thread must never be the one waiting.
One thread also orders the work: an undo runs after the write it undoes, and a batch of
suggestions asked for after a label already leaves that label's pair out.

The pair view is a dock of the main window rather than a page of its own: the person can
label next to the results they just searched (and give feedback on them), float it as a
window of its own for larger photos, or close it, without touching the results area.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QIcon, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.background import LibraryThread, LibraryWorker
from app.icons import icon
from app.workers import ImageLoader
from engine.errors import UserError
from engine.index import thumbnail_path
from engine.labels import export_csv_file, photo_hash
from engine.paths import display_path
from engine.store import LabelRow
from engine.suggest import RECENT_SEARCH, Boundary, PairSuggestion, recent_search, suggest_pairs

log = logging.getLogger(__name__)

SIMILAR, DISSIMILAR = 1, -1
PAIR_SOURCE = "pairs"  # labels written in the pair view
FEEDBACK_SOURCE = "feedback"  # labels written from a result's menu
BATCH = 20  # pairs asked for at a time
REFILL_AT = 3  # ask for the next batch when this few are left
RECENT_SEARCHES = 20  # searches remembered for suggestions
RECENT_RESULTS = 20  # results of each remembered search
PAIR_IMAGE = QSize(360, 360)
TABLE_THUMB = QSize(48, 48)
_ROOT = QModelIndex()  # the invisible root of a table model


@dataclass(frozen=True)
class PairItem:
    """A suggestion as the view shows it: the pair and its cached thumbnails."""

    pair: PairSuggestion
    thumb_a: str | None
    thumb_b: str | None
    boundary: Boundary | None


@dataclass(frozen=True)
class SuggestionBatch:
    """The worker's answer to a request for pairs; ``empty`` says why there are none."""

    items: list[PairItem]
    empty: str | None
    label_count: int


@dataclass(frozen=True)
class LabelEntry:
    """A label as the labels table shows it."""

    row: LabelRow
    thumb_a: str | None
    thumb_b: str | None


# ------------------------------------------------------------------ the service


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

    def list_labels(self, request_id: int) -> None:
        self._call("listing labels", self._list, lambda entries: self.listed.emit(request_id, entries))

    def export(self, path: str) -> None:
        self._call("exporting labels", lambda worker: export_csv_file(worker.library().store, path),
                   lambda written: self.exported.emit(path, written))

    def shutdown(self) -> None:
        """Close the library after the work already queued, and end the thread."""
        self._library.shutdown()

    def _on_deleted(self, answer: tuple[int, int]) -> None:
        removed, count = answer
        self.deleted.emit(removed)
        self.labelsChanged.emit(count)

    def _on_feedback(self, answer: tuple[str, int]) -> None:
        message, count = answer
        self.feedbackDone.emit(message)
        self.labelsChanged.emit(count)

    # ------------------------------------------------------------------ work (worker thread)

    def _suggest(self, worker: LibraryWorker, recent: list, exclude: list, seed: int, count: int) -> SuggestionBatch:
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
        store = worker.library().store
        result = store.image_by_path(result_path)
        if result is None or result.content_hash is None or result.slot is None:
            raise UserError(f"{display_path(os.path.basename(result_path))} is no longer in the library")
        query_hash, indexed = photo_hash(store, query_path)
        if query_hash == result.content_hash:
            raise UserError("that result is the query photo itself")
        store.add_label(query_hash, result.content_hash, label, source=FEEDBACK_SOURCE,
                        path_a=os.path.abspath(query_path), path_b=result_path)
        verdict = "similar" if label == SIMILAR else "dissimilar"
        message = f"Marked {display_path(os.path.basename(result_path))} {verdict} to the query"
        if not indexed:
            message += ("; the query is not in the library, so this label counts for training once "
                        "that photo is indexed")
        return message, store.label_count()

    def _list(self, worker: LibraryWorker) -> list[LabelEntry]:
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


# ------------------------------------------------------------------ the pair view


def _describe(item: PairItem) -> str:
    pair, boundary = item.pair, item.boundary
    if pair.reason == RECENT_SEARCH:
        return (f"From your search for {display_path(os.path.basename(pair.path_a))}: a result at Hamming distance "
                f"{pair.hamming}.")
    where = "" if boundary is None else (
        f" (its boundary is {boundary.value:g}, " +
        ("from your labels)" if boundary.source == "labels" else "from the photos' neighbours until you label some)"))
    return f"The model is unsure about this pair: Hamming distance {pair.hamming}{where}."


class _PairSide(QWidget):
    """One photo of the pair and its file name."""

    def __init__(self):
        super().__init__()
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(QSize(200, 200))
        self.image.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image.setFrameShape(QFrame.Shape.StyledPanel)
        self.name = QLabel()
        self.name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.name.setWordWrap(True)
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.name)
        self.full = False  # the photo itself is on show, not its thumbnail

    def show_path(self, path: str) -> None:
        self.image.clear()
        self.image.setText("Loading…")
        self.full = False
        self.name.setText(display_path(os.path.basename(path)))
        self.name.setToolTip(display_path(path))
        self.image.setToolTip(display_path(path))

    def show_image(self, image: QImage, full: bool) -> None:
        if self.full and not full:
            return  # the thumbnail came after the photo itself
        if image.isNull():
            if not self.full and self.image.pixmap().isNull():
                self.image.setText("(cannot show this image)")
            return
        self.full = self.full or full
        self.image.setPixmap(QPixmap.fromImage(image))


class PairLabelView(QWidget):
    """Shows one suggested pair at a time: Similar (S), Dissimilar (D), Skip (Space), Undo (Ctrl+Z)."""

    def __init__(self, service: LabelService, recent_searches: Callable[[], list] = list,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.service = service
        self._recent_searches = recent_searches
        self._queue: deque[PairItem] = deque()
        self.current: PairItem | None = None
        self._seen: set[tuple[str, str]] = set()
        self._labelled: list[PairItem] = []  # this session's labels, newest last, for undo
        self._request = 0  # the request in flight, 0 when none
        self._exhausted: str | None = None
        self._seed = random.getrandbits(31)
        self._batches = 0
        self.session_count = 0
        self.library_count: int | None = None
        self._build()
        self.loader = ImageLoader(PAIR_IMAGE, threads=2, parent=self)
        self.loader.loaded.connect(self._on_image)
        service.suggested.connect(self._on_suggested)
        service.writeFailed.connect(self._on_write_failed)
        service.failed.connect(self._on_failed)
        service.labelsChanged.connect(self._on_count)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def _build(self) -> None:
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.side_a, self.side_b = _PairSide(), _PairSide()
        sides = QHBoxLayout()
        sides.addWidget(self.side_a, 1)
        sides.addWidget(self.side_b, 1)

        def action(text: str, name: str, keys, slot) -> tuple[QAction, QPushButton]:
            act = QAction(icon(name), text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            # only while the view (or a child) has the focus: S and D must not fire in the search box
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.triggered.connect(slot)
            self.addAction(act)
            hint = QKeySequence(keys[0]).toString(QKeySequence.SequenceFormat.NativeText)
            button = QPushButton(icon(name), f"{text}  ({hint})")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # so Space never presses a button by focus
            button.setToolTip(f"{text} ({hint})")
            button.clicked.connect(act.trigger)
            return act, button

        self.similar_action, self.similar_button = action("Similar", "similar", ["S"], self.mark_similar)
        self.dissimilar_action, self.dissimilar_button = action("Dissimilar", "dissimilar", ["D"],
                                                                self.mark_dissimilar)
        self.skip_action, self.skip_button = action("Skip", "skip", ["Space", "Right"], self.skip)
        self.undo_action, self.undo_button = action("Undo", "undo", [QKeySequence.StandardKey.Undo], self.undo)
        buttons = QHBoxLayout()
        for button in (self.similar_button, self.dissimilar_button, self.skip_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.undo_button)

        pair_page = QWidget()
        pair_layout = QVBoxLayout(pair_page)
        pair_layout.setContentsMargins(0, 0, 0, 0)
        pair_layout.addWidget(self.reason)
        pair_layout.addLayout(sides, 1)
        pair_layout.addLayout(buttons)

        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.retry_button = QPushButton("Look again")
        self.retry_button.clicked.connect(self.refresh)
        message_page = QWidget()
        message_layout = QVBoxLayout(message_page)
        message_layout.addStretch(1)
        message_layout.addWidget(self.message)
        message_layout.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignHCenter)
        message_layout.addStretch(1)

        self.stack = QStackedWidget()
        self.stack.addWidget(pair_page)
        self.stack.addWidget(message_page)
        self.pair_page, self.message_page = pair_page, message_page

        self.counter = QLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.counter)
        self._show_message("Finding pairs to label…", retry=False)
        self._update_counter()

    # ------------------------------------------------------------------ state

    def start(self) -> None:
        """Ask for pairs unless some are on show or on the way."""
        if self.current is None and self._request == 0:
            self._request_batch()

    def refresh(self) -> None:
        """Forget the queue and ask again (the library or the model may have changed)."""
        self._queue.clear()
        self._seen.clear()  # skipped pairs may come back; labelled ones never do
        self._exhausted = None
        self.current = None
        self._show_message("Finding pairs to label…", retry=False)
        self._request_batch()

    def _request_batch(self) -> None:
        recent = [(query, list(hits)) for query, hits in self._recent_searches()]
        exclude = sorted(self._seen)
        self._batches += 1
        self._request = self.service.next_request()
        self.service.suggest(self._request, recent, exclude, self._seed + self._batches, BATCH)

    def is_empty_state(self) -> bool:
        return self.stack.currentWidget() is self.message_page

    def queued(self) -> list[PairItem]:
        """The pairs waiting after the one on show."""
        return list(self._queue)

    def _show_message(self, text: str, *, retry: bool = True) -> None:
        self.message.setText(text)
        self.retry_button.setVisible(retry)
        self.stack.setCurrentWidget(self.message_page)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        for act in (self.similar_action, self.dissimilar_action, self.skip_action):
            act.setEnabled(on)
        for button in (self.similar_button, self.dissimilar_button, self.skip_button):
            button.setEnabled(on)
        self.undo_action.setEnabled(bool(self._labelled))
        self.undo_button.setEnabled(bool(self._labelled))

    def _update_counter(self) -> None:
        library = "…" if self.library_count is None else f"{self.library_count:,}"
        self.counter.setText(f"{self.session_count} labelled this session, {library} in the library")

    def _on_suggested(self, request_id: int, batch: SuggestionBatch) -> None:
        if request_id != self._request:
            return
        self._request = 0
        self.library_count = batch.label_count
        self._update_counter()
        for item in batch.items:
            if item.pair.key not in self._seen:
                self._seen.add(item.pair.key)
                self._queue.append(item)
        if not batch.items:
            self._exhausted = batch.empty
        if self.current is None:
            self._advance()

    def _advance(self) -> None:
        self.current = self._queue.popleft() if self._queue else None
        if len(self._queue) < REFILL_AT and self._request == 0 and self._exhausted is None:
            self._request_batch()
        if self.current is None:
            if self._request:
                self._show_message("Finding pairs to label…", retry=False)
            else:
                self._show_message(self._exhausted or "No more pairs to suggest right now.")
            return
        self._show(self.current)

    def _show(self, item: PairItem) -> None:
        pair = item.pair
        self.reason.setText(_describe(item))
        generation = self.loader.reset()
        for side, key, path, thumb in ((self.side_a, "a", pair.path_a, item.thumb_a),
                                       (self.side_b, "b", pair.path_b, item.thumb_b)):
            side.show_path(path)
            if thumb:
                self.loader.request((generation, key, False), thumb)  # the cached thumbnail: at once
            self.loader.request((generation, key, True), path, thumb)  # then the photo itself
        self.stack.setCurrentWidget(self.pair_page)
        self._set_enabled(True)

    def _on_image(self, generation: int, key: object, image: QImage) -> None:
        if generation != self.loader.generation or not isinstance(key, tuple):
            return
        _, side, full = key
        (self.side_a if side == "a" else self.side_b).show_image(image, full)

    # ------------------------------------------------------------------ actions

    def mark_similar(self) -> None:
        self._label(SIMILAR)

    def mark_dissimilar(self) -> None:
        self._label(DISSIMILAR)

    def _label(self, label: int) -> None:
        item = self.current
        if item is None:
            return
        self._labelled.append(item)
        self.session_count += 1
        self._update_counter()
        self.service.write(item.pair, label, PAIR_SOURCE)
        self._advance()

    def skip(self) -> None:
        if self.current is not None:
            self._advance()

    def undo(self) -> None:
        """Take back the last label of this session and show its pair again."""
        if not self._labelled:
            return
        item = self._labelled.pop()
        self.session_count -= 1
        self._update_counter()
        self.service.undo(item.pair.key)
        if self.current is not None:
            self._queue.appendleft(self.current)
        self.current = item
        self._show(item)

    def _on_write_failed(self, pair: PairSuggestion, message: str) -> None:
        for i in range(len(self._labelled) - 1, -1, -1):
            if self._labelled[i].pair == pair:
                del self._labelled[i]
                self.session_count -= 1
                break
        self._update_counter()
        self._set_enabled(self.current is not None)
        self.reason.setText(f"The label of {display_path(os.path.basename(pair.path_a))} and "
                            f"{display_path(os.path.basename(pair.path_b))} "
                            f"was not saved: {message}")

    def _on_count(self, count: int) -> None:
        self.library_count = count
        self._update_counter()
        self._set_enabled(self.current is not None)

    def _on_failed(self, what: str, message: str) -> None:
        if what == "suggesting pairs":
            self._request = 0
            if self.current is None:
                self._show_message(f"Cannot suggest pairs: {message}")
        elif what == "undoing the label":
            self.reason.setText(f"Undo failed: {message}")

    def shutdown(self) -> None:
        self.loader.shutdown()


# ------------------------------------------------------------------ the labels dialog


def _local_time(stamp: str) -> str:
    """A stored UTC time as the person's local time, to the minute (sorts like the original)."""
    try:
        return _dt.datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


class LabelsModel(QAbstractTableModel):
    """Every label: the two photos (thumbnail and path), similar or dissimilar, source, date."""

    COLUMNS = ("Photo A", "Photo B", "Label", "Source", "Labelled")
    KeyRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._entries: list[LabelEntry] = []
        self._icons: dict[tuple[int, int], QIcon] = {}
        self._requested: set[tuple[int, int]] = set()
        self.loader = ImageLoader(TABLE_THUMB, threads=1, parent=self)
        self.loader.loaded.connect(self._on_loaded)

    def set_entries(self, entries: list[LabelEntry]) -> None:
        self.beginResetModel()
        self.loader.reset()
        self._entries = list(entries)
        self._icons.clear()
        self._requested.clear()
        self.endResetModel()

    def entry(self, row: int) -> LabelEntry:
        return self._entries[row]

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry, column = self._entries[index.row()], index.column()
        row = entry.row
        if role == self.KeyRole:
            return row.key
        if column in (0, 1):
            current, labelled = (row.current_a, row.path_a) if column == 0 else (row.current_b, row.path_b)
            if role == Qt.ItemDataRole.DisplayRole:
                return display_path(current) if current else f"{display_path(labelled or '?')} (not in the library now)"
            if role == Qt.ItemDataRole.ToolTipRole:
                text = display_path(current) if current else "not in the library now"
                return (text if not labelled or labelled == current
                        else f"{text}\nlabelled as {display_path(labelled)}")
            if role == Qt.ItemDataRole.DecorationRole:
                return self._icon(index.row(), column, entry.thumb_a if column == 0 else entry.thumb_b)
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 2:
                return "Similar" if row.label == SIMILAR else "Dissimilar"
            if column == 3:
                return row.source
            if column == 4:
                return _local_time(row.created_at)
        if role == Qt.ItemDataRole.DecorationRole and column == 2:
            return icon("similar" if row.label == SIMILAR else "dissimilar")
        return None

    def _icon(self, row: int, column: int, path: str | None):
        key = (row, column)
        found = self._icons.get(key)
        if found is None and path and key not in self._requested:
            self._requested.add(key)
            self.loader.request(key, path)
        return found

    def _on_loaded(self, generation: int, key: object, image: QImage) -> None:
        if generation != self.loader.generation or image.isNull():
            return
        self._icons[key] = QIcon(QPixmap.fromImage(image))
        index = self.index(*key)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def shutdown(self) -> None:
        self.loader.shutdown()


class LabelsDialog(QDialog):
    """All labels in a table: delete some (Delete), export all as CSV; follows every change."""

    def __init__(self, service: LabelService, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Labels")
        self.service = service
        self._request = 0
        self._stale = False
        self.model = LabelsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)  # newest first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(TABLE_THUMB)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setDefaultSectionSize(TABLE_THUMB.height() + 6)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column in (2, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

        self.delete_action = QAction(icon("dissimilar"), "Delete", self)
        self.delete_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")])
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self.delete_selected)
        self.table.addAction(self.delete_action)
        self.delete_button = QPushButton("Delete  (Del)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self.choose_export)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(900, 520)

        service.listed.connect(self._on_listed)
        service.deleted.connect(self._on_deleted)
        service.exported.connect(self._on_exported)
        service.failed.connect(self._on_failed)
        service.labelsChanged.connect(self._on_labels_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()
        self.refresh()

    def refresh(self) -> None:
        self._request = self.service.next_request()
        self.service.list_labels(self._request)

    def _on_labels_changed(self, count: int) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self._stale = True  # listed again when shown

    def showEvent(self, event) -> None:
        if self._stale:
            self._stale = False
            self.refresh()
        super().showEvent(event)

    def _on_listed(self, request_id: int, entries: list) -> None:
        if request_id != self._request:
            return
        self._request = 0
        self.model.set_entries(entries)
        if not entries:
            self.status.setText("No labels yet: label pairs (Ctrl+L), or mark results similar or dissimilar "
                                "to the query from their menu.")
        else:
            similar = sum(1 for e in entries if e.row.label == SIMILAR)
            self.status.setText(f"{len(entries):,} labels: {similar:,} similar, {len(entries) - similar:,} dissimilar")
        self._update_buttons()

    @property
    def loaded(self) -> bool:
        """No listing is on the way: the table shows the library's labels."""
        return self._request == 0

    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(self.table.selectionModel().hasSelection())
        self.export_button.setEnabled(self.model.rowCount() > 0)

    def selected_keys(self) -> list[tuple[str, str]]:
        rows = {self.proxy.mapToSource(index).row() for index in self.table.selectionModel().selectedRows()}
        return [self.model.entry(row).row.key for row in sorted(rows)]

    def delete_selected(self) -> None:
        keys = self.selected_keys()
        if not keys or not self.confirm_delete(len(keys)):
            return
        self.service.delete(keys)

    def confirm_delete(self, count: int) -> bool:
        """Labels are the person's work: ask before deleting any."""
        what = "this label" if count == 1 else f"these {count} labels"
        answer = QMessageBox.question(self, "Delete labels", f"Delete {what}? This cannot be undone.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_deleted(self, removed: int) -> None:
        if removed:
            self.status.setText(f"Deleted {removed} label{'s' if removed != 1 else ''}")

    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", "labels.csv", "CSV files (*.csv)")
        if path:
            self.export_to(path)

    def export_to(self, path: str | os.PathLike) -> None:
        self.service.export(str(path))

    def _on_exported(self, path: str, count: int) -> None:
        self.status.setText(f"Exported {count:,} labels to {path}")

    def _on_failed(self, what: str, message: str) -> None:
        if what in ("listing labels", "deleting labels", "exporting labels"):
            if what == "listing labels":
                self._request = 0
            self.status.setText(message)

    def shutdown(self) -> None:
        self.model.shutdown()


# ------------------------------------------------------------------ in the main window


class LabelingController(QObject):
    """What labelling adds to the main window: the Labels menu, the pair dock, the labels dialog,
    feedback on results and the recent searches the suggestions draw on."""

    def __init__(self, window: QMainWindow, library_path: str | os.PathLike):
        super().__init__(window)
        self.window = window
        self.library_path = Path(library_path)
        self._service: LabelService | None = None
        self.dock: QDockWidget | None = None
        self.view: PairLabelView | None = None
        self.dialog: LabelsDialog | None = None
        self.shown_query: str | QImage | None = None  # the query of the results on show
        self.recent: deque[tuple[str, tuple[tuple[str, int], ...]]] = deque(maxlen=RECENT_SEARCHES)

        menu = window.menuBar().addMenu("&Labels")
        self.label_pairs_action = QAction(icon("label-pairs"), "&Label pairs…", window,
                                          shortcut=QKeySequence("Ctrl+L"), triggered=self.open_pair_view)
        self.labels_action = QAction(icon("labels"), "Labe&ls…", window, triggered=self.open_labels_dialog)
        menu.addAction(self.label_pairs_action)
        menu.addAction(self.labels_action)

    @property
    def service(self) -> LabelService:
        """The label worker, started on first use (a window that never labels has no such thread)."""
        if self._service is None:
            self._service = LabelService(self.library_path, parent=self)
            self._service.feedbackDone.connect(self._on_feedback_done)
            self._service.failed.connect(self._on_failed)
        return self._service

    # ------------------------------------------------------------------ searches

    def remember_search(self, query: str | QImage | None, items: Sequence) -> None:
        """Results of ``query`` are on show: keep the search for suggestions (files only)."""
        self.shown_query = query
        if isinstance(query, str) and items:
            hits = tuple((item.path, int(item.hamming)) for item in items[:RECENT_RESULTS])
            # the same query again replaces its older entry
            for entry in [e for e in self.recent if e[0] == query]:
                self.recent.remove(entry)
            self.recent.appendleft((query, hits))

    def recent_searches(self) -> list:
        return list(self.recent)

    # ------------------------------------------------------------------ feedback

    def add_feedback_actions(self, menu: QMenu, result_path: str) -> None:
        """"Mark similar/dissimilar to the query" on a result's menu."""
        menu.addSeparator()
        similar = menu.addAction(icon("similar"), "Mark similar to the query",
                                 lambda: self.feedback(result_path, SIMILAR))
        dissimilar = menu.addAction(icon("dissimilar"), "Mark dissimilar to the query",
                                    lambda: self.feedback(result_path, DISSIMILAR))
        query = self.shown_query
        why = None
        if isinstance(query, QImage):
            why = ("The query is a pasted image, not a file: save it into one of your photo folders and "
                   "search from the file to label against it.")
        elif not isinstance(query, str):
            why = "There is no query to compare with."
        elif os.path.abspath(query) == os.path.abspath(result_path):
            why = "This result is the query photo itself."
        if why:
            for act in (similar, dissimilar):
                act.setEnabled(False)
                act.setToolTip(why)
            menu.setToolTipsVisible(True)

    def feedback(self, result_path: str, label: int) -> None:
        query = self.shown_query
        if isinstance(query, str):
            self.service.feedback(query, result_path, label)

    def _on_feedback_done(self, message: str) -> None:
        self.window.statusBar().showMessage(message, 8000)

    def _on_failed(self, what: str, message: str) -> None:
        if what == "saving the feedback":
            self.window.statusBar().showMessage(f"Not labelled: {message}", 8000)

    # ------------------------------------------------------------------ views

    def open_pair_view(self) -> PairLabelView:
        """Show the pair dock (created on first use) and give it the keyboard."""
        if self.dock is None:
            self.view = PairLabelView(self.service, self.recent_searches)
            self.dock = QDockWidget("Label pairs", self.window)
            self.dock.setObjectName("label-pairs-dock")
            self.dock.setWidget(self.view)
            self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.show()
        self.dock.raise_()
        self.view.start()
        self.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
        return self.view

    def open_labels_dialog(self) -> LabelsDialog:
        if self.dialog is None:
            self.dialog = LabelsDialog(self.service, parent=self.window)
        if self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
        else:
            self.dialog.show()
        return self.dialog

    def shutdown(self) -> None:
        """Stop the worker and the image loaders, waiting for them."""
        if self.view is not None:
            self.view.shutdown()
        if self.dialog is not None:
            self.dialog.shutdown()
        if self._service is not None:
            self._service.shutdown()
