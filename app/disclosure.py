"""A section that opens and closes under a small arrow button ("Advanced"): what most people never need stays out of the way."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QToolButton, QVBoxLayout, QWidget


class Disclosure(QWidget):
    """A button with an arrow and the ``body`` below it, shown only while open (closed at first)."""

    toggled = Signal(bool)

    def __init__(self, title: str, body: QWidget, *, tooltip: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.button = QToolButton()
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setAutoRaise(True)
        self.button.setToolTip(tooltip)
        self.body = body
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(body)
        self.set_open(False)
        self.button.toggled.connect(self._on_toggled)

    def is_open(self) -> bool:
        return self.button.isChecked()

    def set_open(self, shown: bool) -> None:
        """Open or close without emitting ``toggled``."""
        self.button.blockSignals(True)
        self.button.setChecked(shown)
        self.button.blockSignals(False)
        self._show(shown)

    def _show(self, shown: bool) -> None:
        self.button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.body.setVisible(shown)

    def _on_toggled(self, shown: bool) -> None:
        self._show(shown)
        self.toggled.emit(shown)


def note(text: str) -> QLabel:
    """A one-line explanation under an advanced control, wrapped, in the palette's quieter text."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.9)
    label.setFont(font)
    return label
