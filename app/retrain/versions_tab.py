"""The retrain dialog's Versions tab: the model versions, and activating, rolling back and deleting them off the GUI thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget

from app.background import Task, run_in_thread
from app.retrain.model_changes import LibraryFacts, activate_model, delete_model
from app.retrain.versions_table import VersionsTable
from engine.store import ModelRow


class VersionsTab(QWidget):
    """The library's model versions, and one model change at a time: activation, roll back or deletion.

    ``may_change`` says whether a change may start now (not while training, nor once the dialog
    is closing); a change runs in a thread of its own (run_in_thread) and says how it went, here
    and through ``said``.
    """

    selection_changed = Signal()
    change_started = Signal()
    change_finished = Signal()  # its thread has ended, whether it succeeded or not
    activated = Signal(object)  # the ModelRow now active
    deleted = Signal(int)       # the deleted version's id
    said = Signal(str, bool)    # a line about a change, and whether it is an error

    def __init__(self, library_path: str | os.PathLike, may_change: Callable[[], bool],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.library_path = Path(library_path)
        self._may_change = may_change
        self.facts: LibraryFacts | None = None
        self._change: Task | None = None

        self.history = VersionsTable()
        self.history.itemSelectionChanged.connect(self.selection_changed)
        self.activate_selected_button = QPushButton("Activate selected")
        self.activate_selected_button.clicked.connect(self.activate_selected)
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.clicked.connect(self.roll_back)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Delete the selected version and its files (not the active one); "
                                      "your labelled pairs are kept")
        self.delete_button.clicked.connect(self.delete_selected)
        self.delete_confirmation: QMessageBox | None = None  # while it asks
        self.history_label = QLabel("")
        self.history_label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.activate_selected_button)
        buttons.addWidget(self.rollback_button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.history, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.history_label)

    # ------------------------------------------------------------------ state

    def is_changing(self) -> bool:
        """A model change (activation, roll back, deletion) is running."""
        return self._change is not None

    def show_facts(self, facts: LibraryFacts | None) -> None:
        """The versions as the library lists them now (None: the library could not be read)."""
        self.facts = facts
        if facts is not None:
            self.history.fill(facts.models)

    def update_controls(self, *, idle: bool) -> None:
        """Enable what may be used now; ``idle``: neither training nor changing the active model."""
        selected = self.selected_version()
        active_id = self.facts.active.id if self.facts is not None and self.facts.active is not None else None
        self.activate_selected_button.setEnabled(idle and selected is not None and selected != active_id)
        self.delete_button.setEnabled(idle and selected is not None and selected != active_id)
        self.rollback_button.setEnabled(idle and self.facts is not None and self.facts.previous is not None)
        if self.facts is not None and self.facts.previous is not None:
            self.rollback_button.setToolTip(f"Re-activate v{self.facts.previous.id} {self.facts.previous.name}, "
                                            "the model active before the current one")

    def selected_version(self) -> int | None:
        return self.history.selected_version()

    def select_version(self, model_id: int) -> None:
        self.history.select_version(model_id)

    def say(self, message: str, *, error: bool = False) -> None:
        self.history_label.setText(message)
        self.history_label.setStyleSheet("color: #b00020;" if error else "")
        self.said.emit(message, error)

    # ------------------------------------------------------------------ model changes

    def activate_selected(self) -> None:
        selected = self.selected_version()
        if selected is not None:
            self.activate(selected)

    def roll_back(self) -> None:
        self.activate(None)

    def activate(self, model_id: int | None) -> None:
        """Make version ``model_id`` the active one (None: the one active before the current one)."""
        if self.is_changing() or not self._may_change():
            return
        path, cancel = self.library_path, threading.Event()
        target = f"model v{model_id}" if model_id is not None else "the previous model"
        self.say(f"Activating {target} (coding photos indexed since it was last active)…")
        self._change = run_in_thread(
            lambda report: activate_model(path, model_id, cancel=cancel, report=report),
            self._on_activated, self._on_activation_failed, progress=self._on_activation_progress, cancel=cancel,
            after=self._on_change_thread_finished, what="activating the model", parent=self)
        self.change_started.emit()

    def delete_selected(self) -> None:
        """Delete the selected version after the person confirms (never the active one)."""
        selected = self.selected_version()
        if selected is None or self.is_changing() or not self._may_change() or self.facts is None:
            return
        model = next((m for m in self.facts.models if m.id == selected), None)
        if model is None or model.active:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete model version",
                          f"Delete model v{model.id} {model.name}?", QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Its model file and codes are removed for good. Your labelled pairs are kept, so "
                               "you can train a version like it again.")
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.delete_confirmation = box
        try:
            box.exec()
        finally:
            self.delete_confirmation = None
        if box.clickedButton() is not delete or self.is_changing() or not self._may_change():
            return
        path, model_id = self.library_path, model.id
        self.say(f"Deleting model v{model_id}…")
        self._change = run_in_thread(
            lambda: delete_model(path, model_id), self._on_deleted,
            lambda message: self.say(f"Could not delete: {message}", error=True),
            after=self._on_change_thread_finished, what="deleting the model", parent=self)
        self.change_started.emit()

    def cancel(self) -> None:
        """Ask the change in flight to stop: only an encoding catch-up stops early; it resumes next time."""
        if self._change is not None:
            self._change.cancel.set()

    def stop(self) -> None:
        """Wait for the change in flight (the dialog is going away)."""
        if self._change is not None:
            self._change.stop()  # an activation's encoding catch-up stops early and resumes next time

    def _on_deleted(self, model_id: int) -> None:
        self.say(f"Deleted model v{model_id}; your labelled pairs are kept.")
        self.deleted.emit(model_id)

    def _on_activated(self, row: ModelRow) -> None:
        self.say(f"Model v{row.id} {row.name} is active.")
        self.activated.emit(row)

    def _on_activation_progress(self, encoded: tuple[int, int]) -> None:
        done, total = encoded
        self.say(f"Activating: encoding photos with the new network, {done} of {total}…")

    def _on_activation_failed(self, message: str) -> None:
        self.say(f"Could not activate: {message}", error=True)

    def _on_change_thread_finished(self) -> None:
        self._change = None
        self.change_finished.emit()
