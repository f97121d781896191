"""The retrain dialog: train a model version from labelled pairs in a subprocess, compare, activate, roll back."""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QTabWidget,
                               QVBoxLayout, QWidget)

from app.background import Task, run_in_thread
from app.disclosure import Disclosure, note
from app.indexing import format_duration
from app.loss_chart import REDRAW_MS, LossChart
from app.retrain.command import train_command, trainer_choices
from app.retrain.model_changes import (MIN_SIMILAR_PAIRS, LibraryFacts, activate_model, delete_model,
                                       read_library_facts)
from app.retrain.trainer_run import TrainerOutcome, TrainerRun
from app.retrain.versions_table import VersionsTable
from app.retrain.wording import (MIN_PAIRS_FOR_CHECK, NOTHING_LEARNED, check_details, format_accuracy,
                                 verdict_text)
from engine.store import ModelRow

log = logging.getLogger(__name__)

DEFAULT_MODE = "head"
DEFAULT_METHOD = "dpsh"
CODE_LENGTHS = (16, 32, 48, 64)
MODE_HELP = {
    "head": "Train the hash layer on the features stored at indexing time: seconds, no photo is decoded.",
    "full": "Fine-tune the backbone as well: decodes your labelled photos again and re-codes the whole "
            "library; minutes to hours, much faster with a GPU.",
}
PHASE_LABELS = {"decode": "Decoding your labelled photos", "train": "Training", "export": "Exporting the model",
                "encode": "Coding your library"}


class RetrainDialog(QDialog):
    """Train a new model version from the library's labelled pairs, compare it, activate or keep.

    The trainer runs as a subprocess (QProcess): a crash or out-of-memory there never takes
    the window down. It runs with ``--no-activate``, so a cancelled or crashed run never
    changes the active model (head mode writes nothing before its end; full mode may leave
    its new version inactive and part-encoded, which activating it later completes).
    Closing the dialog while training cancels it.
    """

    model_changed = Signal()

    def __init__(self, library_path: str | os.PathLike, parent: QWidget | None = None, *,
                 extra_args: Sequence[str] = (), launcher: Sequence[str] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Retrain")
        self.library_path = Path(library_path)
        self.extra_args = list(extra_args)  # appended to the trainer's command line (tests: --steps)
        self.launcher = list(launcher) if launcher else None
        self.facts: LibraryFacts | None = None
        self._run: TrainerRun | None = None
        self._facts_thread: Task | None = None
        self._facts_stale = False
        self._activation: Task | None = None  # one model change at a time: activation or deletion
        self._bits_chosen = False
        self._start_event: dict = {}
        self._evaluated: dict | None = None
        self.new_version: int | None = None
        self._latest_epoch: dict | None = None  # shown by _epoch_timer: a label per step would stall the window
        self._epoch_timer = QTimer(self)
        self._epoch_timer.setSingleShot(True)
        self._epoch_timer.setInterval(REDRAW_MS)
        self._epoch_timer.timeout.connect(self._show_epoch)
        self._close_when_stopped = False
        self._closed = False
        self._elapsed = QElapsedTimer()
        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._update_elapsed)

        methods, modes = trainer_choices()
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_train_tab(methods, modes), "Train")
        self.tabs.addTab(self._build_versions_tab(), "Versions")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.resize(720, 740)
        self._update_controls()
        self.reload()

    # ------------------------------------------------------------------ layout

    def _build_train_tab(self, methods: list[str], modes: list[str]) -> QWidget:
        self.method_combo = QComboBox()
        self.method_combo.addItems(methods)
        self.method_combo.setCurrentText(DEFAULT_METHOD if DEFAULT_METHOD in methods else methods[0])
        self.method_combo.setToolTip("The deep-hashing loss; dpsh is the one the benchmarks favour (docs/TRAINING.md).")
        self.bits_combo = QComboBox()
        for bits in CODE_LENGTHS:
            self.bits_combo.addItem(f"{bits} bits", bits)
        self.bits_combo.setCurrentIndex(self.bits_combo.findData(64))
        self.bits_combo.setToolTip("Longer codes tell more photos apart; the current model's length keeps "
                                   "its hash layer as the starting point.")
        self.mode_combo = QComboBox()
        for mode in modes:
            self.mode_combo.addItem(mode, mode)
            self.mode_combo.setItemData(self.mode_combo.count() - 1, MODE_HELP.get(mode, ""),
                                        Qt.ItemDataRole.ToolTipRole)
        self.mode_combo.setCurrentIndex(max(self.mode_combo.findData(DEFAULT_MODE), 0))
        self.mode_combo.currentIndexChanged.connect(self._update_mode_help)
        self.mode_help = QLabel()
        self.mode_help.setWordWrap(True)
        self._update_mode_help()
        self.budget_spin = QSpinBox()
        self.budget_spin.setRange(0, 24 * 60)
        self.budget_spin.setSuffix(" min")
        self.budget_spin.setSpecialValueText("No limit")
        self.budget_spin.setToolTip("Stop training after this long and keep what was learned so far.")
        # The method's and the code length's names mean something to those who read the papers:
        # under Advanced, each with a line saying what it is; the defaults suit everyone else.
        advanced_body = QWidget()
        advanced_form = QFormLayout(advanced_body)
        advanced_form.setContentsMargins(12, 0, 0, 0)
        advanced_form.addRow("Method:", self.method_combo)
        advanced_form.addRow("", note("How the model learns from your pairs, named after its paper; dpsh (the "
                                      "default) did best here (docs/TRAINING.md)."))
        advanced_form.addRow("Code length:", self.bits_combo)
        advanced_form.addRow("", note("Bits in each photo's code: longer tells more photos apart; the current "
                                      "length lets training start from the current model."))
        self.advanced = Disclosure("Advanced", advanced_body, tooltip="Training method and code length")
        form = QFormLayout()
        form.addRow("Mode:", self.mode_combo)
        form.addRow("", self.mode_help)
        form.addRow("Time budget:", self.budget_spin)
        form.addRow(self.advanced)

        self.pairs_label = QLabel("Counting labelled pairs…")
        self.pairs_label.setWordWrap(True)
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.start_training)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.cancel_training)
        run_row = QHBoxLayout()
        run_row.addWidget(self.train_button)
        run_row.addWidget(self.cancel_button)
        run_row.addStretch(1)

        self.stage_label = QLabel("")
        self.stage_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.elapsed_label = QLabel("")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.elapsed_label)

        self.loss_chart = LossChart(redraw_ms=None)  # drawn by _show_epoch, with the progress bar

        self.results_box = QGroupBox("Held-out check: how far up a search the photo labelled similar comes")
        self.before_value = QLabel("–")
        self.after_value = QLabel("–")
        for value in (self.before_value, self.after_value):
            font = value.font()
            font.setPointSizeF(font.pointSizeF() * 1.6)
            font.setBold(True)
            value.setFont(font)
            value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.before_caption = QLabel("Current model")
        self.after_caption = QLabel("New model")
        for caption in (self.before_caption, self.after_caption):
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.verdict_label = QLabel("")
        self.verdict_label.setWordWrap(True)
        self.activate_new_button = QPushButton("Activate new model")
        self.activate_new_button.clicked.connect(self.activate_new_model)
        self.keep_button = QPushButton("Keep current model")
        self.keep_button.clicked.connect(self.keep_current_model)
        self.activation_label = QLabel("")
        self.activation_label.setWordWrap(True)
        grid = QGridLayout(self.results_box)
        grid.addWidget(self.before_caption, 0, 0)
        grid.addWidget(self.after_caption, 0, 1)
        grid.addWidget(self.before_value, 1, 0)
        grid.addWidget(self.after_value, 1, 1)
        grid.addWidget(self.verdict_label, 2, 0, 1, 2)
        choice_row = QHBoxLayout()
        choice_row.addStretch(1)
        choice_row.addWidget(self.keep_button)
        choice_row.addWidget(self.activate_new_button)
        grid.addLayout(choice_row, 3, 0, 1, 2)
        grid.addWidget(self.activation_label, 4, 0, 1, 2)
        self.results_box.hide()

        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.hide()
        self.error_details = QPlainTextEdit()
        self.error_details.setReadOnly(True)
        self.error_details.setMaximumHeight(140)
        self.error_details.hide()

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addLayout(form)
        layout.addWidget(self.pairs_label)
        layout.addLayout(run_row)
        layout.addWidget(self.stage_label)
        layout.addLayout(progress_row)
        layout.addWidget(self.loss_chart, 1)
        layout.addWidget(self.results_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.error_details)
        return page

    def _build_versions_tab(self) -> QWidget:
        self.history = VersionsTable()
        self.history.itemSelectionChanged.connect(self._update_controls)
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
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.history, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.history_label)
        return page

    def _update_mode_help(self) -> None:
        self.mode_help.setText(MODE_HELP.get(self.mode_combo.currentData(), ""))

    # ------------------------------------------------------------------ state

    @property
    def trainer(self) -> TrainerRun | None:
        """The trainer run in flight, if any."""
        return self._run

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
        return self._run is not None

    def is_activating(self) -> bool:
        """A model change (activation, roll back, deletion) is running."""
        return self._activation is not None

    def _update_controls(self) -> None:
        training, activating = self.is_training(), self.is_activating()
        idle = not training and not activating
        for widget in (self.method_combo, self.bits_combo, self.mode_combo, self.budget_spin):
            widget.setEnabled(not training)
        can_train = self.facts is not None and self.facts.can_train
        self.train_button.setEnabled(idle and can_train)
        self.cancel_button.setEnabled(training and not (self._run and self._run.cancel_requested))
        new_is_active = (self.facts is not None and self.facts.active is not None
                         and self.facts.active.id == self.new_version)
        choosing = idle and self.new_version is not None and not new_is_active
        self.activate_new_button.setEnabled(choosing)
        self.keep_button.setEnabled(choosing)
        selected = self.selected_version()
        active_id = self.facts.active.id if self.facts is not None and self.facts.active is not None else None
        self.activate_selected_button.setEnabled(idle and selected is not None and selected != active_id)
        self.delete_button.setEnabled(idle and selected is not None and selected != active_id)
        self.rollback_button.setEnabled(idle and self.facts is not None and self.facts.previous is not None)
        if self.facts is not None and self.facts.previous is not None:
            self.rollback_button.setToolTip(f"Re-activate v{self.facts.previous.id} {self.facts.previous.name}, "
                                            "the model active before the current one")

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
        self.pairs_label.setText(f"Cannot read the library: {message}")
        self.facts = None
        self._update_controls()

    def _on_facts(self, facts: LibraryFacts) -> None:
        self.facts = facts
        if facts.active is not None and not self._bits_chosen:
            # The current model's length by default: training starts from its hash layer.
            self._bits_chosen = True
            if self.bits_combo.findData(facts.active.bits) < 0:
                self.bits_combo.addItem(f"{facts.active.bits} bits", facts.active.bits)
            self.bits_combo.setCurrentIndex(self.bits_combo.findData(facts.active.bits))
        self.pairs_label.setText(self._pairs_text(facts))
        self.train_button.setToolTip("" if facts.can_train else self._pairs_text(facts))
        self.history.fill(facts.models)
        self._update_controls()

    @staticmethod
    def _pairs_text(facts: LibraryFacts) -> str:
        if facts.active is None:
            return "This library has no model yet: add photo folders first."
        text = (f"{facts.labelled} labelled pairs; among indexed photos {facts.similar} similar and "
                f"{facts.dissimilar} dissimilar.")
        if facts.similar < MIN_SIMILAR_PAIRS:
            missing = MIN_SIMILAR_PAIRS - facts.similar
            text += (f" Training needs at least {MIN_SIMILAR_PAIRS} pairs labelled similar: label {missing} "
                     "more (pairs whose photos are no longer indexed do not count).")
        elif facts.similar + facts.dissimilar < MIN_PAIRS_FOR_CHECK:
            text += (f" With fewer than {MIN_PAIRS_FOR_CHECK} pairs none can be held back to check that the "
                     "new model is better.")
        return text

    def selected_version(self) -> int | None:
        return self.history.selected_version()

    def select_version(self, model_id: int) -> None:
        self.history.select_version(model_id)

    # ------------------------------------------------------------------ training

    def command(self) -> list[str]:
        """The trainer command line for the current choices."""
        return train_command(self.library_path, method=self.method_combo.currentText(),
                             bits=int(self.bits_combo.currentData()), mode=self.mode_combo.currentData(),
                             budget_minutes=self.budget_spin.value() or None, extra_args=self.extra_args,
                             launcher=self.launcher)

    def start_training(self) -> None:
        """Run the trainer; the Train button only allows it once enough pairs are labelled."""
        if self.is_training() or self.is_activating() or self._closed:
            return
        self._reset_run_view()
        run = TrainerRun(self.command(), self)
        run.event.connect(self._on_event)
        run.finished.connect(self._on_run_finished)
        self._run = run
        self.stage_label.setText("Starting the trainer (loading PyTorch takes a few seconds)…")
        self.progress_bar.setRange(0, 0)  # busy until the first progress event
        self._elapsed.start()
        self._tick.start()
        self._update_elapsed()
        self._update_controls()
        run.start()

    def cancel_training(self) -> None:
        if self._run is None:
            return
        self._run.cancel()
        self.stage_label.setText("Stopping the trainer…")
        self._update_controls()

    def _reset_run_view(self) -> None:
        self.loss_chart.clear()
        self._epoch_timer.stop()
        self._latest_epoch = None
        self._start_event = {}
        self._evaluated = None
        self.new_version = None
        self.results_box.hide()
        self.before_value.setText("–")
        self.after_value.setText("–")
        self.verdict_label.setText("")
        self.activation_label.setText("")
        self.activate_new_button.show()
        self.keep_button.show()
        self.error_label.hide()
        self.error_details.hide()
        self.error_details.clear()

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind != "epoch":
            self._show_epoch()  # what came before this event, before it
        try:
            if kind == "start":
                self._start_event = event
                self.stage_label.setText(
                    f"Training on {event.get('train_pairs')} pairs of {event.get('photos')} photos "
                    f"({event.get('held_out_pairs')} pairs held back for the check)…")
            elif kind == "epoch":
                self._on_epoch(event)
            elif kind == "phase":
                self._on_phase(event)
            elif kind == "evaluated":
                self._evaluated = event
                self._show_evaluation(event)
            elif kind == "done":
                self.new_version = int(event["version"])
            # Any other event is from a newer trainer than this dialog knows: ignored.
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring a malformed trainer event %r: %s", event, exc)

    def _on_epoch(self, event: dict) -> None:
        step, steps = int(event["step"]), int(event["steps"])
        loss = event.get("loss")  # None before the first step (full mode reports its starting point)
        if loss is not None:
            self.loss_chart.add(step, float(loss))
        self.loss_chart.set_steps(steps)
        self._latest_epoch = event
        if not self._epoch_timer.isActive():
            self._epoch_timer.start()

    def _show_epoch(self) -> None:
        """The progress of the latest training step and the new points of the loss chart (a few
        times a second, not once per step)."""
        self._epoch_timer.stop()
        self.loss_chart.flush()
        event, self._latest_epoch = self._latest_epoch, None
        if event is None:
            return
        step, steps = int(event["step"]), int(event["steps"])
        self.progress_bar.setRange(0, max(steps, 1))
        self.progress_bar.setValue(min(step, steps))
        text = f"Training: step {step} of {steps}"
        loss = event.get("loss")
        if loss is not None:
            text += f" · loss {float(loss):.4f}"
        accuracy = event.get("held_out_accuracy")
        if accuracy is not None and not math.isnan(float(accuracy)):
            text += f" · held-out accuracy {format_accuracy(accuracy)}"
        self.stage_label.setText(text)

    def _on_phase(self, event: dict) -> None:
        phase = str(event.get("phase", ""))
        done, total = int(event.get("done", 0)), int(event.get("total", 0))
        label = PHASE_LABELS.get(phase, phase.capitalize() or "Working")
        if total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
            self.stage_label.setText(f"{label}: {done} of {total}")
        else:
            self.progress_bar.setRange(0, 0)
            self.stage_label.setText(f"{label}…")

    def _show_evaluation(self, event: dict) -> None:
        # The big figures: where a search ranks the held-out partner, in the ranking the person
        # gets (pair accuracy for an older trainer that did not send it).
        before = float(event.get("percentile_before", event["held_out_accuracy_before"]))
        after = float(event.get("percentile_after", event["held_out_accuracy_after"]))
        not_worse = bool(event.get("not_worse", event.get("accepted", False)))
        self.before_value.setText(format_accuracy(before))
        self.after_value.setText(format_accuracy(after))
        pairs = self._start_event.get("gate_pairs", self._start_event.get("held_out_pairs"))
        self.verdict_label.setText(verdict_text(before, after, not_worse, pairs) + check_details(event))
        better = not_worse and after > before  # NaN (no check) compares False: keep
        recommended, other = ((self.activate_new_button, self.keep_button) if better
                              else (self.keep_button, self.activate_new_button))
        other.setDefault(False)
        recommended.setDefault(True)
        recommended.setFocus()  # Enter takes the recommendation, not the Train button clicked last
        self.results_box.show()
        # Grow to fit the results rather than squeeze the chart under them (never shrink).
        layout = self.layout()
        if layout is not None and self.isVisible():
            layout.activate()
            wanted = max(layout.totalMinimumSize().height(), layout.totalHeightForWidth(self.width()))
            if wanted > self.height():
                self.resize(self.width(), wanted)

    def _on_run_finished(self, outcome: TrainerOutcome) -> None:
        run, self._run = self._run, None
        self._show_epoch()
        if run is not None:
            run.deleteLater()
        self._tick.stop()
        self._update_elapsed()
        if self._closed:
            return
        if outcome.ok:
            done = outcome.done or {}
            self.new_version = int(done.get("version", self.new_version or 0)) or None
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1)
            if self._evaluated is None:  # a trainer that skipped the check: still show its numbers
                self._show_evaluation({"held_out_accuracy_before": done.get("held_out_accuracy_before", math.nan),
                                       "held_out_accuracy_after": done.get("held_out_accuracy_after", math.nan),
                                       "not_worse": False})
            name = done.get("name", "")
            if done.get("activated"):
                self.stage_label.setText(f"Done: model v{self.new_version} {name} is active.")
                self.activate_new_button.hide()
                self.keep_button.hide()
                self.model_changed.emit()
            else:
                self.stage_label.setText(f"Done: model v{self.new_version} {name} is written; it becomes active "
                                         "only if you activate it.")
            if done.get("best_step") == 0 or done.get("best_epoch") == 0:
                self.stage_label.setText(self.stage_label.text() + " " + NOTHING_LEARNED)
        elif outcome.cancelled:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            active = self.facts.active if self.facts else None
            self.stage_label.setText("Training cancelled" + (f": model v{active.id} stays active." if active else "."))
        else:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            self.stage_label.setText("Training failed; the current model stays active.")
            self.error_label.setText(outcome.message)
            self.error_label.show()
            if outcome.stderr_tail and outcome.stderr_tail.strip() != outcome.message.strip():
                self.error_details.setPlainText(outcome.stderr_tail)
                self.error_details.show()
        self._update_controls()
        self.reload()
        if self._close_when_stopped:
            super().reject()

    def _update_elapsed(self) -> None:
        if self._elapsed.isValid():
            self.elapsed_label.setText(f"Elapsed {format_duration(self._elapsed.elapsed() / 1000)}")

    # ------------------------------------------------------------------ model changes

    def activate_new_model(self) -> None:
        if self.new_version is not None:
            self._activate(self.new_version)

    def keep_current_model(self) -> None:
        self.activate_new_button.hide()
        self.keep_button.hide()
        active = self.facts.active if self.facts else None
        self._say(f"Kept the current model{f' v{active.id}' if active else ''}. The new version "
                  f"v{self.new_version} stays under Versions, where you can activate it later.")

    def activate_selected(self) -> None:
        selected = self.selected_version()
        if selected is not None:
            self._activate(selected)

    def roll_back(self) -> None:
        self._activate(None)

    def _activate(self, model_id: int | None) -> None:
        if self.is_activating() or self.is_training() or self._closed:
            return
        path, cancel = self.library_path, threading.Event()
        target = f"model v{model_id}" if model_id is not None else "the previous model"
        self._say(f"Activating {target} (coding photos indexed since it was last active)…")
        self._activation = run_in_thread(
            lambda report: activate_model(path, model_id, cancel=cancel, report=report),
            self._on_activated, self._on_activation_failed, progress=self._on_activation_progress, cancel=cancel,
            after=self._on_activation_thread_finished, what="activating the model", parent=self)
        self._update_controls()

    def delete_selected(self) -> None:
        """Delete the selected version after the person confirms (never the active one)."""
        selected = self.selected_version()
        if selected is None or self.is_activating() or self.is_training() or self._closed or self.facts is None:
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
        if box.clickedButton() is not delete or self.is_activating() or self.is_training() or self._closed:
            return
        path, model_id = self.library_path, model.id
        self._say(f"Deleting model v{model_id}…")
        self._activation = run_in_thread(
            lambda: delete_model(path, model_id), self._on_deleted,
            lambda message: self._say(f"Could not delete: {message}", error=True),
            after=self._on_activation_thread_finished, what="deleting the model", parent=self)
        self._update_controls()

    def _on_deleted(self, model_id: int) -> None:
        self._say(f"Deleted model v{model_id}; your labelled pairs are kept.")
        if model_id == self.new_version:
            self.new_version = None
            self.activate_new_button.hide()
            self.keep_button.hide()

    def _on_activated(self, row: ModelRow) -> None:
        self._say(f"Model v{row.id} {row.name} is active.")
        if row.id == self.new_version:
            self.activate_new_button.hide()
            self.keep_button.hide()
        self.model_changed.emit()

    def _on_activation_progress(self, encoded: tuple[int, int]) -> None:
        done, total = encoded
        self._say(f"Activating: encoding photos with the new network, {done} of {total}…")

    def _on_activation_failed(self, message: str) -> None:
        self._say(f"Could not activate: {message}", error=True)

    def _on_activation_thread_finished(self) -> None:
        self._activation = None
        self._update_controls()
        self.reload()
        if self._close_when_stopped and not self.is_training():
            super().reject()

    def _say(self, message: str, *, error: bool = False) -> None:
        style = "color: #b00020;" if error else ""
        for label in (self.activation_label, self.history_label):
            label.setText(message)
            label.setStyleSheet(style)

    # ------------------------------------------------------------------ closing

    def reject(self) -> None:
        # Closing while training cancels it, and closes once the trainer has gone rather than
        # block this thread; so does an activation in flight (see activate_model).
        if self.is_training() or self.is_activating():
            self._close_when_stopped = True
            self.cancel_training()
            if self._activation is not None:
                self._activation.cancel.set()  # only an encoding catch-up stops early; it resumes next time
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
        self._tick.stop()
        if self._run is not None:
            self._run.stop_now()
        for thread in (self._facts_thread, self._activation):
            if thread is not None:
                thread.stop()  # an activation's encoding catch-up stops early and resumes next time
