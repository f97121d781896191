"""One `lookalike train` subprocess (QProcess): JSON progress lines in, one outcome out; cancellable, never blocking."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

log = logging.getLogger(__name__)

TERMINATE_GRACE_MS = 3000      # after terminate(), kill() if the trainer is still running
KILL_REAP_MS = 5000            # shutdown only: how long to wait for the OS to reap a killed trainer
STDERR_KEEP = 64 * 1024        # bytes of the trainer's stderr kept for the failure report
STDERR_TAIL_LINES = 20


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
