"""The retrain dialog: train a model version from labelled pairs in a subprocess, compare, activate, roll back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTabWidget, QVBoxLayout, QWidget

from app.background import Task, run_in_thread
from app.retrain.command import train_command, trainer_choices
from app.retrain.model_changes import LibraryFacts, read_library_facts
from app.retrain.train_tab import TrainTab
from app.retrain.trainer_run import TrainerOutcome, TrainerRun
from app.retrain.versions_tab import VersionsTab
from engine.store import ModelRow


def _in_tab(tab: str, name: str) -> property:
    """A widget or figure of one of the tabs, read as the dialog's (the tests, the screenshots and the bench do)."""
    return property(lambda dialog: getattr(getattr(dialog, tab), name),
                    doc=f"``{tab}.{name}``")


class RetrainDialog(QDialog):
    """Train a new model version from the library's labelled pairs, compare it, activate or keep.

    The trainer runs as a subprocess (QProcess): a crash or out-of-memory there never takes
    the window down. It runs with ``--no-activate``, so a cancelled or crashed run never
    changes the active model (head mode writes nothing before its end; full mode may leave
    its new version inactive and part-encoded, which activating it later completes).
    Closing the dialog while training cancels it.

    The Train tab (``train_tab``) runs the trainer and shows the run; the Versions tab
    (``versions_tab``) lists the versions and makes one model change at a time. The dialog
    reads the library's facts for both, allows one thing at a time (a run or a model change),
    answers the verdict buttons and closes once nothing runs.
    """

    model_changed = Signal()

    # The tabs' widgets under the names they had when the dialog built them itself.
    method_combo = _in_tab("train_tab", "method_combo")
    bits_combo = _in_tab("train_tab", "bits_combo")
    mode_combo = _in_tab("train_tab", "mode_combo")
    budget_spin = _in_tab("train_tab", "budget_spin")
    advanced = _in_tab("train_tab", "advanced")
    pairs_label = _in_tab("train_tab", "pairs_label")
    train_button = _in_tab("train_tab", "train_button")
    cancel_button = _in_tab("train_tab", "cancel_button")
    stage_label = _in_tab("train_tab", "stage_label")
    progress_bar = _in_tab("train_tab", "progress_bar")
    elapsed_label = _in_tab("train_tab", "elapsed_label")
    loss_chart = _in_tab("train_tab", "loss_chart")
    results_box = _in_tab("train_tab", "results_box")
    before_value = _in_tab("train_tab", "before_value")
    after_value = _in_tab("train_tab", "after_value")
    verdict_label = _in_tab("train_tab", "verdict_label")
    activate_new_button = _in_tab("train_tab", "activate_new_button")
    keep_button = _in_tab("train_tab", "keep_button")
    activation_label = _in_tab("train_tab", "activation_label")
    error_label = _in_tab("train_tab", "error_label")
    error_details = _in_tab("train_tab", "error_details")
    new_version = _in_tab("train_tab", "new_version")
    history = _in_tab("versions_tab", "history")
    activate_selected_button = _in_tab("versions_tab", "activate_selected_button")
    rollback_button = _in_tab("versions_tab", "rollback_button")
    delete_button = _in_tab("versions_tab", "delete_button")
    delete_confirmation = _in_tab("versions_tab", "delete_confirmation")
    history_label = _in_tab("versions_tab", "history_label")

    def __init__(self, library_path: str | os.PathLike, parent: QWidget | None = None, *,
                 extra_args: Sequence[str] = (), launcher: Sequence[str] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Retrain")
        self.library_path = Path(library_path)
        self.extra_args = list(extra_args)  # appended to the trainer's command line (tests: --steps)
        self.launcher = list(launcher) if launcher else None
        self.facts: LibraryFacts | None = None
        self._facts_thread: Task | None = None
        self._facts_stale = False
        self._close_when_stopped = False
        self._closed = False

        methods, modes = trainer_choices()
        self.train_tab = TrainTab(methods, modes)
        self.train_tab.train_requested.connect(self.start_training)
        self.train_tab.cancel_requested.connect(self.cancel_training)
        self.train_tab.activate_new_requested.connect(self.activate_new_model)
        self.train_tab.keep_requested.connect(self.keep_current_model)
        self.train_tab.run_starting.connect(self._update_controls)
        self.train_tab.run_finished.connect(self._on_run_finished)
        self.train_tab.model_changed.connect(self.model_changed)
        self.versions_tab = VersionsTab(self.library_path, self._may_change_models)
        self.versions_tab.selection_changed.connect(self._update_controls)
        self.versions_tab.change_started.connect(self._update_controls)
        self.versions_tab.change_finished.connect(self._on_model_change_finished)
        self.versions_tab.activated.connect(self._on_activated)
        self.versions_tab.deleted.connect(self._on_deleted)
        self.versions_tab.said.connect(self.train_tab.say)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.addTab(self.versions_tab, "Versions")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.resize(720, 740)
        self._update_controls()
        self.reload()

    # ------------------------------------------------------------------ state

    @property
    def trainer(self) -> TrainerRun | None:
        """The trainer run in flight, if any."""
        return self.train_tab.trainer

    @property
    def loss_series(self):
        return self.loss_chart.series

    @property
    def step_axis(self):
        return self.loss_chart.step_axis

    @property
    def loss_axis(self):
        return self.loss_chart.loss_axis

    def is_training(self) -> bool:
        return self.train_tab.is_training()

    def is_activating(self) -> bool:
        """A model change (activation, roll back, deletion) is running."""
        return self.versions_tab.is_changing()

    def _may_change_models(self) -> bool:
        return not self.is_training() and not self._closed

    def _update_controls(self) -> None:
        idle = not self.is_training() and not self.is_activating()
        self.train_tab.update_controls(idle=idle)
        self.versions_tab.update_controls(idle=idle)

    # ------------------------------------------------------------------ library facts

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.reload()  # pairs may have been labelled in the main window meanwhile

    def reload(self) -> None:
        """Re-read the labelled pairs and model versions (in a worker thread)."""
        if self._closed:
            return
        if self._facts_thread is not None:
            self._facts_stale = True  # read again once the read in flight ends
            return
        path = self.library_path
        self._facts_thread = run_in_thread(lambda: read_library_facts(path), self._on_facts, self._on_facts_failed,
                                           after=self._on_facts_thread_finished, what="reading the library",
                                           parent=self)

    def _on_facts_thread_finished(self) -> None:
        self._facts_thread = None
        if self._facts_stale:
            self._facts_stale = False
            self.reload()

    def _on_facts_failed(self, message: str) -> None:
        self.train_tab.show_facts_failed(message)
        self.versions_tab.show_facts(None)
        self.facts = None
        self._update_controls()

    def _on_facts(self, facts: LibraryFacts) -> None:
        self.facts = facts
        self.train_tab.show_facts(facts)
        self.versions_tab.show_facts(facts)
        self._update_controls()

    def selected_version(self) -> int | None:
        return self.versions_tab.selected_version()

    def select_version(self, model_id: int) -> None:
        self.versions_tab.select_version(model_id)

    # ------------------------------------------------------------------ training

    def command(self) -> list[str]:
        """The trainer command line for the current choices."""
        return train_command(self.library_path, **self.train_tab.trainer_options(), extra_args=self.extra_args,
                             launcher=self.launcher)

    def start_training(self) -> None:
        """Run the trainer; the Train button only allows it once enough pairs are labelled."""
        if self.is_training() or self.is_activating() or self._closed:
            return
        self.train_tab.start(self.command())

    def cancel_training(self) -> None:
        if not self.is_training():
            return
        self.train_tab.cancel()
        self._update_controls()

    def _on_run_finished(self, outcome: TrainerOutcome) -> None:
        self._update_controls()
        self.reload()
        if self._close_when_stopped:
            super().reject()

    # ------------------------------------------------------------------ model changes

    def activate_new_model(self) -> None:
        if self.new_version is not None:
            self.versions_tab.activate(self.new_version)

    def keep_current_model(self) -> None:
        self.train_tab.hide_choice()
        active = self.facts.active if self.facts else None
        self.versions_tab.say(f"Kept the current model{f' v{active.id}' if active else ''}. The new version "
                              f"v{self.new_version} stays under Versions, where you can activate it later.")

    def activate_selected(self) -> None:
        self.versions_tab.activate_selected()

    def roll_back(self) -> None:
        self.versions_tab.roll_back()

    def delete_selected(self) -> None:
        """Delete the selected version after the person confirms (never the active one)."""
        self.versions_tab.delete_selected()

    def _on_deleted(self, model_id: int) -> None:
        if model_id == self.new_version:
            self.train_tab.new_version = None
            self.train_tab.hide_choice()

    def _on_activated(self, row: ModelRow) -> None:
        if row.id == self.new_version:
            self.train_tab.hide_choice()
        self.model_changed.emit()

    def _on_model_change_finished(self) -> None:
        self._update_controls()
        self.reload()
        if self._close_when_stopped and not self.is_training():
            super().reject()

    # ------------------------------------------------------------------ closing

    def reject(self) -> None:
        # Closing while training cancels it, and closes once the trainer has gone rather than
        # block this thread; so does an activation in flight (see activate_model).
        if self.is_training() or self.is_activating():
            self._close_when_stopped = True
            self.cancel_training()
            self.versions_tab.cancel()  # only an encoding catch-up stops early; it resumes next time
            return
        super().reject()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def shutdown(self) -> None:
        """Kill the trainer and wait for the worker threads: nothing outlives the dialog."""
        if self._closed:
            return
        self._closed = True
        self.train_tab.stop_now()
        if self._facts_thread is not None:
            self._facts_thread.stop()
        self.versions_tab.stop()
