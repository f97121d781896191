"""Acting on photos from the window: trash (asked first), move, copy, undo, keep the best; off the GUI thread.

:class:`FileActions` runs engine.actions (the same calls as `lookalike trash/move/undo`, the
same undo journal) in worker threads, one action at a time, and asks before trashing: the
count, the total size, and whether the platform's trash lets undo restore them. Every file is
touched in the worker thread (the sizes are measured there too), never on the GUI thread.

:class:`ResultActions` is the main window's side: the Edit menu, the keys on the results grid
(Delete trashes the selection, Ctrl+A selects every result, Ctrl+Z undoes the last file
action), the tile menu's batch entries, and "Select all but the best" by engine.duplicates'
keep rules (the keeper framed, the others selected; nothing moves until the person says so).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLineEdit, QMenu, QMessageBox,
                               QStyle, QWidget)

from app.background import Task, run_in_thread
from app.icons import icon
from app.refine import DISSIMILAR, SIMILAR
from engine.paths import display_path

LOCK_WAIT = 10.0  # seconds an action waits for the window's writer (a watched batch) before saying it is busy
LISTED = 12  # photos named in a confirmation's details


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


@dataclass
class Outcome:
    """What one action did, for the window: the engine's report, a line to show, and which
    paths left their place (they leave the results) or came back (the query runs again)."""

    kind: str  # "trash", "move", "copy", or "undo trash" / "undo move" / "undo copy"
    report: object  # engine.actions.ActionReport
    message: str
    gone: list[str] = field(default_factory=list)
    back: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ in worker threads


def measure(paths: Sequence[str]) -> tuple[list[str], int]:
    """The paths that are files now (absolute, once each) and their total size in bytes."""
    from engine.actions import total_size

    files = list(dict.fromkeys(os.path.abspath(p) for p in paths if os.path.isfile(p)))
    return files, total_size(files)


def with_writer(library_path: str | os.PathLike, act: Callable):
    """``act(library)`` on the library, holding its writer lock; waits up to LOCK_WAIT seconds
    for the window's own writer (a watched folder's batch), then says who holds it."""
    from engine.library import Library  # numpy and the engine: in the worker thread

    with Library(Path(library_path), create=False) as library:
        store = library.store
        deadline = time.monotonic() + LOCK_WAIT
        while not store.try_writer_lock():
            if time.monotonic() > deadline:
                store.writer_lock()  # raises UserError naming the reason
            time.sleep(0.1)
        try:
            return act(library)
        finally:
            store.release_writer_lock()


def _failures(report) -> str:
    if not report.failed:
        return ""
    path, why = report.failed[0]
    more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
    return f"; not done: {display_path(os.path.basename(path))}: {why}{more}"


def trash_files(library_path, files: list[str], size: int) -> Outcome:
    from engine import actions

    report = with_writer(library_path, lambda library: actions.trash(library, files))
    note = "Edit > Undo puts them back" if actions.trash_restorable() else "restore them from the system trash"
    gone = [source for source, _ in report.done]
    message = f"Moved {plural(len(gone), 'photo')} ({actions.size_text(size)}) to the trash; {note}"
    return Outcome("trash", report, message + _failures(report), gone=gone)


def move_files(library_path, files: list[str], folder: str, copy: bool) -> Outcome:
    from engine import actions

    report = with_writer(library_path, lambda library: actions.move(library, files, folder, copy=copy))
    verb = "Copied" if copy else "Moved"
    message = f"{verb} {plural(len(report.done), 'photo')} to {display_path(folder)}; Edit > Undo reverses it"
    return Outcome(report.kind, report, message + _failures(report),
                   gone=[] if copy else [source for source, _ in report.done])


def undo_last(library_path) -> Outcome:
    from engine import actions

    report = with_writer(library_path, actions.undo)
    kind = report.kind.removeprefix("undo ")
    what = {"move": "moved back", "copy": "copies sent to the trash",
            "trash": "restored from the trash"}.get(kind, "undone")
    message = f"Undid a {kind}: {plural(len(report.done), 'photo')} {what}"
    if kind == "copy":
        return Outcome(report.kind, report, message + _failures(report), gone=[c for c, _ in report.done])
    return Outcome(report.kind, report, message + _failures(report),
                   gone=[now for now, _ in report.done], back=[original for _, original in report.done])


# ------------------------------------------------------------------ the runner


class FileActions(QObject):
    """Trash (asked first), move, copy and undo on a library's photos, one at a time, in worker threads."""

    finished = Signal(object)  # Outcome
    failed = Signal(str)       # the person's message (nothing was done, or the action failed)
    note = Signal(str)         # a passing remark for the status bar (declined, busy)
    busyChanged = Signal(bool)

    def __init__(self, library_path: str | os.PathLike, parent: QObject | None = None, *,
                 busy_reason: Callable[[], str | None] | None = None):
        super().__init__(parent)
        self.library_path = Path(library_path)
        self.busy_reason = busy_reason  # why the library cannot be changed now (the window's index run), or None
        self._task: Task | None = None
        self.confirmation: QMessageBox | None = None  # the open "Move to the trash?" question
        self._closed = False

    def is_busy(self) -> bool:
        return self._task is not None or self.confirmation is not None

    def _refused(self) -> bool:
        if self._closed:
            return True
        if self.is_busy():
            self.note.emit("Another file action is still going on: try again when it ends")
            return True
        reason = self.busy_reason() if self.busy_reason is not None else None
        if reason:
            self.failed.emit(reason)
            return True
        return False

    def _start(self, function: Callable[[], object], done: Callable[[object], None], *, what: str) -> None:
        self._task = run_in_thread(function, done, self.failed.emit, what=what, after=self._ended, parent=self)
        self.busyChanged.emit(True)

    def _ended(self) -> None:
        self._task = None
        self.busyChanged.emit(self.is_busy())

    # ------------------------------------------------------------------ trash

    def trash(self, paths: Sequence[str], parent: QWidget | None = None) -> None:
        """Ask the person first (count, total size, whether undo can restore them); trash only on yes."""
        paths = list(dict.fromkeys(paths))
        if not paths or self._refused():
            return
        self._start(lambda: measure(paths), lambda measured: self._ask(measured, parent), what="measuring the photos")

    def _ask(self, measured: tuple[list[str], int], parent: QWidget | None) -> None:
        from engine.actions import size_text, trash_restorable

        files, size = measured
        if self._closed:
            return
        if not files:
            self.failed.emit("Those photos are no longer on disk: nothing was moved")
            return
        what = f"{plural(len(files), 'photo')} ({size_text(size)})"
        box = QMessageBox(QMessageBox.Icon.Warning, "Move to Trash", f"Move {what} to the trash?",
                          QMessageBox.StandardButton.Cancel, parent)
        if trash_restorable():
            box.setInformativeText("They leave the library and the results. Edit > Undo (Ctrl+Z) puts them back "
                                   "where they were.")
        else:
            box.setInformativeText("They leave the library and the results. This system's trash keeps no record "
                                   "of where they came from: Lookalike cannot put them back; you would restore "
                                   "them from the trash yourself.")
        listed = [display_path(p) for p in files[:LISTED]]
        if len(files) > LISTED:
            listed.append(f"… and {len(files) - LISTED:,} more")
        box.setDetailedText("\n".join(listed))
        box.trash_button = box.addButton("Move to Trash", QMessageBox.ButtonRole.DestructiveRole)
        box.trash_button.setIcon(box.style().standardIcon(QStyle.StandardPixmap.SP_TrashIcon))
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)  # Enter alone never trashes
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _result: self._answered(box, files, size))
        self.confirmation = box
        self.busyChanged.emit(True)
        box.open()

    def _answered(self, box: QMessageBox, files: list[str], size: int) -> None:
        if self.confirmation is not box:
            return
        self.confirmation = None
        yes = box.clickedButton() is box.trash_button
        box.deleteLater()
        if not yes or self._closed:
            self.note.emit("Nothing was moved to the trash")
            self.busyChanged.emit(self.is_busy())
            return
        self._start(lambda: trash_files(self.library_path, files, size), self.finished.emit,
                    what="moving photos to the trash")

    # ------------------------------------------------------------------ move, copy, undo

    def move(self, paths: Sequence[str], folder: str, *, copy: bool = False) -> None:
        """Move (or copy) the photos into ``folder``; a name taken there gets " (1)"."""
        paths = list(dict.fromkeys(paths))
        if not paths or not folder or self._refused():
            return
        self._start(lambda: move_files(self.library_path, measure(paths)[0], folder, copy), self.finished.emit,
                    what="copying photos" if copy else "moving photos")

    def undo(self) -> None:
        """Reverse the newest trash, move or copy (this window's or the command line's)."""
        if self._refused():
            return
        self._start(lambda: undo_last(self.library_path), self.finished.emit, what="undoing")

    def shutdown(self) -> None:
        """Close the question unanswered (nothing moves) and wait for the action in flight."""
        self._closed = True
        if self.confirmation is not None:
            box, self.confirmation = self.confirmation, None
            box.reject()
            box.deleteLater()
        if self._task is not None:
            self._task.stop()


# ------------------------------------------------------------------ keep the best


KEEP_RULE = "actions/keep_rule"            # a key of engine.duplicates.KEEP_RULES
PREFER_FORMATS = "actions/prefer_formats"  # "heic, jpg"
PREFER_FOLDERS = "actions/prefer_folders"  # folders, one per line

KEEP_RULE_NAMES = {"largest": "Largest resolution", "biggest-file": "Largest file",
                   "oldest": "Oldest (date taken, else modification time)"}


def split_formats(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").replace(" ", ",").split(",") if part.strip()]


def keep_rule(settings: QSettings):
    """The keep rule the person chose, after their preferred formats and folders (engine.duplicates)."""
    from engine.duplicates import KEEP_RULES, preferring

    rule = KEEP_RULES.get(str(settings.value(KEEP_RULE, "largest")), KEEP_RULES["largest"])
    folders = [line for line in str(settings.value(PREFER_FOLDERS, "") or "").splitlines() if line.strip()]
    return preferring(rule, formats=split_formats(str(settings.value(PREFER_FORMATS, "") or "")), folders=folders)


def choose_keeper(paths: Sequence[str], rule) -> tuple[str | None, str]:
    """The photo ``rule`` keeps among ``paths`` (headers read: a worker thread's job), and the rule's words."""
    from engine.duplicates import member

    members = []
    for path in paths:
        try:
            members.append(member(path))
        except OSError:  # gone from disk: neither kept nor selected
            continue
    return (rule.choose(members).path if members else None), rule.description


class PreferencesDialog(QDialog):
    """Preferred formats and folders: a photo of one (or under one) is kept before the others."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keep the best: preferences")
        self.settings = settings
        self.formats = QLineEdit(str(settings.value(PREFER_FORMATS, "") or ""))
        self.formats.setPlaceholderText("e.g. heic, jpg")
        self.folders = QLineEdit("; ".join(str(settings.value(PREFER_FOLDERS, "") or "").splitlines()))
        self.folders.setPlaceholderText("folders, separated by ;")
        browse = QAction("Add a folder…", self.folders)
        browse.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        browse.triggered.connect(self._add_folder)
        self.folders.addAction(browse, QLineEdit.ActionPosition.TrailingPosition)
        form = QFormLayout(self)
        form.addRow("Preferred formats:", self.formats)
        form.addRow("Preferred folders:", self.folders)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Prefer the photos under")
        if folder:
            text = self.folders.text().strip()
            self.folders.setText(f"{text}; {folder}" if text else folder)

    def accept(self) -> None:
        self.settings.setValue(PREFER_FORMATS, ", ".join(split_formats(self.formats.text())))
        folders = [part.strip() for part in self.folders.text().split(";") if part.strip()]
        self.settings.setValue(PREFER_FOLDERS, "\n".join(folders))
        super().accept()


# ------------------------------------------------------------------ the main window's side


class ResultActions(QObject):
    """The Edit menu, the results grid's keys and the tile menu's batch entries of a main window.

    ``window`` is the main window (app.main_window.MainWindow: its ``view``, ``model``,
    ``selected_paths()``, ``files_changed()``); ``open_duplicates`` opens the Duplicates view.
    """

    def __init__(self, window, library_path: str | os.PathLike, *, settings: QSettings,
                 open_duplicates: Callable[[], object] | None = None):
        super().__init__(window)
        self.window = window
        self.settings = settings
        self.runner = FileActions(library_path, parent=self, busy_reason=self._indexing_reason)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(lambda message: self._say(message, 15_000))
        self.runner.note.connect(lambda message: self._say(message, 6_000))
        self._keeper_task: Task | None = None
        self.window.view.setSelectionRectVisible(True)  # the rubber band: drag from between tiles
        self._build_actions(open_duplicates)
        # cheap (no list of the selection): a removal of many rows calls it once per row
        self.runner.busyChanged.connect(self._update_enabled)
        self.window.view.selectionModel().selectionChanged.connect(self._update_enabled)
        self.window.model.modelReset.connect(self._update_enabled)
        self.window.model.rowsRemoved.connect(self._update_enabled)
        self._update_enabled()

    def _indexing_reason(self) -> str | None:
        """An index run holds the library's writer lock for minutes: say so at once, not after a wait."""
        indexing = getattr(self.window, "indexing", None)
        if indexing is not None and indexing.is_indexing():
            return "Photos are being indexed: trash, move, copy and undo can run once indexing ends (or is cancelled)"
        return None

    def _say(self, message: str, timeout: int) -> None:
        self.window.statusBar().showMessage(message, timeout)

    # ------------------------------------------------------------------ actions and menu

    def _build_actions(self, open_duplicates) -> None:
        window, view = self.window, self.window.view
        grid_keys = Qt.ShortcutContext.WidgetWithChildrenShortcut  # only while the grid has the keyboard

        def action(text: str, slot, keys=(), *, on=view, context=grid_keys) -> QAction:
            act = QAction(text, window)
            if keys:
                act.setShortcuts([QKeySequence(k) for k in keys])
                act.setShortcutContext(context)
                on.addAction(act)
            act.triggered.connect(slot)
            return act

        style = window.style()
        self.trash_action = action("Move to &Trash…", lambda: self.trash_selected(),
                                   [QKeySequence.StandardKey.Delete])
        self.trash_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TrashIcon))
        self.move_action = action("&Move to Folder…", lambda: self.move_selected(copy=False), ["Ctrl+Shift+M"])
        self.copy_to_action = action("Cop&y to Folder…", lambda: self.move_selected(copy=True), ["Ctrl+Shift+C"])
        self.copy_paths_action = action("Copy &Paths", self.copy_selected_paths, [QKeySequence.StandardKey.Copy])
        self.select_all_action = action("Select &All", view.selectAll, [QKeySequence.StandardKey.SelectAll])
        self.keep_best_action = action("Select All but the &Best", lambda: self.select_all_but_best(),
                                       ["Ctrl+B"])
        self.keep_best_action.setToolTip("Among the selected results (or all of them), frame the one to keep and "
                                         "select the others; nothing moves until you say so")
        # Ctrl+Z anywhere in the central area (query and results), not in the pair dock, whose
        # own Ctrl+Z undoes a label: two live shortcuts on one key would both be ignored.
        self.undo_action = action("&Undo Last Trash, Move or Copy", self.runner.undo,
                                  [QKeySequence.StandardKey.Undo], on=window.centralWidget())
        self.duplicates_action = action("Find &Duplicates in the Library…",
                                        open_duplicates or (lambda: None), ["Ctrl+Shift+D"], on=window,
                                        context=Qt.ShortcutContext.WindowShortcut)

        menu = QMenu("&Edit", window)
        menu.addAction(self.undo_action)
        menu.addSeparator()
        menu.addAction(self.select_all_action)
        menu.addAction(self.keep_best_action)
        menu.addMenu(self._keep_rule_menu(menu))
        menu.addSeparator()
        for act in (self.trash_action, self.move_action, self.copy_to_action, self.copy_paths_action):
            menu.addAction(act)
        menu.addSeparator()
        for name in ("mark_similar_action", "mark_dissimilar_action", "unmark_action"):
            if hasattr(window, name):  # the grid's own marking actions (they act on the selection)
                menu.addAction(getattr(window, name))
        menu.addSeparator()
        menu.addAction(self.duplicates_action)
        menus = window.menuBar().actions()
        window.menuBar().insertMenu(menus[1] if len(menus) > 1 else None, menu)  # right after File
        self.menu = menu

    def _keep_rule_menu(self, parent: QMenu) -> QMenu:
        menu = QMenu("&Keep the Best by", parent)
        group = QActionGroup(menu)
        chosen = str(self.settings.value(KEEP_RULE, "largest"))
        self.keep_rule_actions: dict[str, QAction] = {}
        for name, text in KEEP_RULE_NAMES.items():
            act = menu.addAction(text)
            act.setCheckable(True)
            act.setChecked(name == chosen)
            act.setData(name)
            group.addAction(act)
            self.keep_rule_actions[name] = act
        group.triggered.connect(lambda act: self.settings.setValue(KEEP_RULE, act.data()))
        menu.aboutToShow.connect(self._sync_keep_rule)  # the Duplicates view may have changed it
        menu.addSeparator()
        menu.addAction("Preferred Formats and Folders…", self.edit_preferences)
        return menu

    def edit_preferences(self) -> None:
        """Preferred formats and folders for "Select all but the best" (and the Duplicates view's keeper)."""
        dialog = PreferencesDialog(self.settings, self.window)
        dialog.exec()
        dialog.deleteLater()

    def _sync_keep_rule(self) -> None:
        chosen = str(self.settings.value(KEEP_RULE, "largest"))
        for name, act in self.keep_rule_actions.items():
            act.setChecked(name == chosen)

    def add_to_menu(self, menu: QMenu, path: str) -> None:
        """The tile menu's batch entries: on the selection when the tile is in it, else on the tile."""
        selected = self.window.selected_paths()
        paths = selected if path in selected else [path]
        what = "" if len(paths) == 1 else f" {len(paths):,} Photos"
        menu.addSeparator()
        trash = menu.addAction(self.trash_action.icon(), f"Move{what} to Trash…", lambda: self.trash(paths))
        trash.setShortcut(self.trash_action.shortcut())  # a hint: the grid's action holds the key
        trash.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        moves = [trash, menu.addAction(f"Move{what} to Folder…", lambda: self.move(paths, copy=False)),
                 menu.addAction(f"Copy{what} to Folder…", lambda: self.move(paths, copy=True))]
        for act in moves:
            act.setEnabled(not self.runner.is_busy())
        if len(paths) > 1:
            menu.addAction(f"Copy {len(paths):,} Paths", lambda: self.copy_paths(paths))
            menu.addAction("Select All but the Best", lambda: self.select_all_but_best(paths))
            # the tile's own Mark entries mark that tile; these mark the whole selection
            menu.addAction(icon("similar"), f"Mark {len(paths):,} Similar",
                           lambda: self.window.mark_results(paths, SIMILAR))
            menu.addAction(icon("dissimilar"), f"Mark {len(paths):,} Dissimilar",
                           lambda: self.window.mark_results(paths, DISSIMILAR))

    def _update_enabled(self, *args) -> None:
        view = self.window.view
        has = view.selectionModel().hasSelection() or view.currentIndex().isValid()  # what selected_paths() acts on
        idle = not self.runner.is_busy()
        for act in (self.trash_action, self.move_action, self.copy_to_action):
            act.setEnabled(has and idle)
        self.copy_paths_action.setEnabled(has)
        self.select_all_action.setEnabled(self.window.model.rowCount() > 0)
        self.keep_best_action.setEnabled(self.window.model.rowCount() > 1)
        self.undo_action.setEnabled(idle)

    # ------------------------------------------------------------------ doing

    def trash_selected(self) -> None:
        self.trash(self.window.selected_paths())

    def trash(self, paths: Sequence[str]) -> None:
        """Move photos to the system trash once the person confirmed the count and the total size."""
        self.runner.trash(paths, self.window)

    def move_selected(self, *, copy: bool) -> None:
        self.move(self.window.selected_paths(), copy=copy)

    def move(self, paths: Sequence[str], *, copy: bool, folder: str | None = None) -> None:
        """Move or copy photos into a folder (asked for when not given)."""
        if not paths:
            return
        if folder is None:
            title = f"{'Copy' if copy else 'Move'} {plural(len(paths), 'photo')} to"
            folder = QFileDialog.getExistingDirectory(self.window, title, os.path.dirname(paths[0]))
        if folder:
            self.runner.move(paths, folder, copy=copy)

    def copy_selected_paths(self) -> None:
        self.copy_paths(self.window.selected_paths())

    def copy_paths(self, paths: Sequence[str]) -> None:
        """The paths as text, one a line (names that are not UTF-8 with replacement characters)."""
        if paths:
            QGuiApplication.clipboard().setText("\n".join(display_path(p) for p in paths))
            self._say(f"Copied {plural(len(paths), 'path')}", 4_000)

    def undo(self) -> None:
        self.runner.undo()

    def _on_finished(self, outcome: Outcome) -> None:
        self._say(outcome.message, 15_000)
        self.window.files_changed(outcome.gone, outcome.back)

    # ------------------------------------------------------------------ keep the best

    def select_all_but_best(self, paths: Sequence[str] | None = None) -> None:
        """Frame the photo the keep rule keeps among ``paths`` (default: the selected results when
        there are several, else every result) and select the others. Nothing moves."""
        model = self.window.model
        if paths is None:
            paths = self.window.selected_paths()
            if len(paths) < 2:
                paths = [model.item(row).path for row in range(model.rowCount())]
        paths = list(paths)
        if len(paths) < 2 or self._keeper_task is not None:
            return
        rule = keep_rule(self.settings)
        self._say("Choosing the photo to keep…", 0)
        self._keeper_task = run_in_thread(lambda: choose_keeper(paths, rule),
                                          lambda chosen: self._show_keeper(paths, *chosen),
                                          lambda message: self._say(message, 10_000),
                                          what="choosing the photo to keep", after=self._keeper_ended,
                                          parent=self)

    def is_choosing(self) -> bool:
        """A keeper is being chosen (the photos' headers read) for "Select all but the best"."""
        return self._keeper_task is not None

    def _keeper_ended(self) -> None:
        self._keeper_task = None

    def _show_keeper(self, paths: list[str], keeper: str | None, rule_words: str) -> None:
        model, view = self.window.model, self.window.view
        if keeper is None:
            self._say("None of those photos is on disk any more", 8_000)
            return
        model.set_keeper(keeper)
        selection = QItemSelection()
        for path in paths:
            row = model.row_of(path)
            if row >= 0 and path != keeper:
                selection.select(model.index(row), model.index(row))
        flags = QItemSelectionModel.SelectionFlag
        view.selectionModel().select(selection, flags.ClearAndSelect)
        keep_row = model.row_of(keeper)
        if keep_row >= 0:
            view.selectionModel().setCurrentIndex(model.index(keep_row), flags.NoUpdate)
            view.scrollTo(model.index(keep_row))
        others = len(selection.indexes())
        self._say(f"Keeping {display_path(os.path.basename(keeper))} ({rule_words}); {plural(others, 'other')} "
                  "selected: Delete moves them to the trash", 0)

    def shutdown(self) -> None:
        self.runner.shutdown()
        if self._keeper_task is not None:
            self._keeper_task.stop()
