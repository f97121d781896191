"""The results grid's model: search hits with thumbnails loaded lazily off the GUI thread."""

from __future__ import annotations

import os

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap

from app.workers import ImageLoader, ResultItem
from engine.paths import display_path

PathRole = Qt.ItemDataRole.UserRole + 1  # the path as text to show; the file itself: ResultsModel.item(row).path
ScoreRole = Qt.ItemDataRole.UserRole + 2
HammingRole = Qt.ItemDataRole.UserRole + 3


class ResultsModel(QAbstractListModel):
    """Rows are ResultItems; a row's thumbnail is requested the first time a view asks for it."""

    def __init__(self, icon_size: QSize = QSize(160, 160), parent: QObject | None = None):
        super().__init__(parent)
        self._items: list[ResultItem] = []
        self._icons: dict[int, QIcon] = {}
        self._requested: set[int] = set()
        self.loader = ImageLoader(icon_size, threads=2, parent=self)
        self.loader.loaded.connect(self._on_loaded)
        pixmap = QPixmap(icon_size)
        pixmap.fill(QColor(128, 128, 128, 60))
        self.placeholder = QIcon(pixmap)

    # ------------------------------------------------------------------ data

    def set_results(self, items: list[ResultItem]) -> None:
        self.beginResetModel()
        self.loader.reset()
        self._items = list(items)
        self._icons.clear()
        self._requested.clear()
        self.endResetModel()

    def item(self, row: int) -> ResultItem:
        return self._items[row]

    def thumbnail_loaded(self, row: int) -> bool:
        return row in self._icons

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        row = index.row()
        item = self._items[row]
        # Qt text cannot hold a name that is not UTF-8 (it would drop those bytes silently):
        # show it with replacement characters, and keep the real path on the Python side.
        if role == Qt.ItemDataRole.DisplayRole:
            return display_path(os.path.basename(item.path))
        if role == Qt.ItemDataRole.DecorationRole:
            icon = self._icons.get(row)
            if icon is None:
                if row not in self._requested:
                    self._requested.add(row)
                    # The cached thumbnail first; the photo itself when the cache lacks it.
                    self.loader.request(row, item.thumb, item.path)
                return self.placeholder
            return icon
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"{display_path(os.path.basename(item.path))}\nscore {item.score:.3f} · Hamming distance "
                    f"{item.hamming}\n{display_path(item.path)}")
        if role == PathRole:
            return display_path(item.path)
        if role == ScoreRole:
            return item.score
        if role == HammingRole:
            return item.hamming
        return None

    def _on_loaded(self, generation: int, row: object, image: QImage) -> None:
        if generation != self.loader.generation or not isinstance(row, int) or row >= len(self._items):
            return
        if image.isNull():
            return  # unreadable: the placeholder stays
        self._icons[row] = QIcon(QPixmap.fromImage(image))
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def shutdown(self) -> None:
        self.loader.shutdown()
