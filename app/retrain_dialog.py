"""The retrain dialog: train a model version from labelled pairs in a subprocess, compare, activate, roll back."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPlainTextEdit,
                               QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from app.background import Task, run_in_thread
from app.indexing import format_duration
from app.loss_chart import REDRAW_MS, LossChart
from engine.store import ModelRow
from trainer.catalog import LEARNED, MODES

log = logging.getLogger(__name__)

DEFAULT_MODE = "head"
DEFAULT_METHOD = "dpsh"
CODE_LENGTHS = (16, 32, 48, 64)
# Mirrors trainer.library_train.MIN_SIMILAR_PAIRS: importing that module here would import torch
# into the GUI process. tests/gui/test_retrain.py checks that the two agree.
MIN_SIMILAR_PAIRS = 5
# The trainer holds out a fifth of the pairs for the before/after check only from this many on.
MIN_PAIRS_FOR_CHECK = 10
TERMINATE_GRACE_MS = 3000      # after terminate(), kill() if the trainer is still running
NOTHING_LEARNED = ("No training step did better on the held-out pairs than the current model, so the new "
                   "version codes photos as before: label more pairs, then train again.")
KILL_REAP_MS = 5000            # shutdown only: how long to wait for the OS to reap a killed trainer
STDERR_KEEP = 64 * 1024        # bytes of the trainer's stderr kept for the failure report
STDERR_TAIL_LINES = 20
MODE_HELP = {
    "head": "Train the hash layer on the features stored at indexing time: seconds, no photo is decoded.",
    "full": "Fine-tune the backbone as well: decodes your labelled photos again and re-codes the whole "
            "library; minutes to hours, much faster with a GPU.",
}
PHASE_LABELS = {"decode": "Decoding your labelled photos", "train": "Training", "export": "Exporting the model",
                "encode": "Coding your library"}
HISTORY_COLUMNS = ("Version", "Name", "Bits", "Head", "Mode", "Held-out accuracy", "Created", "Active")


# ------------------------------------------------------------------ the command line


def trainer_choices() -> tuple[list[str], list[str]]:
    """The methods and modes `lookalike train` accepts (the catalog its parser reads too)."""
    return list(LEARNED), list(MODES)


def default_launcher() -> list[str]:
    """How to run the `lookalike` command line from this process."""
    if getattr(sys, "frozen", False):
        # A bundled app: its executable is the command line when given arguments.
        return [sys.executable]
    return [sys.executable, "-m", "app.cli"]


def train_command(library_path: str | os.PathLike, *, method: str, bits: int, mode: str,
                  budget_minutes: int | None = None, extra_args: Sequence[str] = (),
                  launcher: Sequence[str] | None = None) -> list[str]:
    """The trainer's full command line (program first), as the dialog runs it.

    ``--no-activate``: the person decides after seeing the before/after accuracy.
    """
    command = [*(launcher or default_launcher()), "train", "--library", str(Path(library_path).absolute()),
               "--method", method, "--bits", str(bits), "--mode", mode, "--progress", "json", "--no-activate"]
    if budget_minutes:
        command += ["--budget", f"{int(budget_minutes)}m"]
    return command + list(extra_args)


# ------------------------------------------------------------------ the trainer subprocess


@dataclass(frozen=True)
class TrainerOutcome:
    """How a trainer run ended; ``message`` is one line for the person."""

    ok: bool
    cancelled: bool
    exit_code: int | None
    crashed: bool
    message: str
    stderr_tail: str
    done: dict | None


def failure_message(exit_code: int | None, crashed: bool, stderr_text: str) -> str:
    """The trainer's own one-line complaint (``lookalike: ...``) when it gave one, else what is known."""
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip()]
    said = next((line[len("lookalike: "):] for line in reversed(lines) if line.startswith("lookalike: ")), None)
    last = f": {lines[-1]}" if lines else ""
    if crashed:
        return f"The trainer crashed{last}"
    if said:
        return said
    if exit_code == 0:
        return "The trainer ended without reporting a new model"
    return f"The trainer failed (exit code {exit_code}){last}"


class TrainerRun(QObject):
    """One `lookalike train` subprocess: JSON progress lines in, one outcome out; cancellable.

    Nothing here blocks: output arrives on readyRead signals, cancel is terminate() then kill()
    after a grace period on a timer. Only ``stop_now`` (the app is quitting) waits, for the
    OS to reap a killed child.
    """

    event = Signal(dict)
    finished = Signal(object)  # TrainerOutcome

    def __init__(self, command: Sequence[str], parent: QObject | None = None):
        super().__init__(parent)
        self.command = list(command)
        self.process = QProcess(self)
        self.process.setProgram(self.command[0])
        self.process.setArguments(self.command[1:])
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._done: dict | None = None
        self._cancel_requested = False
        self._reported = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.setInterval(TERMINATE_GRACE_MS)
        self._kill_timer.timeout.connect(self._kill)

    def start(self) -> None:
        log.info("starting the trainer: %s", " ".join(self.command))
        self.process.start()

    def is_running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def cancel(self) -> None:
        """Ask the trainer to stop; kill it if it has not after the grace period."""
        if not self.is_running():
            return
        self._cancel_requested = True
        self.process.terminate()
        self._kill_timer.start()

    def _kill(self) -> None:
        if self.is_running():
            self.process.kill()

    def stop_now(self) -> None:
        """Kill the trainer and reap it (the dialog is going away)."""
        self._kill_timer.stop()
        if self.is_running():
            self._cancel_requested = True
            self.process.kill()
            self.process.waitForFinished(KILL_REAP_MS)

    def _read_stdout(self) -> None:
        self._stdout += self.process.readAllStandardOutput().data()
        *lines, rest = self._stdout.split(b"\n")
        self._stdout = bytearray(rest)  # a partial line waits for the rest of it
        for line in lines:
            self._parse(bytes(line))

    def _parse(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            event = json.loads(text)  # Python's json reads the NaN the trainer writes for "no check"
        except ValueError:
            log.info("trainer: %s", text)
            return
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            return
        if event["event"] == "done":
            self._done = event
        self.event.emit(event)

    def _read_stderr(self) -> None:
        self._stderr += self.process.readAllStandardError().data()
        if len(self._stderr) > STDERR_KEEP:
            del self._stderr[:-STDERR_KEEP]

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        if self._stdout.strip():  # a last line without its newline
            self._parse(bytes(self._stdout))
        self._stdout.clear()
        self._read_stderr()
        crashed = status == QProcess.ExitStatus.CrashExit
        stderr = self.stderr_text()
        tail = "\n".join(stderr.rstrip().splitlines()[-STDERR_TAIL_LINES:])
        if self._done is not None and exit_code == 0 and not crashed:
            # Also when a cancel came too late: the version is written, so say so.
            outcome = TrainerOutcome(True, False, exit_code, False, "", tail, self._done)
        elif self._cancel_requested:
            outcome = TrainerOutcome(False, True, exit_code, crashed, "Training cancelled", tail, None)
        else:
            outcome = TrainerOutcome(False, False, exit_code, crashed, failure_message(exit_code, crashed, stderr),
                                     tail, None)
        self._report(outcome)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        # Only a failed start ends a run without finished(); the other errors come with it.
        if error == QProcess.ProcessError.FailedToStart:
            self._report(TrainerOutcome(False, False, None, False,
                                        f"Could not start the trainer ({self.command[0]}): "
                                        f"{self.process.errorString()}", "", None))

    def _report(self, outcome: TrainerOutcome) -> None:
        if not self._reported:
            self._reported = True
            self.finished.emit(outcome)


# ------------------------------------------------------------------ library reads and model changes


@dataclass(frozen=True)
class LibraryFacts:
    """What the dialog shows about a library: usable labelled pairs and the model versions."""

    labelled: int      # every labelled pair
    similar: int       # pairs labelled similar whose two photos are both indexed
    dissimilar: int
    models: tuple[ModelRow, ...]
    active: ModelRow | None
    previous: ModelRow | None  # what "Roll back" re-activates

    @property
    def can_train(self) -> bool:
        return self.active is not None and self.similar >= MIN_SIMILAR_PAIRS


def read_library_facts(library_path: str | os.PathLike) -> LibraryFacts:
    """Count the labelled pairs training can use, the way the trainer counts them, and list models."""
    from engine.store import Store

    store = Store.open(library_path, create=False, readonly=True)
    try:
        rows = store.labels()
        slot_of = store.slots_for_hashes({r[0] for r in rows} | {r[1] for r in rows})
        usable = [r[2] for r in rows if r[0] in slot_of and r[1] in slot_of]
        return LibraryFacts(labelled=len(rows), similar=sum(1 for label in usable if label > 0),
                            dissimilar=sum(1 for label in usable if label < 0), models=tuple(store.models()),
                            active=store.active_model(), previous=store.previous_model())
    finally:
        store.close()


def activate_model(library_path: str | os.PathLike, model_id: int | None, *, cancel: threading.Event,
                   report: Callable[[tuple[int, int]], None]) -> ModelRow:
    """Make a model version active, or roll back (``model_id`` None), with a Library of its own:
    the ModelRow now active. Run with run_in_thread.

    Usually a second or so: photos indexed since the version was last active are coded from
    their stored features. A version whose backbone lacks features for some photos (a full
    fine-tune stopped before it encoded the library) decodes them again: that reports
    (photos encoded, photos to encode) and stops on ``cancel``, keeping what it wrote for the
    next try.
    """
    from engine.library import Library  # numpy and ONNX Runtime: in the worker thread

    def progress(state) -> None:
        report((state.done, state.total))

    with Library(Path(library_path), create=False) as library:
        if model_id is None:  # roll back: the target is read under the writer lock
            return library.roll_back(cancel=cancel, progress=progress)
        return library.activate(model_id, cancel=cancel, progress=progress)


def delete_model(library_path: str | os.PathLike, model_id: int) -> int:
    """Delete a model version that is not active (engine.library.Library.delete_model); its id."""
    from engine.library import Library  # numpy and ONNX Runtime: in the worker thread

    with Library(Path(library_path), create=False) as library:
        library.delete_model(model_id)
    return model_id


# ------------------------------------------------------------------ formatting


def format_accuracy(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f} %"


def _format_created(text: str) -> str:
    try:
        return _dt.datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(text)


def verdict_text(before: float, after: float, not_worse: bool, held_out_pairs: int | None) -> str:
    """What the held-out check says, in words."""
    if math.isnan(after) or math.isnan(before):
        return (f"Too few labelled pairs to hold some back for a check ({MIN_PAIRS_FOR_CHECK} or more are "
                "needed), so nothing says which model is better: try the new one and roll back if "
                "its results look worse.")
    pairs = f" on {held_out_pairs} pairs it did not train on" if held_out_pairs else " on held-out pairs"
    if not_worse and after > before:
        return f"The new model is better than the current one{pairs}."
    if not_worse:
        return f"The new model is as good as the current one{pairs}."
    return f"The new model is worse than the current one{pairs}; keeping the current model is recommended."


def check_details(event: dict) -> str:
    """What the figures are, in words, under the verdict (empty for an older trainer's event)."""
    if "percentile_before" not in event or math.isnan(float(event["percentile_after"])):
        return ""
    return (f" The figures: searching with one photo of each held-out similar pair ({event.get('gate_searches', 0)} "
            f"searches over the whole library), the share of the library ranked below the other photo. In the "
            f"top 10: {format_accuracy(event['top10_before'])} → {format_accuracy(event['top10_after'])}; mAP over "
            f"the held-out groups {float(event['map_before']):.3f} → {float(event['map_after']):.3f}; held-out "
            f"pair accuracy {format_accuracy(event['held_out_accuracy_before'])} → "
            f"{format_accuracy(event['held_out_accuracy_after'])}.")


# ------------------------------------------------------------------ the dialog


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
        form = QFormLayout()
        form.addRow("Method:", self.method_combo)
        form.addRow("Code length:", self.bits_combo)
        form.addRow("Mode:", self.mode_combo)
        form.addRow("", self.mode_help)
        form.addRow("Time budget:", self.budget_spin)

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
        self.history = QTableWidget(0, len(HISTORY_COLUMNS))
        self.history.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.verticalHeader().hide()
        header = self.history.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The name takes what is left (elided if need be): no horizontal scroll bar at the dialog's width.
        header.setSectionResizeMode(HISTORY_COLUMNS.index("Name"), QHeaderView.ResizeMode.Stretch)
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
        thread = run_in_thread(lambda: read_library_facts(path), self._on_facts, self._on_facts_failed,
                               what="reading the library", parent=self)
        thread.finished.connect(self._on_facts_thread_finished)
        self._facts_thread = thread

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
        self._fill_history(facts)
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

    def _fill_history(self, facts: LibraryFacts) -> None:
        keep = self.selected_version()
        self.history.setRowCount(0)
        for model in reversed(facts.models):  # newest first
            head = model.manifest.get("head") or {}
            metrics = model.manifest.get("metrics") or {}
            accuracy = metrics.get("held_out_pair_accuracy")
            if accuracy is not None:
                accuracy_text = format_accuracy(accuracy)
            elif metrics.get("held_out_pair_accuracy_estimate") is not None:
                # Full mode stopped before encoding the library: the training-time estimate.
                accuracy_text = "≈ " + format_accuracy(metrics["held_out_pair_accuracy_estimate"])
            else:
                accuracy_text = "–"
            cells = (f"v{model.id}", model.name, str(model.bits), str(head.get("kind", "?")),
                     str(head.get("mode", "–")), accuracy_text,
                     _format_created(model.created_at), "● active" if model.active else "")
            row = self.history.rowCount()
            self.history.insertRow(row)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, model.id)
                if model.active:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.history.setItem(row, column, item)
            if model.id == keep:
                self.history.selectRow(row)

    def selected_version(self) -> int | None:
        rows = self.history.selectionModel().selectedRows() if self.history.selectionModel() else []
        if not rows:
            return None
        return self.history.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def select_version(self, model_id: int) -> None:
        for row in range(self.history.rowCount()):
            if self.history.item(row, 0).data(Qt.ItemDataRole.UserRole) == model_id:
                self.history.selectRow(row)
                return
        raise KeyError(model_id)

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
        thread = run_in_thread(lambda report: activate_model(path, model_id, cancel=cancel, report=report),
                               self._on_activated, self._on_activation_failed, progress=self._on_activation_progress,
                               cancel=cancel, what="activating the model", parent=self)
        thread.finished.connect(self._on_activation_thread_finished)
        self._activation = thread
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
        thread = run_in_thread(lambda: delete_model(path, model_id), self._on_deleted,
                               lambda message: self._say(f"Could not delete: {message}", error=True),
                               what="deleting the model", parent=self)
        thread.finished.connect(self._on_activation_thread_finished)
        self._activation = thread
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
