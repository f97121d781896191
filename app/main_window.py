"""The main window: drop or paste a photo, see its lookalikes in a thumbnail grid."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QMimeData, QModelIndex, QPoint, QSettings, QSize, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QListView, QMainWindow, QMenu,
                               QPushButton, QSpinBox, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from app.icons import icon
from app.results import ResultsModel
from app.workers import FunctionThread, ImageLoader, SearchThread
from engine.paths import display_path, file_url

SETTINGS_ORG = SETTINGS_APP = "Lookalike"
DEFAULT_K = 50
PREVIEW = QSize(280, 280)


def image_suffixes() -> frozenset[str]:
    from engine.imageio import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


def query_from_mime(mime: QMimeData) -> str | QImage | None:
    """What a drop or a paste means as a query: a local image file, or image pixels."""
    if mime.hasUrls():
        for url in mime.urls():
            if url.isLocalFile():
                path = path_of_url(url)
                if os.path.isfile(path) and Path(path).suffix.lower() in image_suffixes():
                    return path
    if mime.hasImage():
        data = mime.imageData()
        image = data.toImage() if isinstance(data, QPixmap) else data
        if isinstance(image, QImage) and not image.isNull():
            return image
    if mime.hasText():
        text = mime.text().strip().splitlines()[0].strip() if mime.text().strip() else ""
        path = path_of_url(QUrl(text)) if text.startswith("file://") else os.path.expanduser(text)
        if path and os.path.isfile(path) and Path(path).suffix.lower() in image_suffixes():
            return path
    return None


def path_of_url(url: QUrl) -> str:
    """The local path of a file URL, byte for byte (QUrl.toLocalFile would turn bytes of a name
    that are not UTF-8 into replacement characters: a different file)."""
    if os.name == "nt":
        return url.toLocalFile()
    from urllib.parse import unquote_to_bytes

    return os.fsdecode(unquote_to_bytes(url.path(QUrl.ComponentFormattingOption.FullyEncoded)))


def url_of_path(path: str) -> QUrl:
    """A file URL holding every byte of the path's name (QUrl.fromLocalFile cannot, for a
    name that is not UTF-8)."""
    return QUrl.fromEncoded(file_url(path).encode("ascii"))


def copy_path_to_clipboard(path: str) -> None:
    """The path as text; a name that is not UTF-8 as its own bytes, and as a file URL too."""
    clipboard = QGuiApplication.clipboard()
    clipboard.setText(display_path(path))
    if display_path(path) != path:
        # Fill in the clipboard's own QMimeData (made by setText) rather than hand it one made
        # here: PySide crashes at exit when the clipboard still holds a QMimeData created in
        # Python (its wrapper outlives the interpreter). Text is read when pasted, so the
        # bytes reach the pasting program; the URL where the platform asks for formats then.
        data = clipboard.mimeData()
        data.setData("text/plain", os.fsencode(path))
        data.setUrls([url_of_path(path)])


def _path_setting(path: str | None):
    """A path as QSettings keeps it: text, or the name's bytes when they are not UTF-8."""
    if not path:
        return ""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def _setting_path(value) -> str | None:
    if isinstance(value, (bytes, bytearray)) or type(value).__name__ == "QByteArray":
        return os.fsdecode(bytes(value)) or None
    return str(value or "") or None


class MainWindow(QMainWindow):
    """Query on the left, results on the right; engine work happens in worker threads."""

    def __init__(self, library_path: str | os.PathLike | None = None, *, settings: QSettings | None = None,
                 warm_up: bool = True, wizard_options: dict | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings(SETTINGS_ORG, SETTINGS_APP)
        if library_path is None:
            from engine.paths import default_library_path

            library_path = self.settings.value("library", str(default_library_path()))
        self.library_path = Path(library_path)
        self._wizard_options = dict(wizard_options or {})
        self._wizard = None
        self._query: str | QImage | None = None
        self._status: dict = {}
        self._closed = False

        self.setWindowTitle("Lookalike")
        self.setAcceptDrops(True)
        self._build_ui()
        self._build_menus()
        self._set_icons()
        self._build_model_menu()

        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 720)

        self.search_thread = SearchThread(self.library_path, parent=self)
        self.search_thread.worker.statusReady.connect(self._on_status)
        self.search_thread.worker.resultsReady.connect(self._on_results)
        self.search_thread.worker.failed.connect(self._on_failed)
        self._build_indexing()
        self._init_labeling()
        self.search_thread.refreshRequested.emit()

        self._warm_thread = None
        if warm_up:
            # Searches use numpy until the numba kernels are loaded; loading them takes
            # about a second (far longer the first time ever), so never on this thread.
            from engine.search import warm_up as engine_warm_up

            self._warm_thread = FunctionThread(engine_warm_up, parent=self)
            self._warm_thread.start()

    # ------------------------------------------------------------------ layout

    def _build_ui(self) -> None:
        self.query_label = QLabel("Drop a photo here\n\nor paste one (Ctrl+V), or File > Open…")
        self.query_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_label.setMinimumSize(PREVIEW)
        self.query_label.setFrameShape(QFrame.Shape.StyledPanel)
        self.query_label.setWordWrap(True)
        self.query_caption = QLabel("")
        self.query_caption.setWordWrap(True)
        self.query_caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 10_000)
        self.k_spin.setValue(int(self.settings.value("k", DEFAULT_K)))
        self.k_spin.setKeyboardTracking(False)  # search once the number is typed, not per digit
        self.k_spin.valueChanged.connect(self._on_k_changed)
        k_row = QHBoxLayout()
        k_row.addWidget(QLabel("Results:"))
        k_row.addWidget(self.k_spin)
        k_row.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.query_label, 1)
        left_layout.addWidget(self.query_caption)
        left_layout.addLayout(k_row)
        left_layout.addWidget(self._build_search_controls())

        self.model = ResultsModel(QSize(160, 160), parent=self)
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)  # stays responsive with 10,000 rows
        self.view.setBatchSize(500)
        self.view.setIconSize(QSize(160, 160))
        self.view.setGridSize(QSize(180, 200))
        self.view.setWordWrap(True)
        self.view.setModel(self.model)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._show_result_menu)
        self.view.activated.connect(lambda index: self.open_result(self.model.item(index.row()).path))

        self.empty_label = QLabel()
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_button = QPushButton("Add photo folders…")
        self.empty_button.clicked.connect(self.open_wizard)
        empty = QWidget()
        empty_layout = QVBoxLayout(empty)
        empty_layout.addStretch(1)
        empty_layout.addWidget(self.empty_label)
        empty_layout.addWidget(self.empty_button, 0, Qt.AlignmentFlag.AlignHCenter)
        empty_layout.addStretch(1)
        self.empty_page = empty

        self.stack = QStackedWidget()
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.empty_page)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

        self.library_status = QLabel("Opening the library…")
        self.statusBar().addPermanentWidget(self.library_status)

        self.preview_loader = ImageLoader(PREVIEW, threads=1, parent=self)
        self.preview_loader.loaded.connect(self._on_preview)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open, triggered=self.open_file)
        paste_action = QAction("&Paste image or path", self, shortcut=QKeySequence.StandardKey.Paste,
                               triggered=self.paste)
        wizard_action = QAction("&Add photo folders…", self, triggered=self.open_wizard)
        quit_action = QAction("&Quit", self, triggered=self.close)
        # Ctrl+Q where the platform binds no quit key (Windows, offscreen), and from any of the
        # app's windows (the retrain dialog, the labels list), not only this one.
        quit_action.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Quit) or [QKeySequence("Ctrl+Q")])
        quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        for action in (open_action, paste_action, wizard_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        self.open_action, self.paste_action, self.wizard_action = open_action, paste_action, wizard_action

    def _set_icons(self) -> None:
        """Icons from resources/icons (app.icons): they scale to any DPI and follow the theme."""
        self.setWindowIcon(icon("app"))
        self.open_action.setIcon(icon("open"))
        self.paste_action.setIcon(icon("paste"))
        self.wizard_action.setIcon(icon("add-folder"))
        self.empty_button.setIcon(icon("add-folder"))

    # ------------------------------------------------------------------ library status

    def _on_status(self, status: dict) -> None:
        self._status = status
        model = status.get("model")
        images = int(status.get("images") or 0)
        if not status.get("exists"):
            self.library_status.setText(f"No library yet at {status.get('library')}")
            self._show_empty("Welcome to Lookalike.\n\nAdd the folders that hold your photos: Lookalike "
                             "indexes them once, then finds the photos that look like any photo you drop here.")
        elif model is None or images == 0:
            self.library_status.setText(f"{images:,} photos · no model yet" if model is None
                                        else f"0 photos · model v{model['version']} {model['name']}")
            self._show_empty("This library has no photos yet.\n\nAdd the folders that hold your photos.")
        else:
            self.library_status.setText(f"{images:,} photos · model v{model['version']} {model['name']}")
            self.stack.setCurrentWidget(self.view)

    def _show_empty(self, text: str) -> None:
        self.empty_label.setText(text)
        self.stack.setCurrentWidget(self.empty_page)

    def is_empty_state(self) -> bool:
        return self.stack.currentWidget() is self.empty_page

    def refresh_status(self) -> None:
        self.search_thread.refreshRequested.emit()

    # ------------------------------------------------------------------ queries

    def search(self, query: str | QImage) -> None:
        """Search for a file path or image pixels; the previous query's results are dropped."""
        self._query = query
        if isinstance(query, QImage):
            self.preview_loader.reset()
            self._on_preview(self.preview_loader.generation, "query",
                             query.scaled(PREVIEW, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation))
            self.query_caption.setText("Pasted image")
        else:
            self.preview_loader.reset()
            self.query_label.setText("Loading…")
            self.preview_loader.request("query", query)
            self.query_caption.setText(display_path(query))
        self.statusBar().showMessage("Searching…")
        self.search_thread.search(query, self.k_spin.value(), self.search_options())

    def _on_preview(self, generation: int, key: object, image: QImage) -> None:
        if generation != self.preview_loader.generation:
            return
        if image.isNull():
            self.query_label.setText("(cannot show this image)")
        else:
            self.query_label.setPixmap(QPixmap.fromImage(image))

    def _on_results(self, request_id: int, query_path: str, items: list) -> None:
        if request_id != self.search_thread.current_request:
            return
        self.model.set_results(items)
        self.view.scrollToTop()
        self.stack.setCurrentWidget(self.view)
        self.statusBar().showMessage(f"{len(items)} lookalikes", 5000)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self.search_thread.current_request:
            self.statusBar().showMessage(message)

    def _on_k_changed(self, value: int) -> None:
        if self._query is not None:
            self.search(self._query)

    def accept_mime(self, mime: QMimeData) -> bool:
        query = query_from_mime(mime)
        if query is None:
            self.statusBar().showMessage("That is not an image file or image data", 5000)
            return False
        self.search(query)
        return True

    def open_file(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(image_suffixes()))
        path, _ = QFileDialog.getOpenFileName(self, "Find lookalikes of", "", f"Images ({patterns})")
        if path:
            self.search(path)

    def paste(self) -> None:
        self.accept_mime(QGuiApplication.clipboard().mimeData())

    # Drops land here from any child that does not take them itself.
    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage() or mime.hasText():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        if self.accept_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    # ------------------------------------------------------------------ result actions

    def _show_result_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        menu = self.result_menu(index)
        menu.exec(self.view.viewport().mapToGlobal(pos))

    def result_menu(self, index: QModelIndex) -> QMenu:
        path = self.model.item(index.row()).path  # the real name: PathRole is display text
        menu = QMenu(self)
        menu.addAction(icon("open"), "Open", lambda: self.open_result(path))
        menu.addAction(icon("reveal"), "Reveal in file manager", lambda: self.reveal_result(path))
        menu.addAction(icon("copy"), "Copy path", lambda: copy_path_to_clipboard(path))
        menu.addSeparator()
        menu.addAction(icon("search"), "Find lookalikes of this", lambda: self.search(path))
        self.labeling.add_feedback_actions(menu, path)
        return menu

    def open_result(self, path: str | None) -> None:
        if path:
            QDesktopServices.openUrl(url_of_path(path))

    def reveal_result(self, path: str | None) -> None:
        if path:
            QDesktopServices.openUrl(url_of_path(os.path.dirname(path)))

    # ------------------------------------------------------------------ wizard

    def open_wizard(self) -> None:
        from app.index_wizard import IndexWizard

        if self._wizard is not None:
            self._wizard.raise_()
            return
        self._wizard = IndexWizard(self.indexing, self.settings, parent=self)
        self._wizard.finished.connect(self._on_wizard_finished)
        self._wizard.open()

    @property
    def wizard(self):
        return self._wizard

    def _on_wizard_finished(self, result: int) -> None:
        wizard, self._wizard = self._wizard, None
        if wizard is not None:
            wizard.deleteLater()
        self.refresh_status()

    # ------------------------------------------------------------------ retrain

    def _build_model_menu(self) -> None:
        self._retrain_dialog = None
        model_menu = self.menuBar().addMenu("&Model")
        self.retrain_action = QAction("&Retrain…", self, shortcut=QKeySequence("Ctrl+R"),
                                      triggered=lambda: self.open_retrain_dialog())
        self.versions_action = QAction("Model &versions…", self,
                                       triggered=lambda: self.open_retrain_dialog(versions=True))
        model_menu.addAction(self.retrain_action)
        model_menu.addAction(self.versions_action)

    def open_retrain_dialog(self, versions: bool = False):
        """The retrain dialog for this library (one at a time); on its Versions tab if asked."""
        from app.retrain_dialog import RetrainDialog

        dialog = self._retrain_dialog
        if dialog is None and not versions and not self._training_ready():
            return None
        if dialog is None:
            dialog = self._retrain_dialog = RetrainDialog(self.library_path, parent=self)
            dialog.model_changed.connect(self._on_model_changed)
            dialog.finished.connect(self._on_retrain_finished)
            dialog.show()
        else:
            dialog.raise_()
            dialog.activateWindow()
        if versions:
            dialog.tabs.setCurrentIndex(1)
        return dialog

    def _training_ready(self) -> bool:
        """PyTorch is installed, or the person installed it now from the add-on dialog."""
        from app.extras import training_available

        if training_available():
            return True
        from app.training_addon import offer_training

        return offer_training(self)

    @property
    def retrain_dialog(self):
        return self._retrain_dialog

    def _on_retrain_finished(self, result: int) -> None:
        dialog, self._retrain_dialog = self._retrain_dialog, None
        if dialog is not None:
            dialog.deleteLater()

    def _on_model_changed(self) -> None:
        # The search worker reads the active model on every search, so only the status and
        # the results on show (ranked by the old model) need refreshing.
        self.refresh_status()
        if self._query is not None and not self._closed:
            self.search(self._query)

    # ------------------------------------------------------------------ labelling (app/labeling.py)

    def _init_labeling(self) -> None:
        """The Labels menu, the pair dock and the labels dialog; feedback on results."""
        from app.labeling import LabelingController

        self.labeling = LabelingController(self, self.library_path)
        self.search_thread.worker.resultsReady.connect(self._on_results_for_labeling)

    def _on_results_for_labeling(self, request_id: int, query_path: str, items: list) -> None:
        # The search behind the results on show: feedback labels against its query, and the
        # pair view suggests (query, result) pairs from recent searches.
        if request_id == self.search_thread.current_request:
            self.labeling.remember_search(self._query, items)

    # ------------------------------------------------------------------ indexing and watching

    def _build_indexing(self) -> None:
        """The library's one writer (index runs, watched changes), its progress in the status bar, its menu."""
        from PySide6.QtWidgets import QProgressBar, QToolButton

        from app.indexing import IndexingService

        self.indexing = IndexingService(self.library_path, self.settings, parent=self, **self._wizard_options)
        self.indexing_label = QLabel()
        self.indexing_bar = QProgressBar()
        self.indexing_bar.setTextVisible(False)
        self.indexing_bar.setMaximumWidth(140)
        self.indexing_bar.setMaximumHeight(14)
        self.indexing_cancel = QToolButton()
        self.indexing_cancel.setText("Cancel")
        self.indexing_cancel.setToolTip("Stop indexing after the photos in flight (it goes on from there next time)")
        self.indexing_cancel.clicked.connect(self.indexing.cancel)
        for position, widget in enumerate((self.indexing_label, self.indexing_bar, self.indexing_cancel)):
            self.statusBar().insertPermanentWidget(position, widget)
            widget.setVisible(False)

        service = self.indexing
        service.indexingStarted.connect(self._on_indexing_started)
        service.stage.connect(self._on_indexing_stage)
        service.progress.connect(self._on_indexing_progress)
        service.indexingFinished.connect(self._on_indexing_finished)
        service.updateStarted.connect(self._on_update_started)
        service.updateDone.connect(self._on_update_done)
        service.updateFailed.connect(self._on_update_failed)
        service.libraryChanged.connect(self.refresh_status)
        service.watchProblem.connect(lambda message: self.statusBar().showMessage(message, 10_000))
        self.search_thread.worker.statusReady.connect(self._on_library_status)

        self.watch_action = QAction("&Watch folders for changes", self, checkable=True)
        self.watch_action.setChecked(service.watch_enabled())
        self.watch_action.setToolTip("Keep the library up to date as photos are added, changed, moved or deleted")
        self.watch_action.toggled.connect(service.set_watch_enabled)
        for menu in self.wizard_action.associatedObjects():  # beside "Add photo folders…"
            if isinstance(menu, QMenu):
                actions = menu.actions()
                after = actions.index(self.wizard_action) + 1
                menu.insertAction(actions[after] if after < len(actions) else None, self.watch_action)
        self._build_view_menu()

    def _show_indexing(self, text: str, *, cancellable: bool) -> None:
        self.indexing_label.setText(text)
        self.indexing_label.setVisible(True)
        self.indexing_bar.setVisible(True)
        self.indexing_cancel.setVisible(cancellable)
        self.indexing_cancel.setEnabled(cancellable)

    def _hide_indexing(self) -> None:
        for widget in (self.indexing_label, self.indexing_bar, self.indexing_cancel):
            widget.setVisible(False)

    def _on_indexing_started(self) -> None:
        self.indexing_bar.setRange(0, 0)
        self._show_indexing("Indexing…", cancellable=True)

    def _on_indexing_stage(self, text: str) -> None:
        if self.indexing.is_indexing():
            self.indexing_label.setText(text.rstrip(" .…") + "…")

    def _on_indexing_progress(self, progress) -> None:
        from app.indexing import compact_progress

        if progress.phase == "indexing" and progress.total:
            self.indexing_bar.setRange(0, progress.total)
            self.indexing_bar.setValue(progress.done)
        else:
            self.indexing_bar.setRange(0, 0)
        self.indexing_label.setText(compact_progress(progress))

    def _on_indexing_finished(self) -> None:
        self._hide_indexing()
        report, error = self.indexing.report, self.indexing.error
        if error is not None:
            self.statusBar().showMessage(f"Indexing stopped: {error}", 15_000)
        elif report is not None:
            head = "Indexing cancelled" if report.cancelled else "Indexing done"
            self.statusBar().showMessage(f"{head}: {report.added:,} photos indexed, {report.skipped:,} skipped, "
                                         f"{report.removed:,} removed", 15_000)
        if self._query is not None and not self._closed:
            self.search(self._query)  # the results on show may have changed

    def _on_update_started(self, count: int) -> None:
        if not self.indexing.is_indexing():
            self.indexing_bar.setRange(0, 0)
            self._show_indexing(f"Updating {count:,} changed file(s)…", cancellable=False)

    def _on_update_done(self, report) -> None:
        if not self.indexing.is_indexing():
            self._hide_indexing()
        if report.added or report.reused or report.removed or report.skipped:
            self.statusBar().showMessage(f"Folders changed: {report.added + report.reused:,} photos added or "
                                         f"updated, {report.removed:,} removed", 8_000)

    def _on_update_failed(self, message: str) -> None:
        if not self.indexing.is_indexing():
            self._hide_indexing()
        self.statusBar().showMessage(f"Updating the library failed: {message}", 15_000)

    def _on_library_status(self, status: dict) -> None:
        """Roots, exclusions and types from the library: the watcher follows them, so does the folder filter."""
        roots = list(status.get("roots") or []) if status.get("exists") else []
        self._set_folder_roots(roots)
        if not self._closed:
            self.indexing.configure_watch(roots, status.get("exclusions") or (), status.get("suffixes"))

    # ------------------------------------------------------------------ search controls

    SEARCH_CANDIDATES = "search/candidates"  # "pool" or "radius"
    SEARCH_POOL = "search/pool"              # 0: automatic (engine.search.default_pool)
    SEARCH_RADIUS = "search/radius"
    SEARCH_RERANK = "search/rerank"
    SEARCH_FOLDER = "search/folder"          # "" or a folder: results only from under it
    _CHOOSE_FOLDER = "\0choose"

    def _build_search_controls(self) -> QWidget:
        """Candidates (pool size or Hamming radius), re-rank on or off, and a folder filter."""
        from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout

        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        self.candidates_combo = QComboBox()
        self.candidates_combo.addItem("Nearest codes", "pool")
        self.candidates_combo.addItem("Within radius", "radius")
        self.candidates_combo.setToolTip("Which photos the fast code comparison passes on to be re-ranked: a "
                                         "number of the nearest, or all within a Hamming distance")
        self.pool_spin = QSpinBox()
        self.pool_spin.setRange(0, 100_000)
        self.pool_spin.setSingleStep(500)
        self.pool_spin.setSpecialValueText("Auto")
        self.pool_spin.setKeyboardTracking(False)
        self.pool_spin.setToolTip("Candidates to re-rank; Auto grows with the library (at least 2,000)")
        self.radius_spin = QSpinBox()
        self.radius_spin.setRange(0, 256)
        self.radius_spin.setSuffix(" bits")
        self.radius_spin.setKeyboardTracking(False)
        self.radius_spin.setToolTip("Every photo whose code differs in at most this many bits")
        self.rerank_check = QCheckBox("Re-rank by features")
        self.rerank_check.setToolTip("Order the candidates by their full features (better), not by code distance alone")
        self.folder_combo = QComboBox()
        self.folder_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder_combo.setMinimumContentsLength(12)
        self.folder_combo.setToolTip("Only show photos from under this folder")
        candidates_row = QHBoxLayout()
        candidates_row.addWidget(self.candidates_combo, 1)
        candidates_row.addWidget(self.pool_spin)
        candidates_row.addWidget(self.radius_spin)
        grid.addWidget(QLabel("Candidates:"), 0, 0)
        grid.addLayout(candidates_row, 0, 1)
        grid.addWidget(self.rerank_check, 1, 1)
        grid.addWidget(QLabel("Folder:"), 2, 0)
        grid.addWidget(self.folder_combo, 2, 1)
        grid.setColumnStretch(1, 1)

        settings = self.settings
        mode = str(settings.value(self.SEARCH_CANDIDATES, "pool"))
        self.candidates_combo.setCurrentIndex(max(0, self.candidates_combo.findData(mode)))
        self.pool_spin.setValue(int(settings.value(self.SEARCH_POOL, 0, type=int)))
        self.radius_spin.setValue(int(settings.value(self.SEARCH_RADIUS, 12, type=int)))
        self.rerank_check.setChecked(bool(settings.value(self.SEARCH_RERANK, True, type=bool)))
        self._folder_roots: list[str] = []
        self._folder_choices: list[str] = []
        self._set_folder_roots([], selected=_setting_path(settings.value(self.SEARCH_FOLDER, "")))
        self._update_candidate_widgets()

        self.candidates_combo.currentIndexChanged.connect(self._on_search_controls_changed)
        self.pool_spin.valueChanged.connect(self._on_search_controls_changed)
        self.radius_spin.valueChanged.connect(self._on_search_controls_changed)
        self.rerank_check.toggled.connect(self._on_search_controls_changed)
        self.folder_combo.activated.connect(self._on_folder_activated)
        return box

    def search_options(self) -> dict:
        """The search controls as SearchParams fields plus ``folder`` (what SearchWorker.search takes)."""
        options: dict = {"rerank": self.rerank_check.isChecked()}
        if self.candidates_combo.currentData() == "radius":
            options["radius"] = self.radius_spin.value()
        elif self.pool_spin.value() > 0:
            options["pool"] = self.pool_spin.value()
        folder = self.search_folder()
        if folder:
            options["folder"] = folder
        return options

    def search_folder(self) -> str | None:
        # The folders themselves are kept here: item data is Qt text, which cannot hold every name.
        index = self.folder_combo.currentIndex() - 1
        return self._folder_choices[index] if 0 <= index < len(self._folder_choices) else None

    def set_search_folder(self, folder: str | os.PathLike | None) -> None:
        """Restrict results to photos under ``folder`` (None: every folder); re-runs the query."""
        self._set_folder_roots(self._folder_roots, selected=None if folder is None else os.path.abspath(folder))
        self._on_search_controls_changed()

    def _set_folder_roots(self, roots: list[str], selected: str | None | bool = False) -> None:
        """Rebuild the folder list: every folder, the library's roots, the chosen folder, "Choose folder…"."""
        if selected is False:
            selected = self.search_folder()
        self._folder_roots = list(roots)
        choices = list(roots)
        if selected and selected not in choices:
            choices.append(selected)
        self._folder_choices = choices
        combo = self.folder_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All folders", "")
        for folder in choices:
            combo.addItem(display_path(folder), display_path(folder))
        combo.addItem("Choose folder…", self._CHOOSE_FOLDER)
        combo.setCurrentIndex(choices.index(selected) + 1 if selected else 0)
        combo.blockSignals(False)

    def _on_folder_activated(self, index: int) -> None:
        if self.folder_combo.itemData(index) == self._CHOOSE_FOLDER:
            previous = _setting_path(self.settings.value(self.SEARCH_FOLDER, ""))
            folder = QFileDialog.getExistingDirectory(self, "Show only photos under", previous or "")
            self.set_search_folder(folder or previous)
            return
        self._on_search_controls_changed()

    def _update_candidate_widgets(self) -> None:
        radius = self.candidates_combo.currentData() == "radius"
        self.pool_spin.setVisible(not radius)
        self.radius_spin.setVisible(radius)
        self.pool_spin.setEnabled(self.rerank_check.isChecked())  # without re-ranking the pool is just k

    def _on_search_controls_changed(self, *args) -> None:
        self._update_candidate_widgets()
        settings = self.settings
        settings.setValue(self.SEARCH_CANDIDATES, self.candidates_combo.currentData())
        settings.setValue(self.SEARCH_POOL, self.pool_spin.value())
        settings.setValue(self.SEARCH_RADIUS, self.radius_spin.value())
        settings.setValue(self.SEARCH_RERANK, self.rerank_check.isChecked())
        settings.setValue(self.SEARCH_FOLDER, _path_setting(self.search_folder()))
        if self._query is not None and not self._closed:
            self.search(self._query)

    # ------------------------------------------------------------------ view

    VIEW_THUMBNAILS = "view/thumbnail_size"
    THUMBNAIL_SIZES = {"small": 96, "medium": 160, "large": 240}

    def _build_view_menu(self) -> None:
        from PySide6.QtGui import QActionGroup

        view_menu = QMenu("&View", self)
        size_menu = view_menu.addMenu("&Thumbnail size")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.thumbnail_actions: dict[str, QAction] = {}
        for key, label in (("small", "&Small"), ("medium", "&Medium"), ("large", "&Large")):
            action = QAction(label, self, checkable=True)
            action.setData(key)
            group.addAction(action)
            size_menu.addAction(action)
            self.thumbnail_actions[key] = action
        group.triggered.connect(lambda action: self.set_thumbnail_size(action.data()))
        menus = self.menuBar().actions()
        if len(menus) > 1:
            self.menuBar().insertMenu(menus[1], view_menu)  # right after File
        else:
            self.menuBar().addMenu(view_menu)
        self.view_menu = view_menu
        self.set_thumbnail_size(str(self.settings.value(self.VIEW_THUMBNAILS, "medium")))

    def thumbnail_size(self) -> str:
        return next((k for k, a in self.thumbnail_actions.items() if a.isChecked()), "medium")

    def set_thumbnail_size(self, key: str) -> None:
        """Small, medium or large thumbnails in the results grid (reloaded at that size)."""
        if key not in self.THUMBNAIL_SIZES:
            key = "medium"
        side = self.THUMBNAIL_SIZES[key]
        self.thumbnail_actions[key].setChecked(True)
        self.settings.setValue(self.VIEW_THUMBNAILS, key)
        if self.view.iconSize() == QSize(side, side):
            return
        self.view.setIconSize(QSize(side, side))
        self.view.setGridSize(QSize(side + 20, side + 40))
        self.model.loader.size = QSize(side, side)
        self.model.set_results([self.model.item(row) for row in range(self.model.rowCount())])

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("k", self.k_spin.value())
        from engine.paths import default_library_path

        # Remember only a chosen location, so $LOOKALIKE_LIBRARY keeps working otherwise.
        if self.library_path != default_library_path() or self.settings.contains("library"):
            self.settings.setValue("library", str(self.library_path))
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every worker and wait for it: no thread outlives the window."""
        if self._closed:
            return
        self._closed = True
        if self._wizard is not None:
            self._wizard.shutdown()
        self.indexing.shutdown()
        if self._retrain_dialog is not None:
            self._retrain_dialog.shutdown()
        self.search_thread.shutdown()
        self.labeling.shutdown()
        self.model.shutdown()
        self.preview_loader.shutdown()
        if self._warm_thread is not None:
            self._warm_thread.wait()
