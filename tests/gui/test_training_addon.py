"""The training add-on dialog: explains, installs with a running log, cancels, or names the command."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QDialog

from app import extras
from app.training_addon import TrainingAddonDialog

# Stand-ins for pip: the same kind of output, quick or slow, successful or not.
FAKE_PIP = ("import sys, time\nprint('Collecting torch==2.14.1', flush=True)\n"
            "print('Downloading torch-2.14.1.whl (900 MB)', flush=True)\ntime.sleep(float(sys.argv[1]))\n"
            "print('Installing collected packages: torch', flush=True)\nsys.exit(int(sys.argv[2]))\n")


def fake(seconds: float, exit_code: int) -> list[str]:
    return [sys.executable, "-c", FAKE_PIP, str(seconds), str(exit_code)]


def test_the_dialog_says_what_training_adds_and_how_big_it_is(qtbot):
    dialog = TrainingAddonDialog(command=fake(0, 0))
    qtbot.addWidget(dialog)
    text = " ".join(label.text() for label in dialog.findChildren(type(dialog.status)))
    assert "PyTorch" in text and "GB" in text and "labelled" in text
    assert dialog.install_button.parent() is not None  # offered: this environment is a writable venv


def test_install_shows_progress_and_accepts_when_pip_succeeds(qtbot):
    dialog = TrainingAddonDialog(command=fake(0.2, 0))
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.finished, timeout=20000) as finished:
        dialog.install_button.click()
        assert not dialog.install_button.isEnabled() and dialog.progress.isVisible()
    assert finished.args == [QDialog.DialogCode.Accepted.value]
    log = dialog.log_view.toPlainText()
    assert "Collecting torch" in log and "Installing collected packages" in log


def test_a_failed_install_says_so_and_can_be_tried_again(qtbot):
    dialog = TrainingAddonDialog(command=fake(0, 1))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.install_button.click()
    qtbot.waitUntil(lambda: dialog.process is None, timeout=20000)
    assert "failed" in dialog.status.text() and dialog.install_button.isEnabled()
    assert dialog.isVisible()  # still open: the log is there to read


def test_cancel_stops_pip_and_closes(qtbot):
    dialog = TrainingAddonDialog(command=fake(60, 0))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.install_button.click()
    qtbot.waitUntil(lambda: "Collecting" in dialog.log_view.toPlainText(), timeout=20000)
    with qtbot.waitSignal(dialog.finished, timeout=20000) as finished:
        dialog.cancel_button.click()
    assert finished.args == [QDialog.DialogCode.Rejected.value]
    assert dialog.process is None


def test_where_the_app_cannot_install_it_names_the_command(qtbot, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert extras.pip_install_command() is None
    dialog = TrainingAddonDialog()
    qtbot.addWidget(dialog)
    assert "pip install 'lookalike[train]'" in dialog.status.text()
    assert dialog.cancel_button.text() == "Close"


def test_retrain_offers_the_extra_when_torch_is_missing(monkeypatch, make_window, indexed_library):
    from app import training_addon

    offered = []
    monkeypatch.setattr(extras, "training_available", lambda: False)
    monkeypatch.setattr(training_addon, "offer_training", lambda parent=None: offered.append(parent) or False)
    window = make_window(indexed_library)
    assert window.open_retrain_dialog() is None and offered == [window]
    dialog = window.open_retrain_dialog(versions=True)  # versions need no training
    assert dialog is not None
    dialog.close()
