"""The folder-indexing wizard: choose folders and options, see what it will take, index with progress.

The run itself belongs to the window's IndexingService, so closing the wizard ("Hide") lets
it go on, and opening the wizard again while it runs shows its progress page.
"""

from __future__ import annotations

import os
import threading

from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QMessageBox, QProgressBar, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget, QWizard, QWizardPage)

from app.disclosure import Disclosure, note
from app.indexing import (SETTINGS_PROVIDER, SETTINGS_THREADS, IndexingService, LibraryInfo, format_duration,
                          read_library_info, saved_provider, saved_threads, time_left)
from app.dialog_folders import remember_folder, start_folder
from app.background import Task, run_in_thread
from app.workers import IndexSetup, plan_folders
from engine.index import suffix_families
from engine.models import plain_name, technical_name
from engine.paths import display_path

# The summary's rough time: photos read and decoded a second on a CPU (camera JPEGs; small
# ones go faster); a run's own start (decoder processes, the walk, the last commit); the
# default model's first build on this machine, paid once (a torch export: 6 s on an idle
# 2-core machine, 30 s on a busy one; about 15 s in the run reported in issue 13).
# tests/bench/bench_wizard_estimate.py compares them with the time taken.
RATE_ESTIMATE = 20.0
RUN_OVERHEAD_ESTIMATE = 2.0
MODEL_BUILD_ESTIMATE = 15.0
WIZARD_SIZE = QSize(720, 560)  # every page fits: the dialog keeps one size from page to page
CODE_LENGTHS = (16, 32, 48, 64)
DEFAULT_BITS = 64


class FoldersPage(QWizardPage):
    """Page 1: the folders to index (several); the library's own folders are listed once known."""

    def __init__(self):
        super().__init__()
        self.setTitle("Choose your photo folders")
        self.setSubTitle("Lookalike reads the photos in these folders (and their sub-folders); it never "
                         "changes or moves them.")
        self.list = QListWidget()
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self._folders: list[str] = []
        self._library_roots: dict[str, int] = {}  # the library's folders -> photos indexed in each
        add = QPushButton("Add folder…")
        add.clicked.connect(self._choose)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        # Says what happened to a folder inside another: the two are indexed as one.
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setVisible(False)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(self.note)

    def folders(self) -> list[str]:
        # Kept here, row for row: the list's Qt text cannot hold a name that is not UTF-8.
        return list(self._folders)

    def add_folder(self, path: str | os.PathLike) -> None:
        """List a folder; one inside a listed folder is not listed again, and one holding
        listed folders takes their place (the engine merges nested roots the same way)."""
        from engine.index import outermost_folders

        path = os.path.abspath(os.fspath(path))
        if path in self._folders:
            return
        outer = outermost_folders([*self._folders, path])
        if outer[path] != path:
            self._say(f"{display_path(path)} is inside {display_path(outer[path])}: it is indexed as part of it.")
            return
        inner = [folder for folder in self._folders if outer[folder] == path]
        for folder in inner:
            self._take_row(self._folders.index(folder))
        self._folders.append(path)
        self.list.addItem(display_path(path))
        if inner:
            names = ", ".join(display_path(os.path.relpath(folder, path)) for folder in inner)
            self._say(f"{display_path(path)} holds {names}: they are indexed as one folder.")
        self.completeChanged.emit()

    def _say(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _take_row(self, row: int) -> None:
        self.list.takeItem(row)
        del self._folders[row]

    def remove_selected(self) -> None:
        """Take the selected folders off the list; a folder the library indexes is forgotten
        by the next index run (its photos, not their labels), once the person confirms."""
        rows = sorted((self.list.row(item) for item in self.list.selectedItems()), reverse=True)
        indexed = [self._folders[row] for row in rows if self._folders[row] in self._library_roots]
        if indexed and not self._confirm_forget(sorted(indexed)):
            return
        for row in rows:
            self._take_row(row)
        self._say("")
        self.completeChanged.emit()

    def _confirm_forget(self, roots: list[str]) -> bool:
        photos = sum(self._library_roots[root] for root in roots)
        box = QMessageBox(QMessageBox.Icon.Question, "Remove from the library",
                          (f"Remove {display_path(roots[0])} from the library?" if len(roots) == 1 else
                           f"Remove these {len(roots)} folders from the library?\n"
                           + "\n".join(display_path(root) for root in roots)),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setInformativeText(
            f"{'Its' if len(roots) == 1 else 'Their'} {photos:,} photo{'s' if photos != 1 else ''} will be "
            "forgotten when you index: they no longer come up in searches. The files themselves are not "
            "touched, and your labels are kept: they come back if you add the folder again.")
        box.button(QMessageBox.StandardButton.Yes).setText("Remove")
        box.button(QMessageBox.StandardButton.No).setText("Keep")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def forget_roots(self) -> list[str]:
        """The library's folders taken off the list (and not inside a listed folder): to forget."""
        listed = self._folders
        return [root for root in sorted(self._library_roots)
                if not any(root == folder or root.startswith(folder.rstrip(os.sep) + os.sep) for folder in listed)]

    def _choose(self) -> None:
        settings = getattr(self.wizard(), "settings", None)
        path = QFileDialog.getExistingDirectory(self, "Add a photo folder",
                                                start_folder(settings) if settings is not None else "")
        if path:
            if settings is not None:
                remember_folder(settings, path)
            self.add_folder(path)

    def show_info(self, info: LibraryInfo) -> None:
        # Indexing the library's folders again is how exclusion and type changes reach them.
        self._library_roots = dict(info.root_photos)
        for root in info.roots:
            self.add_folder(root)

    def isComplete(self) -> bool:
        # Removing every folder is a run too: it forgets them.
        return self.list.count() > 0 or bool(self.forget_roots())


class OptionsPage(QWizardPage):
    """Page 2: exclusions, file types, code length (a new library only), device and decoder threads."""

    def __init__(self, settings: QSettings):
        super().__init__()
        self.setTitle("Options")
        self.setSubTitle("What to leave out, which file types to read, and how to run.")
        self._settings = settings
        self._shown = False

        # exclusions: a list editor of fnmatch patterns
        self.exclusions = QListWidget()
        self.exclusions.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.exclusion_edit = QLineEdit()
        self.exclusion_edit.setPlaceholderText("e.g. Private")
        # The examples in full, wrapped: a placeholder that long was cut off by the buttons.
        self.exclusion_hint = QLabel("A folder or file name (Private), a path inside one of your folders "
                                     "(Screenshots/*) or a pattern (*.tmp.jpg).")
        self.exclusion_hint.setWordWrap(True)
        self.exclusion_hint.setTextFormat(Qt.TextFormat.PlainText)
        self.exclusion_edit.returnPressed.connect(self._add_typed_exclusion)
        add = QPushButton("Add")
        add.clicked.connect(self._add_typed_exclusion)
        self.remove_exclusion_button = QPushButton("Remove")
        self.remove_exclusion_button.clicked.connect(self.remove_selected_exclusions)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.exclusion_edit, 1)
        edit_row.addWidget(add)
        edit_row.addWidget(self.remove_exclusion_button)
        exclusions_box = QGroupBox("Leave out (hidden files and system folders always are)")
        box = QVBoxLayout(exclusions_box)
        box.addWidget(self.exclusions)
        box.addLayout(edit_row)
        box.addWidget(self.exclusion_hint)

        # file types
        self.type_boxes: dict[str, QCheckBox] = {}
        self._families = suffix_families()
        types_box = QGroupBox("File types")
        grid = QGridLayout(types_box)
        for i, (name, suffixes) in enumerate(self._families.items()):
            check = QCheckBox(name)
            check.setChecked(True)
            check.setToolTip(" ".join(suffixes))
            check.toggled.connect(self.completeChanged)
            self.type_boxes[name] = check
            grid.addWidget(check, i // 4, i % 4)

        # running
        self.model_label = QLabel("Reading the library…")
        self.model_label.setWordWrap(True)
        self.bits_combo = QComboBox()
        for bits in CODE_LENGTHS:
            self.bits_combo.addItem(f"{bits} bits", bits)
        self.bits_combo.setCurrentIndex(CODE_LENGTHS.index(DEFAULT_BITS))
        self.bits_combo.setToolTip("Longer codes tell more photos apart; shorter ones search a little faster.")
        self.bits_combo.setVisible(False)
        self.device_combo = QComboBox()
        # A long device description must not widen the dialog when it arrives.
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_combo.setMinimumContentsLength(24)
        self.device_combo.addItem("Reading the devices…", "auto")
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(1, max(64, 2 * (os.cpu_count() or 1)))
        self.threads_spin.setValue(saved_threads(settings))
        self.threads_spin.setToolTip("Processes that read and decode photos; decoding is most of the work.")
        # How it runs is rarely changed: under Advanced, each with a line saying what it is
        advanced_body = QWidget()
        advanced_form = QFormLayout(advanced_body)
        advanced_form.setContentsMargins(12, 0, 0, 0)
        self.bits_label = QLabel("Code length:")
        advanced_form.addRow(self.bits_label, self.bits_combo)
        self.bits_note = note("The bits of each photo's code for the fast first pass: longer tells more photos "
                              "apart, shorter searches a little faster. Only a new library chooses.")
        advanced_form.addRow("", self.bits_note)
        advanced_form.addRow("Device:", self.device_combo)
        advanced_form.addRow("", note("Where the model runs: the processor, or a graphics card when there is one."))
        advanced_form.addRow("Decoder threads:", self.threads_spin)
        advanced_form.addRow("", note("How many photos are read at once; reading them is most of the work."))
        self.advanced = Disclosure("Advanced", advanced_body, tooltip="Code length, device and decoder threads")
        run_box = QGroupBox("Model")
        form = QVBoxLayout(run_box)
        form.addWidget(self.model_label)
        form.addWidget(self.advanced)

        layout = QVBoxLayout(self)
        layout.addWidget(exclusions_box, 1)
        layout.addWidget(types_box)
        layout.addWidget(run_box)

    # -- exclusions

    def exclusion_patterns(self) -> list[str]:
        return [self.exclusions.item(i).text() for i in range(self.exclusions.count())]

    def add_exclusion(self, pattern: str) -> None:
        pattern = pattern.strip()
        if pattern and pattern not in self.exclusion_patterns():
            self.exclusions.addItem(pattern)

    def _add_typed_exclusion(self) -> None:
        self.add_exclusion(self.exclusion_edit.text())
        self.exclusion_edit.clear()

    def remove_selected_exclusions(self) -> None:
        for item in self.exclusions.selectedItems():
            self.exclusions.takeItem(self.exclusions.row(item))

    # -- choices

    def suffixes(self) -> tuple[str, ...] | None:
        """The chosen suffixes; None when every type is chosen (new types then count too)."""
        chosen = [name for name, box in self.type_boxes.items() if box.isChecked()]
        if len(chosen) == len(self.type_boxes):
            return None
        return tuple(sorted(s for name in chosen for s in self._families[name]))

    def type_names(self) -> list[str]:
        return [name for name, box in self.type_boxes.items() if box.isChecked()]

    def bits(self) -> int:
        return int(self.bits_combo.currentData())

    def provider(self) -> str:
        return str(self.device_combo.currentData())

    def show_info(self, info: LibraryInfo) -> None:
        """Fill the page from the library (once: later visits keep the person's edits)."""
        if self._shown:
            return
        self._shown = True
        for pattern in info.exclusions:
            self.add_exclusion(pattern)
        if info.suffixes is not None:
            chosen = set(info.suffixes)
            for name, box in self.type_boxes.items():
                box.setChecked(bool(chosen & set(self._families[name])))
        if info.model is not None:
            model = info.model
            self.model_label.setText(f"{plain_name({'head': model.get('head') or {}}, model.get('created_at'))} "
                                     "(change models in the Model menu)")
            self.model_label.setToolTip("model " + technical_name(model["version"], model))
            for widget in (self.bits_label, self.bits_combo, self.bits_note):
                widget.setVisible(False)
        else:
            self.model_label.setText("The default model: it finds copies and look-alikes without any "
                                     "labels, and learns from the pairs you label later.")
            for widget in (self.bits_label, self.bits_combo, self.bits_note):
                widget.setVisible(True)
        self.device_combo.clear()
        for setting, label in info.providers:
            self.device_combo.addItem(label, setting)
        index = self.device_combo.findData(saved_provider(self._settings))
        self.device_combo.setCurrentIndex(max(index, 0))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._shown and any(box.isChecked() for box in self.type_boxes.values())


class SummaryPage(QWizardPage):
    """Page 3: how many photos the folders hold, roughly how long indexing takes, and the options."""

    def __init__(self):
        super().__init__()
        self.setTitle("Ready to index")
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Index")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.options_label = QLabel()
        self.options_label.setWordWrap(True)
        self.options_label.setTextFormat(Qt.TextFormat.PlainText)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addSpacing(12)
        layout.addWidget(self.options_label)
        layout.addStretch(1)
        self.count: int | None = None
        self.to_read: int | None = None      # new or changed files: the ones that cost time
        self.estimate: float | None = None   # seconds
        self._thread: Task | None = None

    def initializePage(self) -> None:
        self.stop()
        self.count = self.to_read = self.estimate = None
        wizard = self.wizard()
        folders = wizard.folders_page.folders()
        options = wizard.options_page
        self.label.setText(f"Counting the photos in {len(folders)} folder(s)…")
        self.options_label.setText(self.options_text())
        suffixes = options.suffixes()
        exclusions, cancel, library_path = options.exclusion_patterns(), threading.Event(), wizard.library_path
        self._thread = run_in_thread(
            lambda report: plan_folders(folders, library_path=library_path, exclusions=exclusions, suffixes=suffixes,
                                        cancel=cancel, report=report),
            self._on_planned, self._on_count_failed, progress=self._on_counted,
            cancel=cancel, what="counting the photos", parent=self)

    def options_text(self) -> str:
        wizard = self.wizard()
        options = wizard.options_page
        info = wizard.info
        patterns = options.exclusion_patterns()
        types = options.type_names()
        lines = [
            "Leaving out: " + (", ".join(patterns) if patterns else "nothing but hidden files and system folders"),
            "File types: " + ("all" if options.suffixes() is None else ", ".join(types)),
        ]
        if info is not None and info.model is not None:
            lines.append(f"Model: v{info.model['version']} {info.model['name']} ({info.model['bits']}-bit codes)")
        else:
            lines.append(f"Model: the default model, {options.bits()}-bit codes")
        lines.append(f"Device: {options.device_combo.currentText()} · {options.threads_spin.value()} decoder "
                     f"thread(s)")
        forget = wizard.folders_page.forget_roots()
        if forget:
            lines.append("Forgetting: " + ", ".join(display_path(root) for root in forget)
                         + " (their photos leave the library; labels are kept)")
        return "\n".join(lines)

    def _on_count_failed(self, message: str) -> None:
        self.label.setText(f"The photos could not be counted: {message}")

    def _on_counted(self, count: int) -> None:
        folders = len(self.wizard().folders_page.folders())
        self.label.setText(f"Counting the photos in {folders} folder(s)… {count:,} so far")

    def _on_planned(self, plan) -> None:
        """The count is done: engine.index.IndexPlan (None: cancelled)."""
        if plan is None:
            return
        folders = len(self.wizard().folders_page.folders())
        self.count, self.to_read = plan.found, plan.to_read
        build = self.model_needs_building()
        self.estimate = ((MODEL_BUILD_ESTIMATE if build else 0.0) + RUN_OVERHEAD_ESTIMATE
                         + plan.to_read / RATE_ESTIMATE)
        if not folders:
            self.label.setText("Nothing to index: the folders you removed are forgotten.")
            return
        if not plan.unchanged:
            read = f"{plan.to_read:,} to read"
        elif not plan.to_read:
            read = f"all {plan.unchanged:,} unchanged since they were indexed: nothing to read again"
        else:
            read = f"{plan.to_read:,} new or changed to read, {plan.unchanged:,} unchanged since they were indexed"
        self.label.setText(
            f"{plan.found:,} image files in {folders} folder(s): {read}.\n\n"
            f"Indexing takes roughly {format_duration(self.estimate)}"
            + (f", {format_duration(MODEL_BUILD_ESTIMATE)} of it preparing the model (the first time only)"
               if build else "")
            + ". Indexing goes on if you close this window; you can cancel at any time and go on later.")

    def model_needs_building(self) -> bool:
        """A new library gets the default model, built once per machine (then cached)."""
        wizard = self.wizard()
        if wizard.info is not None and wizard.info.model is not None:
            return False
        from engine.default_model import default_model_built

        return not default_model_built(wizard.options_page.bits())

    def cleanupPage(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


class ProgressPage(QWizardPage):
    """Page 4: the service's index run: stage, bar, rate and ETA, cancel, skipped files."""

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
        self.hint = QLabel("You can close this window: indexing goes on, and the main window shows its progress.")
        self.hint.setWordWrap(True)
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
        layout.addWidget(self.hint)
        layout.addWidget(self.skipped_title)
        # The list takes the room when shown; else the stretch keeps the rest at the top.
        layout.addWidget(self.skipped, 100)
        layout.addStretch(1)
        self.report = None
        self.error: str | None = None
        self._bound = False

    @property
    def service(self) -> IndexingService:
        return self.wizard().service

    def initializePage(self) -> None:
        wizard = self.wizard()
        service = self.service
        if not service.is_indexing() and not wizard.attached:
            wizard.save_settings()
            options = wizard.options_page
            service.index(wizard.folders_page.folders(), wizard.setup(),
                          workers=options.threads_spin.value(), providers=options.provider())
        self._bind()
        self.report, self.error = service.report, service.error
        self.stage.setText(service.last_stage or "Starting…")
        if service.last_progress is not None:
            self._on_progress(service.last_progress)
        if service.is_indexing():
            self._set_running(True)
        else:  # it ended before this page opened
            self._show_end()

    def _bind(self) -> None:
        if self._bound:
            return
        self._bound = True
        service = self.service
        service.stage.connect(self.stage.setText)
        service.progress.connect(self._on_progress)
        service.indexingStarted.connect(self._on_started)
        service.indexingFinished.connect(self._on_finished)

    def _on_started(self) -> None:
        self.report, self.error = None, None
        self._set_running(True)

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.hint.setVisible(running)
        wizard = self.wizard()
        if wizard is not None:
            # While it runs, "Hide" closes the wizard and indexing goes on; then "Finish" closes it.
            wizard.setButtonText(QWizard.WizardButton.CancelButton, "Hide")
            wizard.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, not running)
        self.completeChanged.emit()

    def is_running(self) -> bool:
        return self.service.is_indexing()

    def cancel(self) -> None:
        self.service.cancel()
        self.cancel_button.setEnabled(False)

    def _on_progress(self, p) -> None:
        if p.phase == "walking":
            self.stage.setText(f"Looking for photos… {p.found:,} found")
            self.bar.setRange(0, 0)
            return
        if self.service.is_indexing() and self.cancel_button.isEnabled():
            self.stage.setText("Indexing…" if p.phase == "indexing" else "Finishing…")
        self.bar.setRange(0, max(p.total, 1))
        self.bar.setValue(p.done if p.total else 1)
        parts = [f"{p.done:,} of {p.total:,}"]
        if p.rate > 0:
            parts.append(f"{p.rate:.1f} photos/s")
        if p.eta is not None:
            parts.append(time_left(p.eta))
        if p.skipped:
            parts.append(f"{p.skipped} skipped")
        self.rate_label.setText(" · ".join(parts))

    def _on_finished(self) -> None:
        self.report, self.error = self.service.report, self.service.error
        self._show_end()

    def _show_end(self) -> None:
        report, error = self.report, self.error
        if error is not None:
            self.stage.setText(f"Indexing stopped: {error}")
            self.bar.setRange(0, 1)
        elif report is not None:
            head = "Cancelled" if report.cancelled else "Done"
            self.stage.setText(
                f"{head}: {report.found:,} photos found, {report.added:,} indexed, {report.reused:,} reused, "
                f"{report.unchanged:,} unchanged, {report.skipped:,} skipped, {report.removed:,} removed "
                f"in {format_duration(report.elapsed)}."
                + ("\nRun the wizard again to go on where it stopped." if report.cancelled else ""))
            if not report.cancelled:
                self.bar.setRange(0, 1)
                self.bar.setValue(1)
            self.skipped.clear()
            for path, reason in report.skipped_files:
                self.skipped.addItem(f"{display_path(path)}: {reason}")
            self.skipped.setVisible(bool(report.skipped_files))
            self.skipped_title.setVisible(bool(report.skipped_files))
        self._set_running(False)

    def isComplete(self) -> bool:
        return not self.service.is_indexing() and (self.report is not None or self.error is not None)


class IndexWizard(QWizard):
    """Adds folders to the service's library and indexes them; shows the run in progress, if one is."""

    def __init__(self, service: IndexingService, settings: QSettings | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add photo folders")
        self.service = service
        self.settings = settings if settings is not None else service.settings
        self.library_path = service.library_path
        self.info: LibraryInfo | None = None
        self.folders_page = FoldersPage()
        self.options_page = OptionsPage(self.settings)
        self.summary_page = SummaryPage()
        self.progress_page = ProgressPage()
        self.folders_id = self.addPage(self.folders_page)
        self.options_id = self.addPage(self.options_page)
        self.summary_id = self.addPage(self.summary_page)
        self.progress_id = self.addPage(self.progress_page)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.resize(self._fitting_size())
        # Opened while a run goes on: show that run rather than start another.
        self.attached = service.is_indexing()
        if self.attached:
            self.setStartId(self.progress_id)
        self._info_thread: Task | None = run_in_thread(
            lambda: read_library_info(self.library_path), self._on_info,
            lambda message: self._on_info(LibraryInfo(error=message)), what="reading the library", parent=self)

    def _fitting_size(self) -> QSize:
        """WIZARD_SIZE, grown to the largest page (a large font), shrunk to the screen."""
        size = WIZARD_SIZE.expandedTo(self.sizeHint())
        screen = self.screen().availableGeometry().size() if self.screen() is not None else None
        return size.boundedTo(screen) if screen is not None and screen.isValid() else size

    def _on_info(self, info: LibraryInfo) -> None:
        self.info = info
        self.folders_page.show_info(info)
        self.options_page.show_info(info)

    def setup(self) -> IndexSetup:
        options = self.options_page
        return IndexSetup(exclusions=tuple(options.exclusion_patterns()), suffixes=options.suffixes(),
                          bits=options.bits(), forget_roots=tuple(self.folders_page.forget_roots()))

    def save_settings(self) -> None:
        self.settings.setValue(SETTINGS_THREADS, self.options_page.threads_spin.value())
        self.settings.setValue(SETTINGS_PROVIDER, self.options_page.provider())

    def reject(self) -> None:
        # Closing ("Hide") never cancels the run: the service owns it, the window shows it.
        self._stop_threads()
        super().reject()

    def done(self, result: int) -> None:
        self._stop_threads()
        super().done(result)

    def _stop_threads(self) -> None:
        self.summary_page.stop()
        if self._info_thread is not None:
            self._info_thread.stop()  # a read-only look at the library: quick

    def shutdown(self) -> None:
        """Stop the wizard's own workers (the app is quitting; the service stops the run)."""
        self._stop_threads()
