"""The main window: drop or paste a photo, see its lookalikes in a thumbnail grid."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QMimeData, QModelIndex, QPoint, QSettings, QSize, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QListView, QMainWindow, QMenu,
                               QPushButton, QSpinBox, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from app.results import PathRole, ResultsModel
from app.workers import FunctionThread, ImageLoader, SearchThread

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
                path = url.toLocalFile()
                if os.path.isfile(path) and Path(path).suffix.lower() in image_suffixes():
                    return path
    if mime.hasImage():
        data = mime.imageData()
        image = data.toImage() if isinstance(data, QPixmap) else data
        if isinstance(image, QImage) and not image.isNull():
            return image
    if mime.hasText():
        text = mime.text().strip().splitlines()[0].strip() if mime.text().strip() else ""
        path = QUrl(text).toLocalFile() if text.startswith("file://") else os.path.expanduser(text)
        if path and os.path.isfile(path) and Path(path).suffix.lower() in image_suffixes():
            return path
    return None


class MainWindow(QMainWindow):
    """Query on the left, results on the right; engine work happens in worker threads."""

    def __init__(self, library_path: str | os.PathLike | None = None, *, settings: QSettings | None = None,
                 warm_up: bool = True, wizard_options: dict | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings(SETTINGS_ORG, SETTINGS_APP)
        if library_path is None:
            from engine.library import default_library_path

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

        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 720)

        self.search_thread = SearchThread(self.library_path, parent=self)
        self.search_thread.worker.statusReady.connect(self._on_status)
        self.search_thread.worker.resultsReady.connect(self._on_results)
        self.search_thread.worker.failed.connect(self._on_failed)
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
        self.view.activated.connect(lambda index: self.open_result(index.data(PathRole)))

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
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close)
        for action in (open_action, paste_action, wizard_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        self.open_action, self.paste_action, self.wizard_action = open_action, paste_action, wizard_action

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
            self.query_caption.setText(query)
        self.statusBar().showMessage("Searching…")
        self.search_thread.search(query, self.k_spin.value())

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
        path = index.data(PathRole)
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_result(path))
        menu.addAction("Reveal in file manager", lambda: self.reveal_result(path))
        menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(path))
        menu.addSeparator()
        menu.addAction("Find lookalikes of this", lambda: self.search(path))
        return menu

    def open_result(self, path: str | None) -> None:
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def reveal_result(self, path: str | None) -> None:
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))

    # ------------------------------------------------------------------ wizard

    def open_wizard(self) -> None:
        from app.index_wizard import IndexWizard

        if self._wizard is not None:
            self._wizard.raise_()
            return
        self._wizard = IndexWizard(self.library_path, parent=self, **self._wizard_options)
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

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("k", self.k_spin.value())
        from engine.library import default_library_path

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
        self.search_thread.shutdown()
        self.model.shutdown()
        self.preview_loader.shutdown()
        if self._warm_thread is not None:
            self._warm_thread.wait()
