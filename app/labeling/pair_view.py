"""The pair view: one suggested pair at a time, labelled with S, D, Space and Ctrl+Z."""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QStackedWidget, QVBoxLayout,
                               QWidget)

from app.icons import icon
from app.labeling.items import DISSIMILAR, PAIR_SOURCE, SIMILAR, PairItem, SuggestionBatch
from app.labeling.service import LabelService
from app.workers import ImageLoader
from engine.paths import display_path
from engine.suggest import RECENT_SEARCH, PairSuggestion

BATCH = 20  # pairs asked for at a time
REFILL_AT = 3  # ask for the next batch when this few are left
PAIR_IMAGE = QSize(360, 360)


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
