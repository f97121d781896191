"""A label that shows its picture scaled down to fit whatever room it has, so a small window can shrink it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy


class FittedLabel(QLabel):
    """A QLabel whose pixmap is shown whole at the largest size that fits (never enlarged), and
    whose size hint stays small: the picture yields room to the widgets beside it."""

    def __init__(self, text: str = "", minimum: QSize = QSize(120, 90), parent=None):
        super().__init__(text, parent)
        self._source = QPixmap()
        self.setMinimumSize(minimum)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def setPixmap(self, pixmap: QPixmap) -> None:
        self._source = QPixmap(pixmap)
        self._fit()

    def setText(self, text: str) -> None:
        self._source = QPixmap()
        super().setText(text)

    def source_pixmap(self) -> QPixmap:
        """The picture as given (``pixmap()`` is the scaled one on show)."""
        return self._source

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._source.isNull():
            return
        room = self.contentsRect().size()
        source = self._source
        ratio = source.devicePixelRatio()
        size = QSize(round(source.width() / ratio), round(source.height() / ratio))
        if size.width() > room.width() or size.height() > room.height():
            scaled = source.scaled(room * ratio, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
            scaled.setDevicePixelRatio(ratio)
            super().setPixmap(scaled)
        else:
            super().setPixmap(source)
