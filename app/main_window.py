"""The main window: drop or paste photos, see their lookalikes in a thumbnail grid, mark results to refine them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes

from PySide6.QtCore import QEvent, QMimeData, QModelIndex, QPoint, QSettings, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QFrame, QHBoxLayout,
                               QLabel, QListView, QMainWindow, QMenu, QProgressBar, QPushButton, QSpinBox, QSplitter,
                               QStackedWidget, QStyle, QToolBar, QToolButton, QVBoxLayout, QWidget)
from PySide6.QtWidgets import QApplication

from app.background import run_in_thread
from app.compare import MAX_PHOTOS, ComparedPhoto, CompareWindow
from app.fitted_label import FittedLabel
from app.duplicates_view import DuplicatesDialog
from app.file_actions import ResultActions
from app.dialog_folders import remember_folder, start_folder
from app.history import History, RecentQueries
from app.icons import icon
from app.indexing import IndexingService, compact_progress
from app.labeling import LabelingController
from app.open_files import open_file, reveal_file
from app.photo_details import PhotoDetails
from app.preview import PreviewWindow
from app.refine import DISSIMILAR, SIMILAR, WindowQuery, refinement_text
from app.results import MARK_NAMES, MarkDelegate, ResultsModel
from app.search_panel import SearchPanel
from app.workers import ImageLoader, SearchThread
from engine.paths import default_library_path, display_path, file_url
from engine.photo_info import SORT_ORDERS, sort_order
from engine.search import warm_up as engine_warm_up

SETTINGS_ORG = SETTINGS_APP = "Lookalike"
DEFAULT_K = 50
PREVIEW = QSize(280, 280)
QUERY_GONE = "\n(no longer there: moved or in the trash)"


def image_suffixes() -> frozenset[str]:
    from engine.imageio import IMAGE_SUFFIXES  # Pillow and numpy: when a drop asks, not at start

    return IMAGE_SUFFIXES


def _is_image_file(path: str) -> bool:
    return bool(path) and os.path.isfile(path) and Path(path).suffix.lower() in image_suffixes()


def queries_from_mime(mime: QMimeData) -> list[str | QImage]:
    """What a drop or a paste means as a query: its local image files (several are searched
    together), else image pixels, else image paths given as text (one a line); [] if none."""
    paths: list[str] = []
    if mime.hasUrls():
        for url in mime.urls():
            path = path_of_url(url) if url.isLocalFile() else ""
            if _is_image_file(path) and path not in paths:
                paths.append(path)
    if paths:
        return paths
    if mime.hasImage():
        data = mime.imageData()
        image = data.toImage() if isinstance(data, QPixmap) else data
        if isinstance(image, QImage) and not image.isNull():
            return [image]
    if mime.hasText():
        for line in mime.text().strip().splitlines():
            text = line.strip()
            path = path_of_url(QUrl(text)) if text.startswith("file://") else os.path.expanduser(text)
            if _is_image_file(path) and path not in paths:
                paths.append(path)
    return paths


def query_from_mime(mime: QMimeData) -> str | QImage | None:
    """The first query a drop or a paste holds (see :func:`queries_from_mime`)."""
    queries = queries_from_mime(mime)
    return queries[0] if queries else None


def path_of_url(url: QUrl) -> str:
    """The local path of a file URL, byte for byte (QUrl.toLocalFile would turn bytes of a name
    that are not UTF-8 into replacement characters: a different file)."""
    if os.name == "nt":
        return url.toLocalFile()
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


def model_plain_name(model: dict) -> str:
    """A status's model as a person names it: "Default model", "Trained on 36 pairs, 2 Dec"."""
    from engine.models import plain_name  # numpy: only once a status has come

    return plain_name({"head": model.get("head") or {}}, model.get("created_at"))


def model_technical_name(model: dict) -> str:
    from engine.models import technical_name

    return technical_name(model["version"], {"name": model.get("name"), "bits": model.get("bits"),
                                             "head": model.get("head") or {},
                                             **({"rerank": model["rerank"]} if model.get("rerank") else {})})


class MainWindow(QMainWindow):
    """Query on the left, results on the right; engine work happens in worker threads."""

    def __init__(self, library_path: str | os.PathLike | None = None, *, settings: QSettings | None = None,
                 warm_up: bool = True, wizard_options: dict | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings(SETTINGS_ORG, SETTINGS_APP)
        if library_path is None:
            library_path = self.settings.value("library", str(default_library_path()))
        self.library_path = Path(library_path)
        self._wizard_options = dict(wizard_options or {})
        self._wizard = None
        # The photos searched for: one (a path or pasted pixels), or a tuple of several
        self._query: str | QImage | tuple | None = None
        self._marks: dict[str, int] = {}  # results marked similar/dissimilar, in marking order
        self._refining = False  # the search in flight refines the results on show
        self._query_images: dict[int, QImage] = {}  # several query photos' previews, by position
        self.shown_request = 0  # the search request whose results are on show
        # Label writes and removals of marks, sent to the label worker once the refined results
        # are on show: the refinement gets the CPU first (2 cores are shared with everything)
        self._pending_labels: list = []
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
        self.search_thread.statusReady.connect(self._on_status)
        self.search_thread.resultsReady.connect(self._on_results)
        self.search_thread.failed.connect(self._on_failed)
        self._build_indexing()
        self._init_labeling()
        self._init_preview_compare()
        self._init_file_actions()
        self._init_navigation()
        self.search_thread.refresh()

        self._warm_thread = None
        if warm_up:
            # Searches use numpy until the numba kernels are loaded; loading them takes
            # about a second (far longer the first time ever), so never on this thread.
            self._warm_thread = run_in_thread(engine_warm_up, what="loading the search kernels", parent=self)

    # ------------------------------------------------------------------ layout

    LEFT_WIDTH = 330  # the left panel's widest: the query's picture and the controls

    def _build_ui(self) -> None:
        # the query's picture shrinks to fit (app.fitted_label): in a small window the grid gets the room
        self.query_label = FittedLabel("Drop a photo here\n\nor paste one (Ctrl+V), or File > Open…")
        self.query_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
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
        self.model.set_floor(self.search_panel.floor())
        self.model.technical = self.search_panel.is_advanced_open()
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
        self.view.setItemDelegate(MarkDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._build_mark_actions()
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

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.setSpacing(2)
        right_layout.addWidget(self._build_refine_bar())
        right_layout.addWidget(self._build_sort_bar())
        right_layout.addWidget(self.stack, 1)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        # Small windows: the left panel yields room to the grid. It takes a quarter of the width
        # (down to what its controls need, up to LEFT_WIDTH), so 800 px still show three columns.
        left.setMaximumWidth(self.LEFT_WIDTH)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setCollapsible(1, False)
        splitter.setSizes([self.LEFT_WIDTH, 3 * self.LEFT_WIDTH])
        self.splitter = splitter
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
                                        else f"0 photos · {model_plain_name(model)}")
            self._show_empty("This library has no photos yet.\n\nAdd the folders that hold your photos.")
        else:
            self.library_status.setText(f"{images:,} photos · {model_plain_name(model)}")
            self.stack.setCurrentWidget(self.view)
        # the version's technical name for those who ask (plain_name says it for people)
        self.library_status.setToolTip(f"model {model_technical_name(model)}" if model else "")
        self.search_panel.set_library(images, model.get("bits") if model else None)

    def _show_empty(self, text: str) -> None:
        self.empty_label.setText(text)
        self.stack.setCurrentWidget(self.empty_page)

    def is_empty_state(self) -> bool:
        return self.stack.currentWidget() is self.empty_page

    def refresh_status(self) -> None:
        self.search_thread.refresh()

    # ------------------------------------------------------------------ queries

    def search(self, query: str | QImage | list | tuple) -> None:
        """Search for a file path, image pixels, or several photos together (a list: photos like
        all of them, as `lookalike search --together`); the previous query's results and marks
        are dropped (their labels stay)."""
        if isinstance(query, (list, tuple)):
            if not query:
                return
            query = tuple(query) if len(query) > 1 else query[0]
        self._send_labels()  # the previous query's marks are stored all the same
        self._remember_search(query)
        self._query = query
        self._marks = {}
        self.model.set_marks({})
        self._show_query(query)
        self._run_search(refining=False)

    def _run_search(self, *, refining: bool) -> None:
        """Search for the query on show with its marks; ``refining``: the results on show stay
        in view (selection, place) until the new ones replace them."""
        self._refining = refining
        self._update_refine_bar()
        self.statusBar().showMessage("Refining…" if refining else "Searching…")
        self.search_thread.search(WindowQuery.of(self._query, self._marks), self.k_spin.value(),
                                  self.search_options())

    def results_are_current(self) -> bool:
        """The results on show answer the last search asked for (no search in flight)."""
        return self.shown_request == self.search_thread.current_request

    def _rerun(self) -> None:
        """The same query and marks again (settings, library or model changed)."""
        if self._query is not None and not self._closed:
            self._run_search(refining=bool(self._marks))

    def _show_query(self, query) -> None:
        self.preview_loader.reset()
        self._query_images = {}
        if isinstance(query, tuple):
            self.query_label.setText("Loading…")
            for position, photo in enumerate(query[:self.QUERY_STRIP]):
                if isinstance(photo, QImage):
                    self._on_preview(self.preview_loader.generation, ("query", position), photo)
                else:
                    self.preview_loader.request(("query", position), photo)
            names = ", ".join("pasted image" if isinstance(p, QImage) else display_path(os.path.basename(p))
                              for p in query)
            self.query_caption.setText(f"{len(query)} photos, searched together: {names}")
        elif isinstance(query, QImage):
            self._on_preview(self.preview_loader.generation, "query",
                             query.scaled(PREVIEW, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation))
            self.query_caption.setText("Pasted image")
        else:
            self.query_label.setText("Loading…")
            self.preview_loader.request("query", query)
            self.query_caption.setText(display_path(query))

    QUERY_STRIP = 9  # query photos shown in the query pane (in a grid); the caption counts them all

    def _on_preview(self, generation: int, key: object, image: QImage) -> None:
        if generation != self.preview_loader.generation:
            return
        if isinstance(key, tuple):  # one of several query photos
            if not image.isNull():
                self._query_images[key[1]] = image
            self._show_query_strip()
        elif image.isNull():
            self.query_label.setText("(cannot show this image)")
        else:
            self.query_label.setPixmap(QPixmap.fromImage(image))

    def _show_query_strip(self) -> None:
        """Several query photos as a grid of small pictures in the query pane."""
        if not isinstance(self._query, tuple) or not self._query_images:
            return
        shown = min(len(self._query), self.QUERY_STRIP)
        columns = 1
        while columns * columns < shown:
            columns += 1
        rows = -(-shown // columns)
        cell = PREVIEW.width() // columns
        strip = QPixmap(cell * columns, cell * rows)
        strip.fill(Qt.GlobalColor.transparent)
        painter = QPainter(strip)
        for position, image in self._query_images.items():
            small = image.scaled(QSize(cell - 4, cell - 4), Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
            x = (position % columns) * cell + (cell - small.width()) // 2
            y = (position // columns) * cell + (cell - small.height()) // 2
            painter.drawImage(x, y, small)
        painter.end()
        self.query_label.setPixmap(strip)

    def _on_results(self, request_id: int, query_path: str, items: list) -> None:
        if request_id != self.search_thread.current_request:
            return
        selected = self.selected_paths() if self._refining else []
        current = self.view.currentIndex().row()
        self.model.set_results(items)
        self.search_panel.set_counts(self.model.lookalike_count(), len(items))
        self.shown_request = request_id
        self._send_labels()
        self.stack.setCurrentWidget(self.view)
        if self._refining and items:
            # A refinement keeps the person where they were: the same photos selected when
            # they are still there, else the tile now at the place they were marking.
            rows = [r for r in (self.model.row_of(p) for p in selected) if r >= 0]
            if not rows and current >= 0:
                rows = [min(current, len(items) - 1)]
            for row in rows:
                self.view.selectionModel().select(self.model.index(row),
                                                  self.view.selectionModel().SelectionFlag.Select)
            if rows:
                self.view.selectionModel().setCurrentIndex(self.model.index(rows[0]),
                                                           self.view.selectionModel().SelectionFlag.NoUpdate)
                self.view.scrollTo(self.model.index(rows[0]))
        else:
            self.view.scrollToTop()
        refined = refinement_text(self._marks)
        apart = len(items) - self.model.lookalike_count()
        self.statusBar().showMessage(f"{len(items) - apart} lookalikes" + (f", {apart} less alike" if apart else "")
                                     + (f" ({refined[0].lower()}{refined[1:]})" if refined else ""), 5000)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self.search_thread.current_request:
            self.statusBar().showMessage(message)
            self._send_labels()

    def _on_k_changed(self, value: int) -> None:
        self._rerun()

    def accept_mime(self, mime: QMimeData) -> bool:
        queries = queries_from_mime(mime)
        if not queries:
            self.statusBar().showMessage("That is not an image file or image data", 5000)
            return False
        self.search(queries)
        return True

    def open_file(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(image_suffixes()))
        paths, _ = QFileDialog.getOpenFileNames(self, "Find lookalikes of (choose several to search for all "
                                                "of them together)", start_folder(self.settings),
                                                f"Images ({patterns})")
        if paths:
            remember_folder(self.settings, paths[0])
            self.search(paths)

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
        menu.deleteLater()

    def result_menu(self, index: QModelIndex) -> QMenu:
        path = self.model.item(index.row()).path  # the real name: PathRole is display text
        menu = QMenu(self)
        menu.addAction(icon("open"), "Open", lambda: self.open_result(path))
        menu.addAction(icon("reveal"), "Reveal in file manager", lambda: self.reveal_result(path))
        menu.addAction(icon("copy"), "Copy path", lambda: copy_path_to_clipboard(path))
        self._add_preview_actions(menu, index)
        menu.addSeparator()
        menu.addAction(icon("search"), "Find lookalikes of this", lambda: self.search(path))
        menu.addSeparator()
        allowed, why = self.labeling.feedback_note(self._query, path)
        marked = self._marks.get(path)
        for text, name, label, action in (("Mark similar to the query", "similar", SIMILAR, self.mark_similar_action),
                                          ("Mark dissimilar to the query", "dissimilar", DISSIMILAR,
                                           self.mark_dissimilar_action)):
            act = menu.addAction(icon(name), text, lambda label=label: self.mark_results([path], label))
            act.setShortcut(action.shortcut())  # shown as a hint; the view's action holds the key
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # never competing with it
            act.setCheckable(True)
            act.setChecked(marked == label)
            act.setEnabled(allowed)
            if why:
                act.setToolTip(why)
        if marked:
            act = menu.addAction("Unmark", lambda: self.unmark_results([path]))
            act.setShortcut(self.unmark_action.shortcut())
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        menu.setToolTipsVisible(bool(why))
        self.file_actions.add_to_menu(menu, path)  # trash, move, copy: the selection or this tile
        return menu

    def open_result(self, path: str | None) -> None:
        if path:
            open_file(path, self, copy_path_to_clipboard)  # says so when nothing opens it

    def reveal_result(self, path: str | None) -> None:
        if path:
            reveal_file(path, self, copy_path_to_clipboard)

    # ------------------------------------------------------------------ marking (refines at once)

    def _build_mark_actions(self) -> None:
        """S / D mark the selected tiles similar / dissimilar, U (or Shift+S, Shift+D) unmarks
        them; only while the results grid has the keyboard."""
        def view_action(text: str, keys: list[str], slot) -> QAction:
            act = QAction(text, self.view)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            act.triggered.connect(slot)
            self.view.addAction(act)
            return act

        self.mark_similar_action = view_action("Mark similar to the query", ["S"],
                                               lambda: self.mark_results(self.selected_paths(), SIMILAR))
        self.mark_dissimilar_action = view_action("Mark dissimilar to the query", ["D"],
                                                  lambda: self.mark_results(self.selected_paths(), DISSIMILAR))
        self.unmark_action = view_action("Unmark", ["U", "Shift+S", "Shift+D"],
                                         lambda: self.unmark_results(self.selected_paths()))

    def _build_refine_bar(self) -> QWidget:
        """"Refined by 2 similar, 1 dissimilar" above the results, with Unmark ▾ and Clear."""
        bar = QFrame()
        bar.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(bar)
        layout.setContentsMargins(8, 2, 4, 2)
        self.refine_label = QLabel()
        self.refine_label.setToolTip("Results marked similar pull the query toward them; those marked "
                                     "dissimilar push it away and leave the results. The marks are also "
                                     "kept as labels for training.")
        self.unmark_button = QToolButton()
        self.unmark_button.setText("Unmark")
        self.unmark_button.setToolTip("Take back one mark (and the label it stored)")
        self.unmark_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.unmark_menu = QMenu(self.unmark_button)
        self.unmark_menu.aboutToShow.connect(self._fill_unmark_menu)
        self.unmark_button.setMenu(self.unmark_menu)
        self.clear_refinement_button = QPushButton("Clear")
        self.clear_refinement_button.setToolTip("Back to the plain query (the labels the marks stored stay)")
        self.clear_refinement_button.clicked.connect(self.clear_refinement)
        layout.addWidget(self.refine_label, 1)
        layout.addWidget(self.unmark_button)
        layout.addWidget(self.clear_refinement_button)
        bar.setVisible(False)
        self.refine_bar = bar
        return bar

    def _fill_unmark_menu(self) -> None:
        self.unmark_menu.clear()
        for path, mark in self._marks.items():
            self.unmark_menu.addAction(f"{display_path(os.path.basename(path))} ({MARK_NAMES[mark]})",
                                       lambda path=path: self.unmark_results([path]))

    def _update_refine_bar(self) -> None:
        text = refinement_text(self._marks)
        self.refine_label.setText(text)
        self.refine_bar.setVisible(bool(text))

    def marks(self) -> dict[str, int]:
        """The results marked in this query: path -> SIMILAR / DISSIMILAR, in marking order."""
        return dict(self._marks)

    def selected_paths(self) -> list[str]:
        rows = sorted(index.row() for index in self.view.selectionModel().selectedIndexes())
        if not rows and self.view.currentIndex().isValid():
            rows = [self.view.currentIndex().row()]
        return [self.model.item(row).path for row in rows if row < self.model.rowCount()]

    def mark_results(self, paths: list[str], label: int) -> None:
        """Mark results similar or dissimilar to the query: they show the mark, the results are
        searched again at once with them as examples (no training), and each mark is stored as
        a label for training. Dissimilar ones leave the results."""
        new = []
        for path in paths:
            allowed, why = self.labeling.feedback_note(self._query, path)
            if not allowed:
                self.statusBar().showMessage(why, 5000)
            elif self._marks.get(path) != label:
                self._marks.pop(path, None)  # marked again: its new mark only, last in order
                self._marks[path] = label
                new.append(path)
        if not new:
            return
        self.model.set_marks(self._marks)
        query = self._query
        self._pending_labels += [lambda path=path: self.labeling.mark(query, path, label) for path in new]
        self._run_search(refining=True)

    def unmark_results(self, paths: list[str]) -> None:
        """Take marks back: the tile loses its mark, the label the mark stored is removed, and
        the results are refined by the marks left."""
        gone = [path for path in paths if self._marks.pop(path, None) is not None]
        if not gone:
            return
        self.model.set_marks(self._marks)
        query = self._query
        self._pending_labels += [lambda path=path: self.labeling.unmark(query, path) for path in gone]
        self._run_search(refining=True)

    def _send_labels(self) -> None:
        """Hand the marks' label writes to the label worker, in the order they were made."""
        pending, self._pending_labels = self._pending_labels, []
        for send in pending:
            send()

    def clear_refinement(self) -> None:
        """Back to the plain query's results; the labels the marks stored stay."""
        if not self._marks:
            return
        self._marks = {}
        self.model.set_marks({})
        self._run_search(refining=False)

    # ------------------------------------------------------------------ wizard

    def open_wizard(self) -> None:
        from app.index_wizard import IndexWizard  # numpy (engine.index): when the wizard opens

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
        from app.retrain import RetrainDialog  # QtCharts and the engine: when the dialog opens

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
        self._rerun()

    # ------------------------------------------------------------------ labelling (app/labeling/)

    def _init_labeling(self) -> None:
        """The Labels menu, the pair dock and the labels dialog; feedback on results."""
        self.labeling = LabelingController(self, self.library_path)
        self.search_thread.resultsReady.connect(self._on_results_for_labeling)

    def _on_results_for_labeling(self, request_id: int, query_path: str, items: list) -> None:
        # The search behind the results on show: feedback labels against its query, and the
        # pair view suggests (query, result) pairs from recent searches.
        if request_id == self.search_thread.current_request:
            self.labeling.remember_search(self._query, items)

    # ------------------------------------------------------------------ acting on files (app/file_actions.py)

    def _init_file_actions(self) -> None:
        """The Edit menu: trash, move, copy, undo, select all but the best; Delete, Ctrl+A, Ctrl+Z;
        Find Duplicates (app/duplicates_view.py)."""
        self._duplicates = None
        self.file_actions = ResultActions(self, self.library_path, settings=self.settings,
                                          open_duplicates=self.open_duplicates)

    def files_changed(self, gone: list[str], back: list[str]) -> None:
        """Photos left their place (trashed, moved away): they leave the results and the marks at
        once (their labels stay, keyed by content); photos came back (undo): the query runs again."""
        gone_set = set(gone)
        self.model.remove_paths(gone)
        if gone_set & set(self._marks):
            self._marks = {path: mark for path, mark in self._marks.items() if path not in gone_set}
            self.model.set_marks(self._marks)
            self._update_refine_bar()
        self.refresh_status()
        query = self._query if isinstance(self._query, tuple) else (self._query,)
        mine = {photo for photo in query if isinstance(photo, str)}
        if mine & gone_set:
            # The results stay (they are still what the photo looks like); a search needs the file.
            self.query_caption.setText(self.query_caption.text() + QUERY_GONE)
            self.statusBar().showMessage("The query photo was moved or put in the trash: Edit > Undo brings it "
                                         "back", 8000)
        if mine & set(back):
            self._show_query(self._query)  # where it was again
        if back:
            self._rerun()

    def open_duplicates(self) -> DuplicatesDialog:
        """The Duplicates view (one at a time): groups of copies across the library."""
        if self._duplicates is None:
            self._duplicates = DuplicatesDialog(self.library_path, self.file_actions.runner, self.settings,
                                                parent=self)
            self._duplicates.finished.connect(self._on_duplicates_finished)
            self._duplicates.show()
        else:
            self._duplicates.raise_()
            self._duplicates.activateWindow()
        return self._duplicates

    @property
    def duplicates_dialog(self):
        return self._duplicates

    def _on_duplicates_finished(self, result: int) -> None:
        dialog, self._duplicates = self._duplicates, None
        if dialog is not None:
            dialog.shutdown()
            dialog.deleteLater()

    # ------------------------------------------------------------------ indexing and watching

    def _build_indexing(self) -> None:
        """The library's one writer (index runs, watched changes), its progress in the status bar, its menu."""
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
        self.search_thread.statusReady.connect(self._on_library_status)

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
        self._rerun()  # the results on show may have changed

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

    # ------------------------------------------------------------------ search controls (app/search_panel.py)

    _CHOOSE_FOLDER = SearchPanel.CHOOSE_FOLDER

    def _build_search_controls(self) -> QWidget:
        panel = self.search_panel = SearchPanel(self.settings, self)
        # the panel's controls by the names the window has always had for them
        self.candidates_combo, self.pool_spin = panel.candidates_combo, panel.pool_spin
        self.radius_spin, self.rerank_check, self.folder_combo = panel.radius_spin, panel.rerank_check, panel.folder_combo
        panel.changed.connect(self._rerun)
        panel.floorChanged.connect(self._on_floor_changed)
        panel.advancedToggled.connect(self._on_advanced_toggled)
        return panel

    def _on_floor_changed(self, floor: int) -> None:
        """The Strict <-> Loose slider moved: the line between lookalikes and the rest moves (no new search)."""
        self.model.set_floor(floor)
        self.search_panel.set_counts(self.model.lookalike_count(), self.model.rowCount())

    def _on_advanced_toggled(self, shown: bool) -> None:
        self.model.technical = shown  # tooltips name the score and the code distance

    def search_options(self) -> dict:
        """The search controls as SearchParams fields plus ``folder`` (what SearchWorker.search takes)."""
        return self.search_panel.search_options()

    def search_folder(self) -> str | None:
        return self.search_panel.search_folder()

    def set_search_folder(self, folder: str | os.PathLike | None) -> None:
        """Restrict results to photos under ``folder`` (None: every folder); re-runs the query."""
        self.search_panel.set_search_folder(folder)

    def _set_folder_roots(self, roots: list[str], selected: str | None | bool = False) -> None:
        self.search_panel.set_folder_roots(roots, selected)

    # ------------------------------------------------------------------ view

    VIEW_THUMBNAILS = "view/thumbnail_size"
    THUMBNAIL_SIZES = {"small": 96, "medium": 160, "large": 240}

    def _build_view_menu(self) -> None:
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
        self._apply_tile_grid()
        self.model.loader.size = QSize(side, side)
        self.model.set_results([self.model.item(row) for row in range(self.model.rowCount())])

    # ------------------------------------------------------------------ preview, compare, sort

    VIEW_DOUBLE_CLICK = "view/double_click"  # "preview" (the default) or "open": what double-clicking a result does

    def _init_preview_compare(self) -> None:
        """Space previews the current result, C compares; double-click previews or opens (a
        setting); the results' facts are read off the GUI thread for tooltips and sorting."""
        self._preview: PreviewWindow | None = None
        self._compare_windows: list[CompareWindow] = []
        self._similarity_order: list[str] = []  # the results on show, as the search ranked them
        self.details = PhotoDetails(self)
        self.model.set_infos(self.details.infos)
        self.details.complete.connect(self._apply_sort)
        self.indexing.libraryChanged.connect(self.details.forget)  # sizes and dates may have changed
        self.search_thread.resultsReady.connect(self._on_results_for_details)

        def view_action(text: str, key: str, slot) -> QAction:
            act = QAction(text, self.view)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            act.triggered.connect(slot)
            self.view.addAction(act)
            return act

        self.preview_action = view_action("Preview", "Space", lambda: self.preview_result())
        self.compare_action = view_action("Compare", "C", lambda: self.compare_results())
        self.double_click_action = QAction("&Double-click shows the preview", self, checkable=True)
        self.double_click_action.setToolTip("Off: double-click opens the photo in its application (Enter always does)")
        self.double_click_action.setChecked(str(self.settings.value(self.VIEW_DOUBLE_CLICK, "preview")) == "preview")
        self.double_click_action.toggled.connect(
            lambda on: self.settings.setValue(self.VIEW_DOUBLE_CLICK, "preview" if on else "open"))
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.double_click_action)
        self.view_menu.addMenu(self.sort_menu)  # double-clicks reach eventFilter (the application's filter)

    def _build_sort_bar(self) -> QWidget:
        """"Sort: Similarity ▾" above the results: reorders the results on show, never searches again."""
        self._sort_by = "similarity"
        self.sort_menu = QMenu("&Sort results by", self)
        group = QActionGroup(self)
        group.setExclusive(True)
        self.sort_actions: dict[str, QAction] = {}
        for key, label in SORT_ORDERS.items():
            action = QAction(label, self, checkable=True)
            action.setChecked(key == "similarity")
            action.triggered.connect(lambda checked=False, key=key: self.sort_results(key))
            group.addAction(action)
            self.sort_menu.addAction(action)
            self.sort_actions[key] = action
        self.sort_button = QToolButton()
        self.sort_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.sort_button.setMenu(self.sort_menu)
        self.sort_button.setToolTip("Order the results on show (the search is not run again)")
        self.sort_button.setAutoRaise(True)
        bar = QWidget()
        layout = QHBoxLayout(bar)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addStretch(1)
        layout.addWidget(self.sort_button)
        self._update_sort_button()
        return bar

    def _update_sort_button(self) -> None:
        self.sort_button.setText(f"Sort: {SORT_ORDERS[self._sort_by].split(' (')[0]}")

    def sort_order_name(self) -> str:
        return self._sort_by

    def sort_results(self, by: str) -> None:
        """Order the results on show by ``by`` (an engine.photo_info.SORT_ORDERS key): at once
        when their facts are known, else once they are read; a new search keeps the order."""
        if by not in SORT_ORDERS:
            raise ValueError(f"unknown order {by!r}")
        self._sort_by = by
        self.sort_actions[by].setChecked(True)
        self._update_sort_button()
        if by == "similarity" or self.details.want(self._similarity_order):
            self._apply_sort()
        else:
            self.statusBar().showMessage("Reading the photos' details to sort them…", 5000)

    def _on_results_for_details(self, request_id: int, query_path: str, items: list) -> None:
        if request_id != self.search_thread.current_request:
            return
        self._similarity_order = [item.path for item in items]
        # Facts for tooltips and sorting, read in the background; a sort applies when they are in.
        if self.details.want(self._similarity_order):
            self._apply_sort()

    def _apply_sort(self) -> None:
        paths = self._similarity_order
        if len(paths) != self.model.rowCount() or (self._sort_by != "similarity" and self.details.missing(paths)):
            return  # the results changed meanwhile, or their facts are not all in yet
        row_of = {self.model.item(row).path: row for row in range(self.model.rowCount())}
        if set(row_of) != set(paths):
            return
        self.model.reorder([row_of[paths[position]] for position in sort_order(paths, self.details.infos,
                                                                               self._sort_by)])

    def _double_click_previews(self, watched, event) -> bool:
        """A double-click on a result previews it unless the setting says "open" (then the
        view's own activation opens it, as Enter does); True when it did."""
        if (watched is self.view.viewport() and self.double_click_action.isChecked()
                and event.button() == Qt.MouseButton.LeftButton):
            index = self.view.indexAt(event.position().toPoint())
            if index.isValid():
                self.preview_result(index.row())
                return True
        return False

    def _add_preview_actions(self, menu: QMenu, index: QModelIndex) -> None:
        row = index.row()
        act = menu.addAction("Preview", lambda: self.preview_result(row))
        act.setShortcut(self.preview_action.shortcut())
        act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # a hint: the view's action holds the key
        rows = self._selected_rows()
        if row in rows and 2 <= len(rows) <= MAX_PHOTOS:
            act = menu.addAction(f"Compare the {len(rows)} selected", lambda: self.compare_results(rows))
        else:
            act = menu.addAction("Compare with the query", lambda: self.compare_results([row]))
            act.setEnabled(self.query_photo_path() is not None)
        act.setShortcut(self.compare_action.shortcut())
        act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)

    def _selected_rows(self) -> list[int]:
        return sorted(index.row() for index in self.view.selectionModel().selectedIndexes())

    def query_photo_path(self) -> str | None:
        """The query's file (the first of several), or None for pasted pixels."""
        query = self._query
        photos = query if isinstance(query, tuple) else (query,)
        return next((photo for photo in photos if isinstance(photo, str)), None)

    @property
    def preview(self) -> PreviewWindow | None:
        return self._preview

    def preview_result(self, row: int | None = None) -> None:
        """The full-size preview of result ``row`` (else the current one, else the first)."""
        if self.model.rowCount() == 0:
            return
        if row is None:
            current = self.view.currentIndex()
            row = current.row() if current.isValid() else 0
        if self._preview is None:
            self._preview = PreviewWindow(self.model.rowCount,
                                          lambda r: (self.model.item(r).path, self.model.item(r).score, self.model.item(r).similarity), parent=self)
            self._preview.rowChanged.connect(self._on_preview_row)
            self._preview.compareRequested.connect(lambda r: self.compare_results([r]))
        self._preview.open_at(row)

    def _on_preview_row(self, row: int) -> None:
        index = self.model.index(row)
        self.view.selectionModel().setCurrentIndex(index, self.view.selectionModel().SelectionFlag.ClearAndSelect)
        self.view.scrollTo(index)

    def compare_results(self, rows: list[int] | None = None) -> CompareWindow | None:
        """Compare result rows side by side: one row with the query, or 2 to 4 rows; by default
        the selected ones (the current one when none is)."""
        if rows is None:
            rows = self._selected_rows() or ([self.view.currentIndex().row()] if self.view.currentIndex().isValid()
                                             else [])
        rows = [row for row in rows if 0 <= row < self.model.rowCount()]
        if not rows:
            return None
        if len(rows) > MAX_PHOTOS:
            self.statusBar().showMessage(f"Compare shows 2 to {MAX_PHOTOS} photos: {len(rows)} are selected", 5000)
            return None
        photos = [ComparedPhoto(self.model.item(row).path, self.model.item(row).score, f"Result {row + 1}",
                                similarity=self.model.item(row).similarity)
                  for row in rows]
        if len(photos) == 1:
            query = self.query_photo_path()
            if query is None:
                self.statusBar().showMessage("The query is a pasted image: select 2 to 4 results to compare them",
                                             5000)
                return None
            photos.insert(0, ComparedPhoto(query, None, "Query", is_query=True))
        window = CompareWindow(photos, parent=self)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.destroyed.connect(lambda *_: self._compare_windows.remove(window)
                                 if window in self._compare_windows else None)
        self._compare_windows.append(window)
        window.start()
        return window

    @property
    def compare_windows(self) -> list[CompareWindow]:
        return list(self._compare_windows)

    def _shutdown_preview_compare(self) -> None:
        self.details.shutdown()
        if self._preview is not None:
            self._preview.shutdown()
        for window in list(self._compare_windows):
            window.shutdown()

    # ------------------------------------------------------------------ navigation (app/history.py)

    RECENT_QUERIES = "history/recent"  # JSON: the recent query photos, newest first
    TILE_GAP = QSize(8, 6)  # between tiles, across and down
    K_DELAY_MS = 400  # a typed result count searches once the typing pauses

    def _init_navigation(self) -> None:
        """Back/Forward through searches (keys, mouse buttons, toolbar, Go menu), File > Recent
        queries, Ctrl+plus/minus for thumbnail size, the result count applied while typed, and
        the results area's own messages (the start hint, why a search failed)."""
        self.history = History()
        self.recent = RecentQueries.loads(self.settings.value(self.RECENT_QUERIES, ""))
        self._restored = False  # the last query was searched again (or could not be) at start
        self._results_message = ""  # why the results area shows no results, while it does

        style = self.style()
        self.back_action = QAction(style.standardIcon(QStyle.StandardPixmap.SP_ArrowBack), "&Back", self,
                                   triggered=self.go_back)
        self.back_action.setShortcuts(self._keys(QKeySequence.StandardKey.Back, "Alt+Left"))
        self.back_action.setToolTip("The search before this one (Alt+Left, or the mouse's back button)")
        self.forward_action = QAction(style.standardIcon(QStyle.StandardPixmap.SP_ArrowForward), "&Forward", self,
                                      triggered=self.go_forward)
        self.forward_action.setShortcuts(self._keys(QKeySequence.StandardKey.Forward, "Alt+Right"))
        self.forward_action.setToolTip("The search after this one (Alt+Right, or the mouse's forward button)")
        go_menu = QMenu("&Go", self)
        go_menu.addAction(self.back_action)
        go_menu.addAction(self.forward_action)
        self.menuBar().insertMenu(self.view_menu.menuAction(), go_menu)
        self.menuBar().insertMenu(go_menu.menuAction(), self.view_menu)  # File, View, Go, ...
        self.go_menu = go_menu
        toolbar = QToolBar("Navigation", self)
        toolbar.setObjectName("navigation-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        toolbar.addAction(self.back_action)
        toolbar.addAction(self.forward_action)
        toolbar.addSeparator()
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.paste_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.navigation_toolbar = toolbar

        self.recent_menu = QMenu("&Recent queries", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu = self.open_action.associatedObjects()
        for menu in file_menu:
            if isinstance(menu, QMenu):
                actions = menu.actions()
                after = actions.index(self.paste_action) + 1
                menu.insertMenu(actions[after] if after < len(actions) else None, self.recent_menu)

        self.larger_action = QAction("&Larger thumbnails", self, triggered=lambda: self.step_thumbnail_size(1))
        self.larger_action.setShortcuts(self._keys(QKeySequence.StandardKey.ZoomIn, "Ctrl++", "Ctrl+="))
        self.smaller_action = QAction("&Smaller thumbnails", self, triggered=lambda: self.step_thumbnail_size(-1))
        self.smaller_action.setShortcuts(self._keys(QKeySequence.StandardKey.ZoomOut, "Ctrl+-"))
        self.view_menu.addAction(self.larger_action)
        self.view_menu.addAction(self.smaller_action)

        # The result count searches as it is typed (after a pause), not only on Enter.
        self.k_spin.setKeyboardTracking(True)
        self.k_spin.valueChanged.disconnect(self._on_k_changed)
        self._k_key_at = float("-inf")  # when a key last reached the result count box
        self._k_timer = QTimer(self, singleShot=True, interval=self.K_DELAY_MS)
        self._k_timer.timeout.connect(self._apply_k)
        self.k_spin.valueChanged.connect(self._on_k_edited)

        self.message_label = QLabel()
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.setMargin(24)
        self.stack.addWidget(self.message_label)

        self.search_thread.statusReady.connect(self._on_status_for_navigation)  # after _on_status
        self.search_thread.failed.connect(self._on_search_failed)
        self.search_thread.resultsReady.connect(self._on_results_for_navigation)
        self.model.modelReset.connect(self._apply_tile_grid)  # a second line of text (words) widens tiles
        self._apply_tile_grid()
        # Ctrl+V from any widget of the window, mouse back/forward over any of them: the
        # application's filter sees the events before the widget that has them.
        QApplication.instance().installEventFilter(self)
        self._update_navigation()

    @staticmethod
    def _keys(standard: QKeySequence.StandardKey, *extra: str) -> list[QKeySequence]:
        keys = list(QKeySequence.keyBindings(standard))
        for text in extra:
            if QKeySequence(text) not in keys:
                keys.append(QKeySequence(text))
        return keys

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        if kind == QEvent.Type.ShortcutOverride:
            # A spin box (the result count has the keyboard at start) or the grid would take
            # Ctrl+V for itself and do nothing with a photo: the window's Paste gets it when
            # the clipboard holds a query, wherever the keyboard is in this window.
            if (event.matches(QKeySequence.StandardKey.Paste) and self._is_mine(watched)
                    and queries_from_mime(QGuiApplication.clipboard().mimeData())):
                event.ignore()
                return True
        elif kind == QEvent.Type.KeyPress:
            if watched is self.k_spin or watched is self.k_spin.lineEdit():
                self._k_key_at = time.monotonic()  # the value that changes now was typed
        elif kind == QEvent.Type.MouseButtonDblClick:
            return self._double_click_previews(watched, event)
        elif kind == QEvent.Type.MouseButtonPress:
            button = event.button()
            if button in (Qt.MouseButton.BackButton, Qt.MouseButton.ForwardButton) and self._is_mine(watched):
                (self.go_back if button == Qt.MouseButton.BackButton else self.go_forward)()
                return True
        return False

    def _is_mine(self, watched) -> bool:
        return (not self._closed and isinstance(watched, QWidget) and watched.window() is self)

    def go_back(self) -> None:
        """The search before this one, with the marks it had."""
        self.history.keep_marks(self._marks)
        visit = self.history.back()
        if visit is not None:
            self._go_to(visit)

    def go_forward(self) -> None:
        self.history.keep_marks(self._marks)
        visit = self.history.forward()
        if visit is not None:
            self._go_to(visit)

    def _go_to(self, visit) -> None:
        """Show a search from the history again: its query, its marks, its results."""
        self._send_labels()
        self._query = visit.query
        self._marks = dict(visit.marks)
        self.model.set_marks(self._marks)
        self._show_query(visit.query)
        self._run_search(refining=False)
        self._update_navigation()

    def _remember_search(self, query) -> None:
        """A new search (not Back or Forward): into the history and the recent queries."""
        self.history.keep_marks(self._marks)
        self.history.visit(query)
        self.recent.add(query)
        self.settings.setValue(self.RECENT_QUERIES, self.recent.dumps())
        self._restored = True  # a search asked for before the library answered wins over the last one
        self._update_navigation()

    def _update_navigation(self) -> None:
        self.back_action.setEnabled(self.history.can_go_back())
        self.forward_action.setEnabled(self.history.can_go_forward())

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.recent.entries(exists=os.path.isfile)
        for entry in entries:
            name = display_path(os.path.basename(entry[0]))
            text = name if len(entry) == 1 else f"{name} and {len(entry) - 1} more, together"
            action = self.recent_menu.addAction(text.replace("&", "&&"),
                                                lambda entry=entry: self.search(list(entry)))
            action.setToolTip("\n".join(display_path(p) for p in entry))
        if not entries:
            self.recent_menu.addAction("No recent queries").setEnabled(False)
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear recent queries", self._clear_recent)
        clear.setEnabled(bool(entries))
        self.recent_menu.setToolTipsVisible(True)

    def _clear_recent(self) -> None:
        self.recent.clear()
        self.settings.setValue(self.RECENT_QUERIES, self.recent.dumps())

    def step_thumbnail_size(self, step: int) -> None:
        """One size larger (step 1) or smaller (-1) than now, within small..large."""
        keys = list(self.THUMBNAIL_SIZES)
        at = keys.index(self.thumbnail_size()) + step
        if 0 <= at < len(keys):
            self.set_thumbnail_size(keys[at])

    def _apply_tile_grid(self) -> None:
        """The grid's cells: the tile the delegate draws (photo box and text) and a small gap."""
        delegate = self.view.itemDelegate()
        if not hasattr(delegate, "tile_size"):
            return
        lines = len(delegate.text_lines(self.model.index(0))) if self.model.rowCount() else 1
        tile = delegate.tile_size(self.view.iconSize().width(), lines)
        grid = tile + self.TILE_GAP
        if self.view.gridSize() != grid:
            self.view.setGridSize(grid)

    def _on_k_edited(self, value: int) -> None:
        # Typed (or stepped by a key) by the person: once they pause, so "200" is not a search
        # for 2, then 20. Set by the program (or a click on the arrows): now.
        if time.monotonic() - self._k_key_at < 0.1:
            self._k_timer.start()
        else:
            self._apply_k()

    def _apply_k(self) -> None:
        self.settings.setValue("k", self.k_spin.value())
        self._on_k_changed(self.k_spin.value())

    def show_results_message(self, text: str) -> None:
        """Say something in the results area instead of results (a failed search, the start hint)."""
        self._results_message = text
        self.message_label.setText(text)
        self.stack.setCurrentWidget(self.message_label)

    def results_message(self) -> str:
        """What the results area says instead of results, or "" when it shows results."""
        return self.message_label.text() if self.stack.currentWidget() is self.message_label else ""

    START_HINT = ("Drop a photo here, paste one (Ctrl+V) or choose File > Open…\n\n"
                  "Lookalike shows the photos in your folders that look like it, the closest first.")

    def _on_status_for_navigation(self, status: dict) -> None:
        """The library can search: at start, the last query again while its photos exist, else
        the start hint; never a blank grid with nothing asked."""
        usable = status.get("exists") and status.get("model") is not None and int(status.get("images") or 0)
        if not usable or self._closed:
            return
        if self._query is None and not self._restored:
            self._restored = True
            last = self.recent.entries(exists=os.path.isfile)
            if last:
                self.search(list(last[0]))
                return
        if self._query is None:
            self.show_results_message(self.START_HINT)
        elif self._results_message and self.results_are_current():
            self.show_results_message(self._results_message)  # _on_status showed the (empty) grid

    def _on_search_failed(self, request_id: int, message: str) -> None:
        """The search asked for last failed: its old results go, and the results area says why."""
        if request_id != self.search_thread.current_request or self._closed:
            return
        self.shown_request = request_id
        self.model.set_results([])
        self.recent.discard(self._query)  # not offered again under Recent, nor reopened at the next start
        self.settings.setValue(self.RECENT_QUERIES, self.recent.dumps())
        what = "these photos" if isinstance(self._query, tuple) else "this photo"
        self.show_results_message(f"No results: Lookalike could not search for {what}.\n\n{message}")

    def _on_results_for_navigation(self, request_id: int, query_path: str, items: list) -> None:
        if request_id == self.search_thread.current_request:
            self._results_message = ""
            if not items:
                self.show_results_message("No photos in the library look like this one"
                                          + (" in the folder chosen." if self.search_folder() else "."))
                self._results_message = ""

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("k", self.k_spin.value())
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
        if self._duplicates is not None:
            self._duplicates.shutdown()
        self.file_actions.shutdown()
        if self._retrain_dialog is not None:
            self._retrain_dialog.shutdown()
        self.search_thread.shutdown()
        self._send_labels()  # marks whose results never came are still labels
        self.labeling.shutdown()
        self.model.shutdown()
        self._shutdown_preview_compare()
        self.preview_loader.shutdown()
        if self._warm_thread is not None:
            self._warm_thread.stop()  # waits: the kernels' loading cannot be cut short
