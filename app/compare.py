"""Compare mode: the query and a result, or 2 to 4 photos, side by side with one zoom and pan and each photo's facts."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.preview import PhotoPane, info_lines, zoom_shortcuts

MAX_PHOTOS = 4


INFO_LINES = 6  # name; resolution, size, format; date, camera; similarity; folder; a problem


@dataclass(frozen=True)
class ComparedPhoto:
    """One photo of a comparison: its file, its score against the query (None for the query
    itself, or when there is no score), and what it is ("Query", "Result 3")."""

    path: str
    score: float | None = None
    title: str = ""
    similarity: int | None = None  # an engine.similarity level
    is_query: bool = False


class CompareWindow(QWidget):
    """2 to 4 photos side by side (2 or 3 in a row, 4 in a square). Zooming or panning one
    pane moves them all: the zoom is relative to each photo's fit and the centre a fraction of
    each photo, so copies of different resolutions show the same part at the same size."""

    def __init__(self, photos: list[ComparedPhoto], parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        if not 2 <= len(photos) <= MAX_PHOTOS:
            raise ValueError(f"compare takes 2 to {MAX_PHOTOS} photos, not {len(photos)}")
        self.photos = list(photos)
        self.setWindowTitle(f"Compare {len(photos)} photos")
        self.panes: list[PhotoPane] = []
        self.info_labels: list[QLabel] = []
        self._active = 0  # the pane the keys zoom (the last one the person touched)

        grid = QGridLayout()
        grid.setSpacing(6)
        columns = 2 if len(photos) == 4 else len(photos)
        for position, photo in enumerate(photos):
            title = QLabel(f"<b>{photo.title}</b>" if photo.title else "")
            pane = PhotoPane(self)
            info = QLabel()
            info.setWordWrap(True)
            info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            # Every pane one size, whatever its facts say and whenever they arrive ("Reading…" is
            # one line): the zoom is shared relative to each pane's fit, so equal panes show the
            # same part at the same size. The text wraps to the column; the tooltip holds it whole.
            info.setFixedHeight(INFO_LINES * info.fontMetrics().lineSpacing())
            info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            cell = QVBoxLayout()
            cell.addWidget(title)
            cell.addWidget(pane, 1)
            cell.addWidget(info)
            grid.addLayout(cell, position // columns, position % columns)
            grid.setColumnStretch(position % columns, 1)
            grid.setRowStretch(position // columns, 1)
            pane.viewChanged.connect(lambda zoom, cx, cy, source=pane: self._follow(source, zoom, cx, cy))
            pane.shownChanged.connect(lambda position=position: self._update_info(position))
            self.panes.append(pane)
            self.info_labels.append(info)

        buttons = QHBoxLayout()
        for text, tip, act in (("Fit", "Fit every photo in its pane (0)", lambda p: p.fit()),
                               ("100 %", "One pixel of the chosen photo to one screen pixel (1)",
                                lambda p: p.actual_size()),
                               ("Zoom in", "Zoom in (+, or the wheel)", lambda p: p.zoom_by(1.25)),
                               ("Zoom out", "Zoom out (-)", lambda p: p.zoom_by(0.8))):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda checked=False, act=act: act(self.panes[self._active]))
            buttons.addWidget(button)
        buttons.addStretch(1)
        hint = QLabel("Drag to pan, wheel to zoom: every photo follows. Esc closes.")
        buttons.addWidget(hint)

        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(grid, 1)
        zoom_shortcuts(self, lambda: self.panes[self._active])
        for position in range(len(photos)):
            self._update_info(position)

    def start(self) -> None:
        """Show the window over most of its screen and decode the photos (each in a thread of
        its own, a draft first)."""
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None:
            self.resize(int(screen.width() * 0.9), int(screen.height() * 0.85))
        self.show()
        for pane, photo in zip(self.panes, self.photos):
            pane.show_photo(photo.path)
            self._update_info(self.panes.index(pane))

    def _follow(self, source: PhotoPane, zoom: float, cx: float, cy: float) -> None:
        self._active = self.panes.index(source)
        for pane in self.panes:
            if pane is not source:
                pane.set_view(zoom, cx, cy)

    def _update_info(self, position: int) -> None:
        pane, photo = self.panes[position], self.photos[position]
        if pane.info is None:
            text = pane.message or "Reading…"
        else:
            role = "The query" if photo.is_query else ""
            lines = info_lines(pane.info, photo.score, similarity=photo.similarity, role=role)
            if pane.message:
                lines.append(pane.message)
            text = "\n".join(lines)
        self.info_labels[position].setText(text)
        self.info_labels[position].setToolTip(text)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        self.shutdown()  # the decodes in flight end before the window is deleted
        super().closeEvent(event)

    def shutdown(self) -> None:
        for pane in self.panes:
            pane.shutdown()
