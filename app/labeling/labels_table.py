"""The table model of every label: the two photos (thumbnail and path), the label, its source and date."""

from __future__ import annotations

import datetime as _dt

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap

from app.icons import icon
from app.labeling.items import SIMILAR, LabelEntry
from app.workers import ImageLoader
from engine.paths import display_path

TABLE_THUMB = QSize(48, 48)
_ROOT = QModelIndex()  # the invisible root of a table model


def _local_time(stamp: str) -> str:
    """A stored UTC time as the person's local time, to the minute (sorts like the original)."""
    try:
        return _dt.datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


class LabelsModel(QAbstractTableModel):
    """Every label: the two photos (thumbnail and path), similar or dissimilar, source, date."""

    COLUMNS = ("Photo A", "Photo B", "Label", "Source", "Labelled")
    KeyRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._entries: list[LabelEntry] = []
        self._icons: dict[tuple[int, int], QIcon] = {}
        self._requested: set[tuple[int, int]] = set()
        self.loader = ImageLoader(TABLE_THUMB, threads=1, parent=self)
        self.loader.loaded.connect(self._on_loaded)

    def set_entries(self, entries: list[LabelEntry]) -> None:
        self.beginResetModel()
        self.loader.reset()
        self._entries = list(entries)
        self._icons.clear()
        self._requested.clear()
        self.endResetModel()

    def entry(self, row: int) -> LabelEntry:
        return self._entries[row]

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry, column = self._entries[index.row()], index.column()
        row = entry.row
        if role == self.KeyRole:
            return row.key
        if column in (0, 1):
            current, labelled = (row.current_a, row.path_a) if column == 0 else (row.current_b, row.path_b)
            if role == Qt.ItemDataRole.DisplayRole:
                return display_path(current) if current else f"{display_path(labelled or '?')} (not in the library now)"
            if role == Qt.ItemDataRole.ToolTipRole:
                text = display_path(current) if current else "not in the library now"
                return (text if not labelled or labelled == current
                        else f"{text}\nlabelled as {display_path(labelled)}")
            if role == Qt.ItemDataRole.DecorationRole:
                return self._icon(index.row(), column, entry.thumb_a if column == 0 else entry.thumb_b)
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 2:
                return "Similar" if row.label == SIMILAR else "Dissimilar"
            if column == 3:
                return row.source
            if column == 4:
                return _local_time(row.created_at)
        if role == Qt.ItemDataRole.DecorationRole and column == 2:
            return icon("similar" if row.label == SIMILAR else "dissimilar")
        return None

    def _icon(self, row: int, column: int, path: str | None):
        key = (row, column)
        found = self._icons.get(key)
        if found is None and path and key not in self._requested:
            self._requested.add(key)
            self.loader.request(key, path)
        return found

    def _on_loaded(self, generation: int, key: object, image: QImage) -> None:
        if generation != self.loader.generation or image.isNull():
            return
        self._icons[key] = QIcon(QPixmap.fromImage(image))
        index = self.index(*key)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def shutdown(self) -> None:
        self.loader.shutdown()
