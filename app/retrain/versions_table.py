"""The table of a library's model versions, newest first: id, name for people (the technical one in a tooltip), bits, head, mode, held-out accuracy, date, active."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from app.retrain.wording import format_accuracy, format_created
from engine.models import plain_name, technical_name
from engine.store import ModelRow

HISTORY_COLUMNS = ("Version", "Name", "Bits", "Head", "Mode", "Held-out accuracy", "Created", "Active")


class VersionsTable(QTableWidget):
    """One row per model version; each row's items carry the version's id (UserRole)."""

    def __init__(self):
        super().__init__(0, len(HISTORY_COLUMNS))
        self.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The name takes what is left (elided if need be): no horizontal scroll bar at the dialog's width.
        header.setSectionResizeMode(HISTORY_COLUMNS.index("Name"), QHeaderView.ResizeMode.Stretch)

    def fill(self, models: Sequence[ModelRow]) -> None:
        """Show ``models`` (oldest first, as the store lists them), keeping the selected version selected."""
        keep = self.selected_version()
        self.setRowCount(0)
        for model in reversed(models):  # newest first
            head = model.manifest.get("head") or {}
            metrics = model.manifest.get("metrics") or {}
            accuracy = metrics.get("held_out_pair_accuracy")
            if accuracy is not None:
                accuracy_text = format_accuracy(accuracy)
            elif metrics.get("held_out_pair_accuracy_estimate") is not None:
                # Full mode stopped before encoding the library: the training-time estimate.
                accuracy_text = "≈ " + format_accuracy(metrics["held_out_pair_accuracy_estimate"])
            else:
                accuracy_text = "–"
            cells = (f"v{model.id}", plain_name(model.manifest, model.created_at), str(model.bits), str(head.get("kind", "?")),
                     str(head.get("mode", "–")), accuracy_text,
                     format_created(model.created_at), "● active" if model.active else "")
            row = self.rowCount()
            self.insertRow(row)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, model.id)
                item.setToolTip(technical_name(model.id, model.manifest))  # the name the files have
                if model.active:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(row, column, item)
            if model.id == keep:
                self.selectRow(row)

    def selected_version(self) -> int | None:
        rows = self.selectionModel().selectedRows() if self.selectionModel() else []
        if not rows:
            return None
        return self.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def select_version(self, model_id: int) -> None:
        for row in range(self.rowCount()):
            if self.item(row, 0).data(Qt.ItemDataRole.UserRole) == model_id:
                self.selectRow(row)
                return
        raise KeyError(model_id)
