"""What labelling adds to the main window: the Labels menu, the pair dock, the labels dialog and feedback on results."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QImage, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow

from app.icons import icon
from app.labeling.labels_dialog import LabelsDialog
from app.labeling.pair_view import PairLabelView
from app.labeling.service import LabelService

RECENT_SEARCHES = 20  # searches remembered for suggestions
RECENT_RESULTS = 20  # results of each remembered search


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

    def feedback_note(self, query, result_path: str) -> tuple[bool, str | None]:
        """Whether a result of ``query`` (a photo, or a tuple of them) can be marked, and why
        not, or why the mark will not be stored as a label (pasted pixels are no file)."""
        photos = query if isinstance(query, tuple) else (query,)
        if query is None or not photos:
            return False, "There is no query to compare with."
        if any(isinstance(p, str) and os.path.abspath(p) == os.path.abspath(result_path) for p in photos):
            return False, "This result is the query photo itself."
        if not any(isinstance(p, str) for p in photos):
            return True, ("The query is a pasted image, not a file: marking refines these results but stores no "
                          "label. Save it into one of your photo folders and search from the file to label "
                          "against it.")
        return True, None

    def mark(self, query, result_path: str, label: int) -> None:
        """Store a mark as a label (source "feedback") between each query photo that is a file
        and the result; several photos searched together give a label each."""
        photos = query if isinstance(query, tuple) else (query,)
        for photo in photos:
            if isinstance(photo, str):
                self.service.feedback(photo, result_path, label)

    def unmark(self, query, result_path: str) -> None:
        """Take back the labels :meth:`mark` wrote for this result (only those)."""
        photos = query if isinstance(query, tuple) else (query,)
        for photo in photos:
            if isinstance(photo, str):
                self.service.unfeedback(photo, result_path)

    def _on_feedback_done(self, message: str) -> None:
        self.window.statusBar().showMessage(message, 8000)

    def _on_failed(self, what: str, message: str) -> None:
        if what == "saving the feedback":
            self.window.statusBar().showMessage(f"Not labelled: {message}", 8000)
        elif what == "removing the feedback":
            self.window.statusBar().showMessage(f"The label stays: {message}", 8000)

    # ------------------------------------------------------------------ views

    def open_pair_view(self) -> PairLabelView:
        """Show the pair dock (created on first use) and give it the keyboard."""
        if self.dock is None:
            self.view = PairLabelView(self.service, self.recent_searches)
            self.dock = QDockWidget("Label pairs", self.window)
            self.dock.setObjectName("label-pairs-dock")
            self.dock.setWidget(self.view)
            # A window of its own, not a panel beside the results: beside them it squeezed the
            # grid to one clipped column (docs/ARCHITECTURE.md, "The window"). It can still be
            # docked, below the results only, where the grid keeps its width.
            self.dock.setAllowedAreas(Qt.DockWidgetArea.BottomDockWidgetArea)
            self.window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
            self.dock.setFloating(True)
            self._place_floating_dock()
        self.dock.show()
        if self.dock.isFloating():
            self.dock.activateWindow()  # a window of its own: to the front
        else:
            self.dock.raise_()
        self.view.start()
        self.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
        return self.view

    def _place_floating_dock(self) -> None:
        """Beside the main window when the screen has room, else over its lower right part."""
        frame = self.window.frameGeometry()
        screen = self.window.screen().availableGeometry()
        width = min(900, max(560, screen.width() * 2 // 5))
        height = min(600, max(420, screen.height() // 2))
        self.dock.resize(width, height)
        x = frame.right() + 8 if frame.right() + 8 + width <= screen.right() else frame.right() - width
        y = min(max(screen.top(), frame.bottom() - height), screen.bottom() - height)
        self.dock.move(max(screen.left(), x), max(screen.top(), y))

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
