"""The retrain dialog's Train tab: the trainer's options, Train and Cancel, and one run's progress, loss chart and check."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from PySide6.QtCore import QElapsedTimer, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.disclosure import Disclosure, note
from app.indexing import format_duration
from app.loss_chart import REDRAW_MS, LossChart
from app.retrain.model_changes import MIN_SIMILAR_PAIRS, LibraryFacts
from app.retrain.trainer_run import TrainerOutcome, TrainerRun
from app.retrain.wording import (MIN_PAIRS_FOR_CHECK, NOTHING_LEARNED, check_details, format_accuracy,
                                 verdict_text)

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


class TrainTab(QWidget):
    """The trainer's options, Train and Cancel, and what one trainer run shows while it runs and after.

    It runs the trainer (a TrainerRun subprocess) for the dialog, which decides when a run may
    start and what the verdict buttons do: those only ask, through the ``*_requested`` signals.
    """

    train_requested = Signal()
    cancel_requested = Signal()
    activate_new_requested = Signal()
    keep_requested = Signal()
    run_starting = Signal()           # the run is set up; its process starts next
    run_finished = Signal(object)     # TrainerOutcome, once shown (never after stop_now)
    model_changed = Signal()          # a trainer that activated its version itself

    def __init__(self, methods: Sequence[str], modes: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.facts: LibraryFacts | None = None
        self._run: TrainerRun | None = None
        self._bits_chosen = False
        self._start_event: dict = {}
        self.evaluated: dict | None = None  # the trainer's "evaluated" event of the latest run
        self.new_version: int | None = None
        self._latest_epoch: dict | None = None  # shown by _epoch_timer: a label per step would stall the window
        self._epoch_timer = QTimer(self)
        self._epoch_timer.setSingleShot(True)
        self._epoch_timer.setInterval(REDRAW_MS)
        self._epoch_timer.timeout.connect(self._show_epoch)
        self._stopped = False
        self._elapsed = QElapsedTimer()
        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._update_elapsed)

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
        self.train_button.clicked.connect(self.train_requested)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.cancel_requested)
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
        self.activate_new_button.clicked.connect(self.activate_new_requested)
        self.keep_button = QPushButton("Keep current model")
        self.keep_button.clicked.connect(self.keep_requested)
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

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.pairs_label)
        layout.addLayout(run_row)
        layout.addWidget(self.stage_label)
        layout.addLayout(progress_row)
        layout.addWidget(self.loss_chart, 1)
        layout.addWidget(self.results_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.error_details)

    def _update_mode_help(self) -> None:
        self.mode_help.setText(MODE_HELP.get(self.mode_combo.currentData(), ""))

    # ------------------------------------------------------------------ state

    @property
    def trainer(self) -> TrainerRun | None:
        """The trainer run in flight, if any."""
        return self._run

    def is_training(self) -> bool:
        return self._run is not None

    def trainer_options(self) -> dict:
        """The chosen method, code length, mode and time budget, as train_command takes them."""
        return {"method": self.method_combo.currentText(), "bits": int(self.bits_combo.currentData()),
                "mode": self.mode_combo.currentData(), "budget_minutes": self.budget_spin.value() or None}

    def update_controls(self, *, idle: bool) -> None:
        """Enable what may be used now; ``idle``: neither training nor changing the active model."""
        training = self.is_training()
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

    def hide_choice(self) -> None:
        """The new version is decided on (activated, kept or deleted): no more verdict buttons."""
        self.activate_new_button.hide()
        self.keep_button.hide()

    def say(self, message: str, error: bool = False) -> None:
        """A line about a model change, under the verdict."""
        self.activation_label.setText(message)
        self.activation_label.setStyleSheet("color: #b00020;" if error else "")

    # ------------------------------------------------------------------ library facts

    def show_facts_failed(self, message: str) -> None:
        self.pairs_label.setText(f"Cannot read the library: {message}")
        self.facts = None

    def show_facts(self, facts: LibraryFacts) -> None:
        """The labelled pairs the trainer would get, and the active model's code length as the default."""
        self.facts = facts
        if facts.active is not None and not self._bits_chosen:
            # The current model's length by default: training starts from its hash layer.
            self._bits_chosen = True
            if self.bits_combo.findData(facts.active.bits) < 0:
                self.bits_combo.addItem(f"{facts.active.bits} bits", facts.active.bits)
            self.bits_combo.setCurrentIndex(self.bits_combo.findData(facts.active.bits))
        self.pairs_label.setText(self._pairs_text(facts))
        self.train_button.setToolTip("" if facts.can_train else self._pairs_text(facts))

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

    # ------------------------------------------------------------------ a run

    def start(self, command: Sequence[str]) -> None:
        """Run the trainer ``command`` afresh (the dialog has checked that it may)."""
        self._reset_run_view()
        run = TrainerRun(command, self)
        run.event.connect(self._on_event)
        run.finished.connect(self._on_run_finished)
        self._run = run
        self.stage_label.setText("Starting the trainer (loading PyTorch takes a few seconds)…")
        self.progress_bar.setRange(0, 0)  # busy until the first progress event
        self._elapsed.start()
        self._tick.start()
        self._update_elapsed()
        self.run_starting.emit()
        run.start()

    def cancel(self) -> None:
        if self._run is None:
            return
        self._run.cancel()
        self.stage_label.setText("Stopping the trainer…")

    def stop_now(self) -> None:
        """Kill the trainer and wait for it (the dialog is going away); nothing is shown after."""
        self._stopped = True
        self._tick.stop()
        if self._run is not None:
            self._run.stop_now()

    def _reset_run_view(self) -> None:
        self.loss_chart.clear()
        self._epoch_timer.stop()
        self._latest_epoch = None
        self._start_event = {}
        self.evaluated = None
        self.new_version = None
        self.stage_label.setToolTip("")
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
                self.evaluated = event
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
        # Grow the dialog to fit the results rather than squeeze the chart under them (never shrink).
        window = self.window()
        layout = window.layout()
        if layout is not None and window.isVisible():
            layout.activate()
            wanted = max(layout.totalMinimumSize().height(), layout.totalHeightForWidth(window.width()))
            if wanted > window.height():
                window.resize(window.width(), wanted)

    def _on_run_finished(self, outcome: TrainerOutcome) -> None:
        run, self._run = self._run, None
        self._show_epoch()
        if run is not None:
            run.deleteLater()
        self._tick.stop()
        self._update_elapsed()
        if self._stopped:
            return
        if outcome.ok:
            done = outcome.done or {}
            self.new_version = int(done.get("version", self.new_version or 0)) or None
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1)
            if self.evaluated is None:  # a trainer that skipped the check: still show its numbers
                self._show_evaluation({"held_out_accuracy_before": done.get("held_out_accuracy_before", math.nan),
                                       "held_out_accuracy_after": done.get("held_out_accuracy_after", math.nan),
                                       "not_worse": False})
            # In words for people; the technical name (v3 efficientnet-lite0-dpsh) in the tooltip.
            self.stage_label.setToolTip(f"v{self.new_version} {done.get('name', '')}".strip())
            if done.get("activated"):
                self.stage_label.setText("Done: the new version of the model is active.")
                self.hide_choice()
                self.model_changed.emit()
            else:
                self.stage_label.setText("Done: the new version of the model is ready; your searches change only "
                                         "if you activate it.")
            if done.get("best_step") == 0 or done.get("best_epoch") == 0:
                self.stage_label.setText(self.stage_label.text() + " " + NOTHING_LEARNED)
        elif outcome.cancelled:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            active = self.facts.active if self.facts else None
            self.stage_label.setText("Training cancelled" + (": the current model stays active." if active else "."))
            self.stage_label.setToolTip(f"v{active.id} stays active" if active else "")
        else:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            self.stage_label.setText("Training failed; the current model stays active.")
            self.error_label.setText(outcome.message)
            self.error_label.show()
            if outcome.stderr_tail and outcome.stderr_tail.strip() != outcome.message.strip():
                self.error_details.setPlainText(outcome.stderr_tail)
                self.error_details.show()
        self.run_finished.emit(outcome)

    def _update_elapsed(self) -> None:
        if self._elapsed.isValid():
            self.elapsed_label.setText(f"Elapsed {format_duration(self._elapsed.elapsed() / 1000)}")
