"""Model > Retrain without PyTorch: what training adds, and installing it (pip in a QProcess) with progress and cancel."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

from app.extras import TRAINING_SIZE, install_hint, pip_install_command

log = logging.getLogger(__name__)

TERMINATE_GRACE_MS = 3000  # after terminate(), kill() if pip is still running


class TrainingAddonDialog(QDialog):
    """Explains the training extra and installs it into the app's own environment on request.

    Accepted once the install succeeded (the caller then opens the retrain dialog); rejected
    when the person declines, cancels or the install fails. Where the app cannot install
    (a bundle, the system's Python, a read-only folder) it shows the command to run instead.
    """

    def __init__(self, parent: QWidget | None = None, *, command: Sequence[str] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Add training")
        self.command = list(command) if command is not None else pip_install_command()
        self.process: QProcess | None = None
        self._cancelled = False
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Searching, labelling and the default model work as they are. Retraining teaches the "
            "model what <i>you</i> mean by a lookalike from the pairs you labelled; it needs PyTorch, "
            f"the training add-on: {TRAINING_SIZE} to download and install, once.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # pip reports packages, not bytes: a busy bar and its lines
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(500)
        self.log_view.setVisible(False)
        layout.addWidget(self.log_view, 1)
        self.buttons = QDialogButtonBox()
        self.install_button = QPushButton("Install")
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.clicked.connect(self.cancel)
        if self.command is None:
            self.status.setText(f"Lookalike cannot add it to its own environment here. Run:\n{install_hint()}")
            self.cancel_button.setText("Close")
        else:
            self.buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.AcceptRole)
            self.install_button.clicked.connect(self.install)
            self.status.setText("Install it now? Lookalike stays usable while it installs.")
        layout.addWidget(self.buttons)
        self._kill_timer = QTimer(self, singleShot=True, interval=TERMINATE_GRACE_MS)
        self._kill_timer.timeout.connect(self._kill)
        self.resize(560, 220)

    def install(self) -> None:
        if self.command is None or self.process is not None:
            return
        self.install_button.setEnabled(False)
        self.progress.setVisible(True)
        self.log_view.setVisible(True)
        self.status.setText("Installing the training add-on ...")
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        self.process.setProcessEnvironment(env)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        log.info("installing the training extra: %s", " ".join(self.command))
        self.process.start(self.command[0], self.command[1:])

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.splitlines():
            line = line.strip()
            if line:
                self.log_view.appendPlainText(line)
                if line.startswith(("Collecting", "Downloading", "Installing", "Building")):
                    self.status.setText(line[:120])

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self.progress.setVisible(False)
        self.process = None
        if self._cancelled:
            self.reject()
        elif status == QProcess.ExitStatus.NormalExit and exit_code == 0:
            self.status.setText("Installed: training is ready.")
            self.accept()
        else:
            self.status.setText(f"The install failed (pip exit code {exit_code}); its output is above. "
                                f"To try by hand: {install_hint()}")
            self.install_button.setEnabled(True)
            self.install_button.setText("Try again")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.process = None
            self.progress.setVisible(False)
            self.status.setText(f"Could not start pip. Run: {install_hint()}")
            self.install_button.setEnabled(True)

    def cancel(self) -> None:
        """Stop a running install (terminate, then kill after a grace period), else close."""
        if self.process is None:
            self.reject()
            return
        self._cancelled = True
        self.status.setText("Cancelling the install ...")
        self.cancel_button.setEnabled(False)
        self.process.terminate()
        self._kill_timer.start()

    def _kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def reject(self) -> None:  # Esc and the window's close button cancel a running install too
        if self.process is not None:
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event) -> None:
        if self.process is not None:
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)


def offer_training(parent: QWidget | None = None) -> bool:
    """Show the add-on dialog (modal); True when training is installed afterwards."""
    dialog = TrainingAddonDialog(parent)
    try:
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
    finally:
        dialog.deleteLater()
        QApplication.processEvents()
    if accepted:
        import importlib

        importlib.invalidate_caches()  # the new packages' folders must be found by find_spec
    return accepted
