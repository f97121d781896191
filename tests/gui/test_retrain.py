"""The retrain dialog on real libraries: train in a subprocess, loss curve, cancel, failures, activate, roll back."""

from __future__ import annotations

import itertools
import os
import subprocess
import shutil
import sys
import textwrap

import pytest
from PySide6.QtCore import Qt

from app.retrain import RetrainDialog, model_changes, train_tab, wording
from app.retrain.command import train_command, trainer_choices
from app.retrain.wording import NOTHING_LEARNED
from engine.library import Library

# Four made-up "events" of four photos each: the photos are synthetic, so which pairs are
# called similar only has to be consistent, not true.
GROUPS = [range(g * 4, g * 4 + 4) for g in range(4)]
TRAINER_START = 180_000  # ms: the trainer subprocess imports torch on two busy cores


@pytest.fixture
def library(indexed_library, tmp_path):
    """A private copy of the indexed library: labels and model versions stay in this test."""
    path = tmp_path / "library"
    shutil.copytree(indexed_library, path)
    return path


def _hashes(library_path, photo_set) -> list[str]:
    with Library(library_path, create=False) as lib:
        return [lib.store.image_by_path(str(p)).content_hash for p in photo_set["originals"]]


def label_pairs(library_path, photo_set, *, similar: int | None = None, dissimilar: int = 8) -> tuple[int, int]:
    """Label pairs within GROUPS similar (the first ``similar`` of them) and across groups dissimilar."""
    hashes = _hashes(library_path, photo_set)
    same = [pair for group in GROUPS for pair in itertools.combinations(group, 2)][:similar]
    across = [(GROUPS[g][k], GROUPS[(g + 1) % len(GROUPS)][k]) for k in range(4) for g in range(len(GROUPS))]
    with Library(library_path, create=False) as lib:
        for a, b in same:
            lib.store.add_label(hashes[a], hashes[b], 1, source="test")
        for a, b in across[:dissimilar]:
            lib.store.add_label(hashes[a], hashes[b], -1, source="test")
    return len(same), min(dissimilar, len(across))


def models_of(library_path) -> tuple[list[int], int | None]:
    with Library(library_path, create=False) as lib:
        active = lib.store.active_model()
        return [m.id for m in lib.store.models()], active.id if active else None


@pytest.fixture
def open_dialog(qtbot):
    dialogs = []

    def make(library_path, **kwargs) -> RetrainDialog:
        dialog = RetrainDialog(library_path, **kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        dialogs.append(dialog)
        qtbot.waitUntil(lambda: dialog.facts is not None, timeout=15_000)
        return dialog

    yield make
    for dialog in dialogs:
        dialog.shutdown()
        assert dialog.trainer is None, "a trainer process outlived its dialog"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_dialog_agrees_with_the_trainer_and_the_cli():
    from trainer.library_train import MIN_SIMILAR_PAIRS

    assert model_changes.MIN_SIMILAR_PAIRS == MIN_SIMILAR_PAIRS
    methods, modes = trainer_choices()
    assert "dpsh" in methods and train_tab.DEFAULT_MODE in modes
    command = train_command("lib", method="dpsh", bits=32, mode="head", budget_minutes=5, extra_args=["--steps", "9"],
                            launcher=["lookalike"])
    assert command == ["lookalike", "train", "--library", os.path.abspath("lib"), "--method", "dpsh", "--bits", "32",
                       "--mode", "head", "--progress", "json", "--no-activate", "--budget", "5m", "--steps", "9"]
    # The command line parses: a flag renamed in the CLI breaks this test, not the dialog in the field.
    from app.cli import build_parser

    args = build_parser().parse_args(command[1:])
    assert (args.method, args.bits, args.mode, args.no_activate, args.progress) == ("dpsh", 32, "head", True, "json")


def test_train_shows_the_loss_curve_and_the_check_then_activates(qtbot, open_dialog, library, photo_set):
    similar, dissimilar = label_pairs(library, photo_set)
    dialog = open_dialog(library, extra_args=["--steps", "60"])
    assert f"{similar} similar and {dissimilar} dissimilar" in dialog.pairs_label.text()
    assert dialog.train_button.isEnabled()
    assert dialog.bits_combo.currentData() == 64  # the active model's length
    assert dialog.method_combo.currentText() == "dpsh"
    assert dialog.mode_combo.currentData() == train_tab.DEFAULT_MODE
    assert [m.id for m in dialog.facts.models] == [1] and dialog.history.rowCount() == 1

    qtbot.mouseClick(dialog.train_button, Qt.MouseButton.LeftButton)
    assert dialog.is_training()
    assert not dialog.train_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert not dialog.method_combo.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=TRAINER_START)
    assert dialog.error_label.isHidden(), dialog.error_label.text()

    assert dialog.loss_series.count() == 60  # one point per step: 16 photos make one batch
    assert dialog.step_axis.max() >= 60
    losses = [dialog.loss_series.at(i).y() for i in range(dialog.loss_series.count())]
    assert dialog.loss_axis.min() <= min(losses) and dialog.loss_axis.max() >= max(losses)
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum()
    assert dialog.elapsed_label.text().startswith("Elapsed")
    assert dialog.results_box.isVisible()
    assert dialog.before_value.text().endswith("%") and dialog.after_value.text().endswith("%")
    assert "pairs it did not train on" in dialog.verdict_label.text()
    # the big figures are where the search ranks the held-out partner; the others are named under the verdict
    evaluated = dialog.train_tab.evaluated
    assert dialog.after_value.text() == wording.format_accuracy(evaluated["percentile_after"])
    assert "In the top 10" in dialog.verdict_label.text() and "pair accuracy" in dialog.verdict_label.text()

    # Written, not active: the person decides.
    new = dialog.new_version
    assert new == 2 and models_of(library) == ([1, 2], 1)
    qtbot.waitUntil(lambda: dialog.history.rowCount() == 2, timeout=15_000)
    assert dialog.activate_new_button.isEnabled() and dialog.keep_button.isEnabled()

    with qtbot.waitSignal(dialog.model_changed, timeout=60_000):
        qtbot.mouseClick(dialog.activate_new_button, Qt.MouseButton.LeftButton)
    assert models_of(library) == ([1, 2], 2)
    assert dialog.activate_new_button.isHidden()
    assert "v2" in dialog.activation_label.text() and "active" in dialog.activation_label.text()
    qtbot.waitUntil(lambda: dialog.facts.active.id == 2 and not dialog.is_activating(), timeout=15_000)
    row_of_new = next(r for r in range(dialog.history.rowCount()) if dialog.history.item(r, 0).text() == "v2")
    assert "active" in dialog.history.item(row_of_new, 7).text()
    assert dialog.history.item(row_of_new, 3).text() == "dpsh"
    assert dialog.history.item(row_of_new, 4).text() == "head"
    assert dialog.history.item(row_of_new, 5).text().endswith("%")
    assert dialog.rollback_button.isEnabled()


def test_cancel_stops_the_trainer_and_changes_nothing(qtbot, open_dialog, library, photo_set):
    label_pairs(library, photo_set)
    models_folder = sorted(os.listdir(library / "models"))
    dialog = open_dialog(library, extra_args=["--steps", "1000000"])
    dialog.start_training()
    pid = dialog.trainer.process.processId()
    qtbot.waitUntil(lambda: dialog.loss_series.count() > 0, timeout=TRAINER_START)  # it is training
    assert dialog.progress_bar.maximum() == 1_000_000

    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert not dialog.cancel_button.isEnabled()  # once is enough
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
    assert _process_gone(pid)
    assert "cancelled" in dialog.stage_label.text() and "the current model stays active" in dialog.stage_label.text()
    assert dialog.stage_label.toolTip() == "v1 stays active"  # the technical name for those who ask
    assert dialog.error_label.isHidden() and dialog.results_box.isHidden()
    assert models_of(library) == ([1], 1)
    assert sorted(os.listdir(library / "models")) == models_folder

    # Usable again at once: a second (short) run completes.
    dialog.extra_args = ["--steps", "5"]
    qtbot.waitUntil(dialog.train_button.isEnabled, timeout=15_000)
    qtbot.mouseClick(dialog.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=TRAINER_START)
    assert dialog.error_label.isHidden(), dialog.error_label.text()
    assert dialog.loss_series.count() == 5  # the curve starts afresh
    assert models_of(library) == ([1, 2], 1)


def test_closing_while_training_stops_the_trainer(qtbot, open_dialog, library, photo_set):
    label_pairs(library, photo_set)
    dialog = open_dialog(library, extra_args=["--steps", "1000000"])
    dialog.start_training()
    pid = dialog.trainer.process.processId()
    dialog.reject()  # the window's close button: cancel, close once the trainer has gone
    assert dialog.isVisible() and dialog.is_training()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
    assert dialog.trainer is None and _process_gone(pid)
    assert models_of(library) == ([1], 1)


def test_too_few_pairs_disable_train_and_the_trainer_says_why(qtbot, open_dialog, library, photo_set):
    label_pairs(library, photo_set, similar=2, dissimilar=3)
    dialog = open_dialog(library)
    assert not dialog.train_button.isEnabled()
    assert "2 similar and 3 dissimilar" in dialog.pairs_label.text()
    assert "needs at least 5 pairs labelled similar" in dialog.pairs_label.text()
    assert "label 3 more" in dialog.train_button.toolTip()

    # The trainer has the last word (labels may change between the count and the run).
    dialog.start_training()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=TRAINER_START)
    assert dialog.error_label.isVisible()
    assert dialog.error_label.text() == "training needs at least 5 pairs labelled similar among indexed photos (have 2)"
    assert "Training failed" in dialog.stage_label.text()
    assert models_of(library) == ([1], 1)

    # More pairs labelled meanwhile (in the main window): the next read of the library sees them.
    label_pairs(library, photo_set, similar=6, dissimilar=0)
    dialog.reload()
    qtbot.waitUntil(dialog.train_button.isEnabled, timeout=15_000)
    assert "6 similar and 3 dissimilar" in dialog.pairs_label.text()


def test_a_crashing_trainer_shows_its_stderr_and_leaves_the_dialog_working(qtbot, open_dialog, library, photo_set,
                                                                          tmp_path):
    label_pairs(library, photo_set)
    script = tmp_path / "crashing_trainer.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        print('{"event": "start", "pairs": 32, "train_pairs": 26, "held_out_pairs": 6, "photos": 16}', flush=True)
        sys.stderr.write("Traceback (most recent call last):\\nRuntimeError: CUDA out of memory\\n")
        sys.stderr.flush()
        os.abort()
    """))
    dialog = open_dialog(library, launcher=[sys.executable, str(script)])
    dialog.start_training()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
    assert dialog.error_label.text() == "The trainer crashed: RuntimeError: CUDA out of memory"
    assert dialog.error_details.isVisible() and "Traceback" in dialog.error_details.toPlainText()
    assert "Training failed" in dialog.stage_label.text()
    assert dialog.train_button.isEnabled() and not dialog.cancel_button.isEnabled()

    script.write_text("import sys\nsys.stderr.write('something odd\\n')\nsys.exit(7)\n")
    dialog.start_training()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
    assert dialog.error_label.text() == "The trainer failed (exit code 7): something odd"

    dialog.launcher = [str(tmp_path / "no-such-program")]
    dialog.start_training()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
    assert dialog.error_label.text().startswith("Could not start the trainer")
    assert models_of(library) == ([1], 1)


def test_progress_lines_split_across_reads_phases_unknown_events_and_nan(qtbot, open_dialog, library, photo_set,
                                                                        tmp_path):
    """A scripted trainer: partial lines, a phase bar, an event from the future, NaN accuracy."""
    label_pairs(library, photo_set)
    go = tmp_path / "go"
    script = tmp_path / "scripted_trainer.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        assert "--no-activate" in sys.argv and "--mode" in sys.argv, sys.argv
        out = sys.stdout
        out.write('{{"event": "start", "pairs": 6, "train_pairs": 6, "held_out_pairs": 0, "photos": 8}}\\n')
        out.write('{{"event": "ph')  # half a line: the rest comes in a later read
        out.flush()
        time.sleep(0.3)
        out.write('ase", "phase": "decode", "done": 3, "total": 10}}\\n{{"event": "from-the-future", "x": 1}}\\n')
        out.write('not json at all\\n')
        out.flush()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        out.write('{{"event": "epoch", "epoch": 0, "step": 0, "steps": 4, "loss": null}}\\n')
        for step in range(1, 5):
            line = '{{"event": "epoch", "epoch": %d, "step": %d, "steps": 4, "loss": %f}}\\n'
            out.write(line % (step, step, 1 / step))
        out.write('{{"event": "evaluated", "held_out_accuracy_before": NaN, "held_out_accuracy_after": NaN, '
                  '"not_worse": true, "accepted": false}}\\n')
        out.write('{{"event": "done", "version": 7, "name": "scripted-dpsh", "activated": false, '
                  '"held_out_accuracy_before": NaN, "held_out_accuracy_after": NaN, "seconds": 1.0, '
                  '"best_step": 0}}')  # no newline
        out.flush()
    """))
    dialog = open_dialog(library, launcher=[sys.executable, str(script)])
    dialog.start_training()
    qtbot.waitUntil(lambda: dialog.progress_bar.maximum() == 10, timeout=30_000)
    assert dialog.progress_bar.value() == 3
    assert dialog.stage_label.text() == "Decoding your labelled photos: 3 of 10"
    go.write_text("")
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
    assert dialog.error_label.isHidden(), dialog.error_label.text()
    assert dialog.loss_series.count() == 4  # the starting point without a loss draws nothing
    assert dialog.new_version == 7
    assert dialog.before_value.text() == "n/a" and dialog.after_value.text() == "n/a"
    assert "Too few labelled pairs" in dialog.verdict_label.text()
    assert "the new version of the model is ready" in dialog.stage_label.text()
    assert dialog.stage_label.toolTip() == "v7 scripted-dpsh"  # the technical name for those who ask
    assert NOTHING_LEARNED in dialog.stage_label.text()  # best_step 0: the head did not move

    qtbot.mouseClick(dialog.keep_button, Qt.MouseButton.LeftButton)
    assert dialog.keep_button.isHidden() and dialog.activate_new_button.isHidden()
    assert "Kept the current model v1" in dialog.activation_label.text()
    assert models_of(library) == ([1], 1)


def test_roll_back_and_activate_from_the_versions_tab_refresh_the_window(qtbot, make_window, library, photo_set,
                                                                         default_model_dir):
    with Library(library, create=False) as lib:
        lib.install_model(default_model_dir)  # v2, active; v1 was active before it
    window = make_window(library)
    qtbot.waitUntil(lambda: "model v2" in window.library_status.toolTip(), timeout=15_000)
    window.search(str(photo_set["originals"][3]))
    qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=30_000)
    searched = window.search_thread.current_request

    window.versions_action.trigger()
    dialog = window.retrain_dialog
    assert dialog is not None and dialog.isVisible() and dialog.tabs.currentIndex() == 1
    qtbot.waitUntil(lambda: dialog.facts is not None and dialog.history.rowCount() == 2, timeout=15_000)
    assert dialog.rollback_button.isEnabled() and "v1" in dialog.rollback_button.toolTip()
    assert dialog.history.item(0, 0).text() == "v2" and "active" in dialog.history.item(0, 7).text()

    with qtbot.waitSignal(dialog.model_changed, timeout=60_000):
        qtbot.mouseClick(dialog.rollback_button, Qt.MouseButton.LeftButton)
    assert models_of(library) == ([1, 2], 1)
    qtbot.waitUntil(lambda: "model v1" in window.library_status.toolTip(), timeout=15_000)
    # The results on show were ranked by the old model: searched again.
    assert window.search_thread.current_request > searched
    qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=30_000)
    qtbot.waitUntil(lambda: dialog.facts.active.id == 1 and not dialog.is_activating(), timeout=15_000)
    assert "active" in dialog.history.item(1, 7).text() and "active" not in dialog.history.item(0, 7).text()

    dialog.select_version(1)
    assert not dialog.activate_selected_button.isEnabled()  # already active
    dialog.select_version(2)
    assert dialog.activate_selected_button.isEnabled()
    with qtbot.waitSignal(dialog.model_changed, timeout=60_000):
        qtbot.mouseClick(dialog.activate_selected_button, Qt.MouseButton.LeftButton)
    assert models_of(library) == ([1, 2], 2)
    qtbot.waitUntil(lambda: "model v2" in window.library_status.toolTip(), timeout=15_000)
    qtbot.waitUntil(lambda: not dialog.is_activating(), timeout=15_000)

    dialog.close()
    qtbot.waitUntil(lambda: window.retrain_dialog is None, timeout=5_000)
    window.retrain_action.trigger()  # a fresh one, on the Train tab
    assert window.retrain_dialog is not dialog and window.retrain_dialog.tabs.currentIndex() == 0
    qtbot.waitUntil(lambda: window.retrain_dialog.facts is not None, timeout=15_000)
    assert not window.retrain_dialog.train_button.isEnabled()  # no labels in this library


@pytest.mark.slow
def test_retrain_then_quit_exits_0(library, photo_set, tmp_path):
    """The real app in its own process: search, retrain, activate, roll back, Ctrl+Q; it must exit 0.

    With PySide6 6.12.0 on CPython 3.11 every training step's progress signal took a reference
    from True, and the interpreter aborted while shutting down (bool_dealloc, exit 134).
    """
    label_pairs(library, photo_set)
    env = dict(os.environ, LOOKALIKE_LIBRARY=str(library), XDG_CONFIG_HOME=str(tmp_path / "config"),
               QT_QPA_PLATFORM="offscreen", LOOKALIKE_THEME="light", PYTHONFAULTHANDLER="1")
    process = subprocess.run([sys.executable, "-m", "tests.gui.retrain_then_quit", str(photo_set["originals"][3]),
                              "--steps", "3000"], env=env, capture_output=True, text=True, timeout=600,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert process.returncode == 0, process.stdout + process.stderr[-3000:]
    assert "step: quit" in process.stdout, process.stdout
    assert models_of(library) == ([1, 2], 1)  # trained v2, activated it, rolled back to v1


def _scripted_trainer(tmp_path, *, before: float, after: float, not_worse: bool, losses=(62.9, 0.9, 0.5, 0.4)):
    """A stand-in trainer (the dialog's launcher) that reports a few steps, a check and a version."""
    script = tmp_path / f"trainer_{before}_{after}_{not_worse}.py"
    epochs = "".join('{"event": "epoch", "epoch": %d, "step": %d, "steps": %d, "loss": %r}\n'
                     % (n, n, len(losses), loss) for n, loss in enumerate(losses, start=1))
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.stdout.write('{{"event": "start", "pairs": 40, "train_pairs": 32, "held_out_pairs": 8, "photos": 16}}\\n')
        sys.stdout.write({epochs!r})
        sys.stdout.write('{{"event": "evaluated", "held_out_accuracy_before": {before}, '
                         '"held_out_accuracy_after": {after}, "not_worse": {str(not_worse).lower()}}}\\n')
        sys.stdout.write('{{"event": "done", "version": 9, "name": "scripted", "activated": false, '
                         '"held_out_accuracy_before": {before}, "held_out_accuracy_after": {after}}}\\n')
    """))
    return [sys.executable, str(script)]


@pytest.mark.parametrize("before, after, not_worse, recommended", [
    (0.80, 0.90, True, "activate_new_button"),
    (0.80, 0.80, True, "keep_button"),   # as good, no better: keep
    (0.80, 0.70, False, "keep_button"),
])
def test_the_default_button_follows_the_verdict(qtbot, open_dialog, library, photo_set, tmp_path, before, after,
                                                not_worse, recommended):
    label_pairs(library, photo_set)
    dialog = open_dialog(library, launcher=_scripted_trainer(tmp_path, before=before, after=after,
                                                             not_worse=not_worse))
    dialog.start_training()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
    assert dialog.error_label.isHidden(), dialog.error_label.text()
    other = "keep_button" if recommended == "activate_new_button" else "activate_new_button"
    assert getattr(dialog, recommended).isDefault() and not getattr(dialog, other).isDefault()


def test_the_loss_chart_has_whole_steps_a_log_scale_and_the_dark_palette(qtbot, open_dialog, library, photo_set,
                                                                         tmp_path, qapp):
    from PySide6.QtCharts import QLogValueAxis
    from PySide6.QtGui import QPalette

    from app.theme import palette

    label_pairs(library, photo_set)
    original = QPalette(qapp.palette())
    qapp.setPalette(palette("dark"))
    try:
        dialog = open_dialog(library, launcher=_scripted_trainer(tmp_path, before=0.8, after=0.9, not_worse=True))
        dialog.start_training()
        qtbot.waitUntil(lambda: not dialog.is_training(), timeout=30_000)
        assert dialog.loss_series.count() == 4
        ticks = dialog.step_axis.tickInterval()
        assert ticks == int(ticks) >= 1 and dialog.step_axis.max() % ticks == 0
        assert isinstance(dialog.loss_axis, QLogValueAxis)  # 62.9 then 0.4: a linear axis flattens the tail
        chart = dialog.loss_chart.chart()
        assert chart.backgroundBrush().color() == palette("dark").color(QPalette.ColorRole.Base)
        assert chart.backgroundBrush().color().lightness() < 80
    finally:
        qapp.setPalette(original)


def _three_versions(library, default_model_dir) -> None:
    """v1 (the library's), then v2 and v3, each activated in turn."""
    with Library(library, create=False) as lib:
        lib.install_model(default_model_dir)
        lib.install_model(default_model_dir)


def test_roll_back_twice_goes_back_twice(qtbot, make_window, library, photo_set, default_model_dir):
    _three_versions(library, default_model_dir)
    window = make_window(library)
    window.versions_action.trigger()
    dialog = window.retrain_dialog
    qtbot.waitUntil(lambda: dialog.facts is not None and dialog.history.rowCount() == 3, timeout=15_000)
    for expected in (2, 1):
        assert f"v{expected}" in dialog.rollback_button.toolTip()
        with qtbot.waitSignal(dialog.model_changed, timeout=60_000):
            qtbot.mouseClick(dialog.rollback_button, Qt.MouseButton.LeftButton)
        assert models_of(library) == ([1, 2, 3], expected)
        qtbot.waitUntil(lambda: not dialog.is_activating() and dialog._facts_thread is None, timeout=15_000)
        qtbot.waitUntil(lambda: f"model v{expected}" in window.library_status.toolTip(), timeout=15_000)
    assert not dialog.rollback_button.isEnabled()  # v1 was the first: nothing earlier


def _answer_delete(qtbot, dialog, answer: str) -> None:
    """Press ``answer`` ("Delete" or "Cancel") in the confirmation once it shows."""
    from PySide6.QtCore import QTimer

    def press():
        box = dialog.delete_confirmation
        if box is None or not box.isVisible():
            QTimer.singleShot(20, press)
            return
        button = next(b for b in box.buttons() if b.text().replace("&", "") == answer)
        button.click()

    QTimer.singleShot(0, press)


def test_delete_a_version_from_the_versions_tab(qtbot, open_dialog, library, photo_set, default_model_dir):
    _three_versions(library, default_model_dir)
    label_pairs(library, photo_set)
    with Library(library, create=False) as lib:
        labels_before = lib.store.labels()
    dialog = open_dialog(library)
    dialog.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: dialog.history.rowCount() == 3, timeout=15_000)
    dialog.select_version(3)
    assert not dialog.delete_button.isEnabled()  # the active one
    dialog.select_version(2)
    assert dialog.delete_button.isEnabled()

    _answer_delete(qtbot, dialog, "Cancel")
    qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)
    assert models_of(library) == ([1, 2, 3], 3) and not dialog.is_activating()

    _answer_delete(qtbot, dialog, "Delete")
    qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_activating() and dialog.history.rowCount() == 2, timeout=15_000)
    assert models_of(library) == ([1, 3], 3)
    assert not (library / "models" / "0002").exists() and not (library / "codes" / "0002.u64").exists()
    assert "Deleted model v2" in dialog.history_label.text()
    with Library(library, create=False) as lib:
        assert lib.store.labels() == labels_before
    qtbot.waitUntil(lambda: dialog._facts_thread is None, timeout=15_000)
    assert "v1" in dialog.rollback_button.toolTip()  # the history skips the deleted version


def test_the_results_on_show_take_the_new_models_codes_after_a_roll_back(qtbot, make_window, library, photo_set):
    """Item 6 of issue 9: after a model change the window searches its query again, so what it
    shows (order and code distances) is the active model's, not the previous one's."""
    query = str(photo_set["originals"][5])
    with Library(library, create=False) as lib:
        lib.refit_head("lsh", seed=7)  # v2: other random hyperplanes, other codes; v1 was active before
    window = make_window(library)
    qtbot.waitUntil(lambda: "model v2" in window.library_status.toolTip(), timeout=15_000)
    window.search(query)
    qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=30_000)

    def shown():
        return [(window.model.item(r).path, window.model.item(r).hamming) for r in range(window.model.rowCount())]

    def expected():
        from engine.search import SearchParams

        with Library(library, create=False) as lib:
            return [(hit.path, hit.hamming) for hit in lib.search_file(query, SearchParams(k=window.k_spin.value()))]

    before = shown()
    assert before == expected()
    window.versions_action.trigger()
    dialog = window.retrain_dialog
    qtbot.waitUntil(lambda: dialog.facts is not None and dialog.rollback_button.isEnabled(), timeout=15_000)
    with qtbot.waitSignal(dialog.model_changed, timeout=60_000):
        qtbot.mouseClick(dialog.rollback_button, Qt.MouseButton.LeftButton)
    assert models_of(library)[1] == 1
    now = expected()
    assert now != before  # v1's codes give other distances
    qtbot.waitUntil(lambda: shown() == now, timeout=30_000)
    qtbot.waitUntil(lambda: not dialog.is_activating(), timeout=15_000)
