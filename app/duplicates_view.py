"""The Duplicates view: copy groups across the library (progress, cancel), a keeper each, trash the others.

Finding runs engine.duplicates.find_duplicates (what `lookalike duplicates` runs) in a worker
thread with progress and cancel; trashing goes through the window's app.file_actions.FileActions
(the same confirmation, the same undo journal, the library following at once). The keeper is
the keep rule's choice (engine.duplicates.KEEP_RULES after the preferred formats and folders)
and the person can change it per group before anything moves. Compare shows a group's photos
side by side with their resolution, size and date.
"""

from __future__ import annotations

import datetime
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QGridLayout, QHBoxLayout,
                               QLabel, QMenu, QProgressBar, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from app.background import Task, run_in_thread
from app.compare import MAX_PHOTOS, ComparedPhoto, CompareWindow
from app.file_actions import KEEP_RULE, KEEP_RULE_NAMES, FileActions, Outcome, keep_rule, plural
from app.open_files import open_file
from app.workers import ImageLoader
from engine.paths import display_path

STRICTNESS_NAMES = {"exact": "Exact copies (the same bytes)",
                    "near": "Near copies (resized, recompressed, rotated, lightly cropped)",
                    "similar": "Similar shots (looser)"}
THUMB = QSize(72, 72)
PathRole = Qt.ItemDataRole.UserRole + 1  # a member row's path (Python str: every byte of the name)


@dataclass
class DuplicateGroup:
    """One group as the view holds it: its members (engine.duplicates.Member), the keeper's path
    (the person may change it), the weakest pair similarity, cached thumbnails by path."""

    members: list
    keeper: str
    score: float
    thumbs: dict[str, str | None] = field(default_factory=dict)
    checked: bool = True  # its others go with "Trash the Others"

    def others(self) -> list[str]:
        return [m.path for m in self.members if m.path != self.keeper]


def find_groups(library_path, strictness: str, rule, cancel: threading.Event, report) -> list[DuplicateGroup]:
    """engine.duplicates.find_duplicates over the library (a worker thread's job); ``report``
    receives (done, total) while the codes are compared."""
    from engine.duplicates import find_duplicates
    from engine.errors import Cancelled
    from engine.layout import thumbnail_path
    from engine.library import Library

    with Library(Path(library_path), create=False) as library:
        groups = find_duplicates(library, strictness, keep=rule, cancel=cancel,
                                 progress=lambda done, total: report((done, total)))
        out = []
        store = library.store
        for group in groups:
            if cancel.is_set():
                break
            members = [group.keep, *group.others]
            thumbs = {}
            for m in members:
                row = store.image_by_path(m.path)
                thumb = thumbnail_path(store.thumbs_dir(), row.content_hash) if row and row.content_hash else None
                thumbs[m.path] = str(thumb) if thumb else None
            out.append(DuplicateGroup(members, group.keep.path, group.score, thumbs))
    if cancel.is_set():
        raise Cancelled("the duplicate search was cancelled")
    return out


def _size_text(count: int) -> str:
    from engine.actions import size_text

    return size_text(count)


def _when(mtime_ns: int) -> str:
    return datetime.datetime.fromtimestamp(mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")


def _resolution(m) -> str:
    """Megapixels from the member's pixel count (engine.duplicates reads the header only)."""
    if not m.pixels:
        return "?"
    return f"{m.pixels / 1e6:.1f} MP" if m.pixels >= 1e6 else f"{m.pixels / 1e6:.2f} MP"


class DuplicatesDialog(QDialog):
    """Groups of copies across the library; the keeper marked (changeable); trash the others of checked groups."""

    COLUMNS = ("Photo", "Keep", "Resolution", "Size", "Modified", "Folder")

    def __init__(self, library_path: str | os.PathLike, file_actions: FileActions, settings: QSettings,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Duplicates")
        self.library_path = Path(library_path)
        self.file_actions = file_actions
        self.settings = settings
        self.groups: list[DuplicateGroup] = []
        self._task: Task | None = None
        self._cancel: threading.Event | None = None
        self._loader = ImageLoader(THUMB, threads=2, parent=self)
        self._loader.loaded.connect(self._on_thumbnail)
        self._compare: CompareWindow | None = None
        self._filled = 0  # groups in the tree so far (the rest are added a chunk at a time)
        self._fill_timer = QTimer(self)
        self._fill_timer.setSingleShot(True)
        self._fill_timer.setInterval(0)
        self._fill_timer.timeout.connect(self._fill_more)
        self._requested: set[str] = set()  # members whose thumbnail was asked for
        self._visible_timer = QTimer(self)  # once per turn, however many scroll steps
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(0)
        self._visible_timer.timeout.connect(self._request_visible)
        self._build()
        # bound methods, disconnected in shutdown: the runner is the window's and outlives this view
        self.file_actions.finished.connect(self._on_action_finished)
        self.file_actions.busyChanged.connect(self._on_busy)
        self.resize(900, 620)
        self._update_buttons()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.strictness_combo = QComboBox()
        for key, text in STRICTNESS_NAMES.items():
            self.strictness_combo.addItem(text, key)
        self.strictness_combo.setCurrentIndex(self.strictness_combo.findData("near"))
        self.keep_combo = QComboBox()
        for key, text in KEEP_RULE_NAMES.items():
            self.keep_combo.addItem(text, key)
        self.keep_combo.setCurrentIndex(max(0, self.keep_combo.findData(str(self.settings.value(KEEP_RULE,
                                                                                                 "largest")))))
        self.keep_combo.setToolTip("Which photo of a group is kept (after your preferred formats and folders, "
                                   "Edit > Keep the Best by)")
        self.find_button = QPushButton("Find Duplicates")
        self.find_button.setDefault(True)
        self.find_button.clicked.connect(self.find)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(14)
        self.summary = QLabel("Find groups of photos that are copies of each other.")
        self.summary.setWordWrap(True)

        top = QGridLayout()
        top.addWidget(QLabel("Strictness:"), 0, 0)
        top.addWidget(self.strictness_combo, 0, 1)
        top.addWidget(QLabel("Keep:"), 1, 0)
        top.addWidget(self.keep_combo, 1, 1)
        top.addWidget(self.find_button, 0, 2)
        top.addWidget(self.cancel_button, 1, 2)
        top.setColumnStretch(1, 1)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(self.COLUMNS)
        self.tree.setIconSize(THUMB)
        self.tree.setUniformRowHeights(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._show_menu)
        self.tree.itemDoubleClicked.connect(lambda item, column: self.open_item(item))
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.header().setStretchLastSection(True)  # the folder takes what is left
        self.tree.verticalScrollBar().valueChanged.connect(lambda value: self._visible_timer.start())
        self.tree.itemExpanded.connect(lambda item: self._visible_timer.start())

        self.keep_button = QPushButton("Keep This One")
        self.keep_button.setToolTip("Make the selected photo its group's keeper")
        self.keep_button.clicked.connect(self.keep_selected)
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setToolTip("The selected group's photos side by side")
        self.compare_button.clicked.connect(self.compare_selected)
        self.trash_button = QPushButton("Trash the Others…")
        self.trash_button.setToolTip("Every photo but the keeper of each checked group goes to the system trash "
                                     "(you are asked first; Undo puts them back)")
        self.trash_button.clicked.connect(self.trash_others)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Put back what the last trash, move or copy took away")
        self.undo_button.clicked.connect(self.file_actions.undo)
        undo = QAction(self)
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        undo.triggered.connect(self.file_actions.undo)
        self.addAction(undo)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons = QHBoxLayout()
        for button in (self.keep_button, self.compare_button, self.trash_button, self.undo_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self.progress.setVisible(False)

    def _on_busy(self, busy: bool) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self._task is not None
        self.find_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.strictness_combo.setEnabled(not running)
        self.keep_combo.setEnabled(not running)
        member = self._selected_member() is not None
        self.keep_button.setEnabled(member)
        self.compare_button.setEnabled(self._selected_group() is not None)
        idle = not self.file_actions.is_busy()
        self.trash_button.setEnabled(idle and bool(self.checked_groups()))
        self.undo_button.setEnabled(idle)

    # ------------------------------------------------------------------ finding

    def find(self) -> None:
        """Run engine.duplicates over the library at the chosen strictness (progress, cancel)."""
        if self._task is not None:
            return
        strictness = self.strictness_combo.currentData()
        self.settings.setValue(KEEP_RULE, self.keep_combo.currentData())
        rule = keep_rule(self.settings)
        cancel = self._cancel = threading.Event()
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.summary.setText("Comparing photos…")
        self._task = run_in_thread(lambda report: find_groups(self.library_path, strictness, rule, cancel, report),
                                   self._on_found, self._on_failed, progress=self._on_progress, cancel=cancel,
                                   after=self._on_ended, what="finding duplicates", parent=self)
        self._update_buttons()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._visible_timer.start()  # more rows on screen: their thumbnails

    def is_running(self) -> bool:
        return self._task is not None

    def cancel(self) -> None:
        """Stop the run (it stops between chunks of photos); the groups on show stay."""
        if self._cancel is not None:
            self._cancel.set()
            self.summary.setText("Cancelling…")

    def _on_progress(self, value) -> None:
        done, total = value
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _on_found(self, groups: list[DuplicateGroup]) -> None:
        self.groups = groups
        self._fill()

    def _on_failed(self, message: str) -> None:
        if self._cancel is not None and self._cancel.is_set():
            self.summary.setText("Cancelled: nothing was changed." + (" The groups found before are still shown."
                                                                       if self.groups else ""))
        else:
            self.summary.setText(message)

    def _on_ended(self) -> None:
        self._task = None
        self._cancel = None
        self.progress.setVisible(False)
        self._update_buttons()

    # ------------------------------------------------------------------ the groups

    FILL_CHUNK = 100  # groups added to the tree per turn of the event loop: thousands stay responsive

    def _fill(self) -> None:
        """Show self.groups: the first groups at once, the rest a chunk per event-loop turn."""
        self._loader.reset()
        self._requested = set()
        self._fill_timer.stop()
        self.tree.clear()
        self._filled = 0
        self._fill_more()
        self._update_summary()
        self._update_buttons()

    def _fill_more(self) -> None:
        start, stop = self._filled, min(len(self.groups), self._filled + self.FILL_CHUNK)
        self.tree.blockSignals(True)
        for number in range(start, stop):
            self._add_group(number)
        self.tree.blockSignals(False)
        self._filled = stop
        if start == 0:  # columns fitted to the first chunk once, not re-measured for every row
            for column in range(len(self.COLUMNS) - 1):
                self.tree.resizeColumnToContents(column)
        if stop < len(self.groups):
            self._fill_timer.start()
        self._visible_timer.start()

    def _request_visible(self) -> None:
        """Thumbnails of the rows on screen only: queueing 15,000 decodes at once took a second of
        the GUI thread, and their threads then competed with it for the interpreter."""
        viewport = self.tree.viewport()
        item = self.tree.itemAt(4, 4)
        for _ in range(500):  # rows on one screen at most
            if item is None or self.tree.visualItemRect(item).top() > viewport.height():
                break
            top = item.parent()
            path = item.data(0, PathRole)
            if top is not None and path not in self._requested:
                self._requested.add(path)
                number = self.tree.indexOfTopLevelItem(top)
                self._loader.request((number, path), self.groups[number].thumbs.get(path), path)
            item = self.tree.itemBelow(item)

    def _add_group(self, number: int) -> None:
        group = self.groups[number]
        top = QTreeWidgetItem([f"Group {number + 1}: {len(group.members)} photos, similarity {group.score:.2f}"])
        top.setFlags(top.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        top.setCheckState(0, Qt.CheckState.Checked if group.checked else Qt.CheckState.Unchecked)
        self.tree.addTopLevelItem(top)
        for m in group.members:
            item = QTreeWidgetItem([display_path(os.path.basename(m.path)), "", _resolution(m), _size_text(m.size),
                                    _when(m.mtime_ns), display_path(os.path.dirname(m.path))])
            item.setToolTip(0, display_path(m.path))
            item.setData(0, PathRole, m.path)
            top.addChild(item)
        top.setExpanded(True)
        self._show_keeper(top, group)

    def _show_keeper(self, top: QTreeWidgetItem, group: DuplicateGroup) -> None:
        for row in range(top.childCount()):
            item = top.child(row)
            keeper = item.data(0, PathRole) == group.keeper
            item.setText(1, "★ Keep" if keeper else "")
            font = item.font(0)
            font.setBold(keeper)
            for column in range(len(self.COLUMNS)):
                item.setFont(column, font)

    def _update_summary(self, prefix: str = "") -> None:
        others = [m for g in self.groups for m in g.members if m.path != g.keeper]
        if not self.groups:
            text = "No groups left." if prefix else "No duplicates found at this strictness."
        else:
            copies = f"{len(others):,} other cop{'y' if len(others) == 1 else 'ies'}"
            text = (f"{plural(len(self.groups), 'group')}, {copies} ({_size_text(sum(m.size for m in others))}). "
                    "Check the groups whose other photos should go; the ★ photo stays.")
        self.summary.setText(f"{prefix} {text}" if prefix else text)

    def _on_thumbnail(self, generation: int, key, image: QImage) -> None:
        if generation != self._loader.generation or image.isNull():
            return
        number, path = key
        top = self.tree.topLevelItem(number)
        if top is None:
            return
        for row in range(top.childCount()):
            if top.child(row).data(0, PathRole) == path:
                top.child(row).setIcon(0, QIcon(QPixmap.fromImage(image)))

    def checked_groups(self) -> list[int]:
        return [n for n, group in enumerate(self.groups) if group.checked]

    def set_checked(self, numbers) -> None:
        wanted = set(numbers)
        for n, group in enumerate(self.groups):
            group.checked = n in wanted
            top = self.tree.topLevelItem(n)
            if top is not None:  # not shown yet: it is added with its group's state
                top.setCheckState(0, Qt.CheckState.Checked if group.checked else Qt.CheckState.Unchecked)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if item.parent() is None and column == 0:  # a group's box: the person (un)checked it
            number = self.tree.indexOfTopLevelItem(item)
            if 0 <= number < len(self.groups):
                self.groups[number].checked = item.checkState(0) == Qt.CheckState.Checked
        self._update_buttons()

    def _selected_member(self) -> QTreeWidgetItem | None:
        items = [i for i in self.tree.selectedItems() if i.parent() is not None]
        return items[0] if items else None

    def _selected_group(self) -> int | None:
        item = self.tree.currentItem() or next(iter(self.tree.selectedItems()), None)
        if item is None:
            return None
        top = item.parent() or item
        return self.tree.indexOfTopLevelItem(top)

    def set_keeper(self, number: int, path: str) -> None:
        """Make ``path`` the keeper of group ``number``."""
        group = self.groups[number]
        if path in (m.path for m in group.members):
            group.keeper = path
            self._show_keeper(self.tree.topLevelItem(number), group)
            self._update_summary()

    def keep_selected(self) -> None:
        item = self._selected_member()
        if item is not None:
            self.set_keeper(self.tree.indexOfTopLevelItem(item.parent()), item.data(0, PathRole))

    def _show_menu(self, pos) -> None:
        item = self.tree.itemAt(pos)
        if item is None or item.parent() is None:
            return
        number, path = self.tree.indexOfTopLevelItem(item.parent()), item.data(0, PathRole)
        menu = QMenu(self)
        menu.addAction("Keep This One", lambda: self.set_keeper(number, path))
        menu.addAction("Open", lambda: self.open_item(item))
        menu.addAction("Compare the Group…", lambda: self.compare(number))
        menu.exec(self.tree.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def open_item(self, item: QTreeWidgetItem) -> None:
        path = item.data(0, PathRole)
        if path:
            open_file(path, self)

    # ------------------------------------------------------------------ compare

    def compare_selected(self) -> None:
        number = self._selected_group()
        if number is not None:
            self.compare(number)

    def compare(self, number: int) -> CompareWindow:
        """The group's photos side by side (the keeper first, then up to three others), in the
        window's compare view: one zoom and pan, each photo's facts."""
        if self._compare is not None:
            self._compare.close()
        group = self.groups[number]
        members = sorted(group.members, key=lambda m: m.path != group.keeper)[:MAX_PHOTOS]
        photos = [ComparedPhoto(m.path, title=("★ Keep · " if m.path == group.keeper else "")
                                + display_path(os.path.basename(m.path))) for m in members]
        self._compare = CompareWindow(photos, parent=self)
        self._compare.start()
        return self._compare

    # ------------------------------------------------------------------ trash the others

    def trash_others(self) -> None:
        """Every photo but the keeper of each checked group, to the trash once the person confirmed."""
        paths = [p for n in self.checked_groups() for p in self.groups[n].others()]
        if paths:
            self.file_actions.trash(paths, self)

    def _on_action_finished(self, outcome: Outcome) -> None:
        """Photos that left their place leave the groups (a group of one is no group); photos
        that came back (undo) are in no group until the next Find."""
        gone = set(outcome.gone)
        if gone & {m.path for g in self.groups for m in g.members}:
            kept = []
            for group in self.groups:
                group.members = [m for m in group.members if m.path not in gone]
                if len(group.members) < 2:
                    continue
                if group.keeper in gone:
                    group.keeper = group.members[0].path
                kept.append(group)
            self.groups = kept
            self._fill()
        back = " Find again to see them in their groups." if outcome.back else ""
        self._update_summary(outcome.message + "." + back)

    # ------------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Cancel the run and wait for it; no thumbnail load left; no longer told of file actions."""
        self._fill_timer.stop()
        self._visible_timer.stop()
        for signal, slot in ((self.file_actions.finished, self._on_action_finished),
                             (self.file_actions.busyChanged, self._on_busy)):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):  # already disconnected (shut down twice)
                pass
        if self._cancel is not None:
            self._cancel.set()
        if self._task is not None:
            self._task.stop()
        self._loader.shutdown()
        if self._compare is not None:
            self._compare.shutdown()

    def done(self, result: int) -> None:
        if self._cancel is not None:
            self._cancel.set()  # closing stops the run; its thread ends on its own
        super().done(result)
