"""The folder-indexing wizard: choose folders, see what it will take, index with progress and cancel."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QListWidget, QProgressBar, QPushButton,
                               QVBoxLayout, QWizard, QWizardPage)

from app.workers import CountThread, IndexThread

RATE_ESTIMATE = 20.0  # photos a second on a CPU, for the summary's rough time


def _default_model_provider() -> Path:
    from app.cli import build_default_model

    # A torch subprocess the first time; a cached folder after that.
    return build_default_model(quiet=True)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class FoldersPage(QWizardPage):
    """Page 1: the folders to index (several)."""

    def __init__(self):
        super().__init__()
        self.setTitle("Choose your photo folders")
        self.setSubTitle("Lookalike reads the photos in these folders (and their sub-folders); it never "
                         "changes or moves them.")
        self.list = QListWidget()
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        add = QPushButton("Add folder…")
        add.clicked.connect(self._choose)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

    def folders(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def add_folder(self, path: str | os.PathLike) -> None:
        path = os.path.abspath(os.fspath(path))
        if path not in self.folders():
            self.list.addItem(path)
            self.completeChanged.emit()

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.completeChanged.emit()

    def _choose(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a photo folder")
        if path:
            self.add_folder(path)

    def isComplete(self) -> bool:
        return self.list.count() > 0


class SummaryPage(QWizardPage):
    """Page 2: how many photos the folders hold and roughly how long indexing takes."""

    def __init__(self):
        super().__init__()
        self.setTitle("Ready to index")
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Index")
        self.label = QLabel()
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addStretch(1)
        self.count: int | None = None
        self._thread: CountThread | None = None

    def initializePage(self) -> None:
        self.stop()
        self.count = None
        folders = self.wizard().folders_page.folders()
        self.label.setText(f"Counting the photos in {len(folders)} folder(s)…")
        self._thread = CountThread(folders, parent=self)
        self._thread.counted.connect(self._on_counted)
        self._thread.start()

    def _on_counted(self, count: int, finished: bool) -> None:
        folders = len(self.wizard().folders_page.folders())
        if not finished:
            self.label.setText(f"Counting the photos in {folders} folder(s)… {count:,} so far")
            return
        self.count = count
        estimate = format_duration(count / RATE_ESTIMATE)
        self.label.setText(
            f"{count:,} image files in {folders} folder(s).\n\n"
            f"Indexing them takes roughly {estimate} (about {RATE_ESTIMATE:.0f} photos a second; photos "
            f"indexed before are not read again). You can cancel at any time and go on later.")

    def cleanupPage(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.cancel.set()
            self._thread.wait()
            self._thread = None


class ProgressPage(QWizardPage):
    """Page 3: indexing runs in a worker thread with its own Library; rate, ETA, cancel, skips."""

    def __init__(self):
        super().__init__()
        self.setTitle("Indexing")
        self.stage = QLabel("Starting…")
        self.stage.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.rate_label = QLabel("")
        self.cancel_button = QPushButton("Cancel indexing")
        self.cancel_button.clicked.connect(self.cancel)
        self.skipped = QListWidget()
        self.skipped_title = QLabel("Skipped files:")
        self.skipped_title.setVisible(False)
        self.skipped.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.rate_label, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addLayout(row)
        layout.addWidget(self.skipped_title)
        layout.addWidget(self.skipped, 1)
        self.thread: IndexThread | None = None
        self.report = None
        self.error: str | None = None

    def initializePage(self) -> None:
        wizard = self.wizard()
        self.report, self.error = None, None
        self.thread = IndexThread(wizard.library_path, wizard.folders_page.folders(),
                                  model_provider=wizard.model_provider, indexer_options=wizard.indexer_options,
                                  parent=self)
        self.thread.stage.connect(self.stage.setText)
        self.thread.progress.connect(self._on_progress)
        self.thread.done.connect(self._on_done)
        self.thread.failed.connect(self._on_failed)
        self.thread.finished.connect(self._on_thread_finished)
        self.cancel_button.setEnabled(True)
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def cancel(self) -> None:
        if self.thread is not None:
            self.thread.cancel.set()
            self.cancel_button.setEnabled(False)
            self.stage.setText("Cancelling: finishing the photos in flight…")

    def _on_progress(self, p) -> None:
        if p.phase == "walking":
            self.stage.setText(f"Looking for photos… {p.found:,} found")
            self.bar.setRange(0, 0)
            return
        self.stage.setText("Indexing…" if p.phase == "indexing" else "Finishing…")
        self.bar.setRange(0, max(p.total, 1))
        self.bar.setValue(p.done if p.total else 1)
        parts = [f"{p.done:,} of {p.total:,}"]
        if p.rate > 0:
            parts.append(f"{p.rate:.1f} photos/s")
        if p.eta is not None:
            parts.append(f"about {format_duration(p.eta)} left")
        if p.skipped:
            parts.append(f"{p.skipped} skipped")
        self.rate_label.setText(" · ".join(parts))

    def _on_done(self, report) -> None:
        self.report = report
        head = "Cancelled" if report.cancelled else "Done"
        self.stage.setText(
            f"{head}: {report.found:,} photos found, {report.added:,} indexed, {report.reused:,} reused, "
            f"{report.unchanged:,} unchanged, {report.skipped:,} skipped, {report.removed:,} removed "
            f"in {format_duration(report.elapsed)}."
            + ("\nRun the wizard again to go on where it stopped." if report.cancelled else ""))
        if not report.cancelled:
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
        for path, reason in report.skipped_files:
            self.skipped.addItem(f"{path}: {reason}")
        self.skipped.setVisible(bool(report.skipped_files))
        self.skipped_title.setVisible(bool(report.skipped_files))

    def _on_failed(self, message: str) -> None:
        self.error = message
        self.stage.setText(f"Indexing stopped: {message}")
        self.bar.setRange(0, 1)

    def _on_thread_finished(self) -> None:
        self.thread.wait()  # finished is sent just before the thread ends: let it end
        self.cancel_button.setEnabled(False)
        self.completeChanged.emit()
        self.wizard()._on_index_thread_finished()

    def isComplete(self) -> bool:
        return self.thread is not None and self.thread.isFinished()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.cancel.set()
            self.thread.wait()


class IndexWizard(QWizard):
    """Adds folders to the library at ``library_path`` and indexes them."""

    def __init__(self, library_path: str | os.PathLike, parent=None, *,
                 model_provider: Callable[[], Path] | None = None, indexer_options: dict | None = None):
        super().__init__(parent)
        self.setWindowTitle("Add photo folders")
        self.library_path = Path(library_path)
        self.model_provider = model_provider or _default_model_provider
        self.indexer_options = dict(indexer_options or {})
        self.folders_page = FoldersPage()
        self.summary_page = SummaryPage()
        self.progress_page = ProgressPage()
        for page in (self.folders_page, self.summary_page, self.progress_page):
            self.addPage(page)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self._close_when_stopped = False

    def reject(self) -> None:
        # Closing while indexing: cancel, and close once the batch in flight is committed
        # rather than block this thread waiting for it.
        self.summary_page.stop()
        if self.progress_page.is_running():
            self._close_when_stopped = True
            self.progress_page.cancel()
            self.button(QWizard.WizardButton.CancelButton).setEnabled(False)
            return
        super().reject()

    def _on_index_thread_finished(self) -> None:
        self.button(QWizard.WizardButton.CancelButton).setEnabled(False)
        if self._close_when_stopped:
            super().reject()

    def shutdown(self) -> None:
        """Cancel and wait for every worker (the app is quitting)."""
        self.summary_page.stop()
        self.progress_page.stop()
