"""The labels dialog: every label in a table; delete some, export all as CSV."""

from __future__ import annotations

import os

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox,
                               QPushButton, QTableView, QVBoxLayout, QWidget)

from app.dialog_folders import remember_folder, start_folder
from app.icons import icon
from app.labeling.items import SIMILAR
from app.labeling.labels_table import TABLE_THUMB, LabelsModel
from app.labeling.service import LabelService


class LabelsDialog(QDialog):
    """All labels in a table: delete some (Delete), export all as CSV; follows every change."""

    def __init__(self, service: LabelService, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Labels")
        self.service = service
        self._request = 0
        self._stale = False
        self.model = LabelsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)  # newest first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(TABLE_THUMB)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setDefaultSectionSize(TABLE_THUMB.height() + 6)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column in (2, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

        self.delete_action = QAction(icon("dissimilar"), "Delete", self)
        self.delete_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")])
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self.delete_selected)
        self.table.addAction(self.delete_action)
        self.delete_button = QPushButton("Delete  (Del)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self.choose_export)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(900, 520)

        service.listed.connect(self._on_listed)
        service.deleted.connect(self._on_deleted)
        service.exported.connect(self._on_exported)
        service.failed.connect(self._on_failed)
        service.labelsChanged.connect(self._on_labels_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()
        self.refresh()

    def refresh(self) -> None:
        self._request = self.service.next_request()
        self.service.list_labels(self._request)

    def _on_labels_changed(self, count: int) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self._stale = True  # listed again when shown

    def showEvent(self, event) -> None:
        if self._stale:
            self._stale = False
            self.refresh()
        super().showEvent(event)

    def _on_listed(self, request_id: int, entries: list) -> None:
        if request_id != self._request:
            return
        self._request = 0
        self.model.set_entries(entries)
        if not entries:
            self.status.setText("No labels yet: label pairs (Ctrl+L), or mark results similar or dissimilar "
                                "to the query from their menu.")
        else:
            similar = sum(1 for e in entries if e.row.label == SIMILAR)
            self.status.setText(f"{len(entries):,} labels: {similar:,} similar, {len(entries) - similar:,} dissimilar")
        self._update_buttons()

    @property
    def loaded(self) -> bool:
        """No listing is on the way: the table shows the library's labels."""
        return self._request == 0

    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(self.table.selectionModel().hasSelection())
        self.export_button.setEnabled(self.model.rowCount() > 0)

    def selected_keys(self) -> list[tuple[str, str]]:
        rows = {self.proxy.mapToSource(index).row() for index in self.table.selectionModel().selectedRows()}
        return [self.model.entry(row).row.key for row in sorted(rows)]

    def delete_selected(self) -> None:
        keys = self.selected_keys()
        if not keys or not self.confirm_delete(len(keys)):
            return
        self.service.delete(keys)

    def confirm_delete(self, count: int) -> bool:
        """Labels are the person's work: ask before deleting any."""
        what = "this label" if count == 1 else f"these {count} labels"
        answer = QMessageBox.question(self, "Delete labels", f"Delete {what}? This cannot be undone.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_deleted(self, removed: int) -> None:
        if removed:
            self.status.setText(f"Deleted {removed} label{'s' if removed != 1 else ''}")

    def choose_export(self) -> None:
        settings = getattr(self.parent(), "settings", None)  # the main window's: where its dialogs were last
        folder = start_folder(settings) if settings is not None else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", os.path.join(folder, "labels.csv"),
                                              "CSV files (*.csv)")
        if path:
            if settings is not None:
                remember_folder(settings, path)
            self.export_to(path)

    def export_to(self, path: str | os.PathLike) -> None:
        self.service.export(str(path))

    def _on_exported(self, path: str, count: int) -> None:
        self.status.setText(f"Exported {count:,} labels to {path}")

    def _on_failed(self, what: str, message: str) -> None:
        if what in ("listing labels", "deleting labels", "exporting labels"):
            if what == "listing labels":
                self._request = 0
            self.status.setText(message)

    def shutdown(self) -> None:
        self.model.shutdown()
