"""The full-size preview of a result (Space): a zoomable photo pane decoded off the GUI thread, a screen-sized draft first, with the photo's facts."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QPainter, QPalette, QShortcut
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.background import run_in_thread
from engine.paths import display_path
from engine.similarity import LABELS

# The engine's image modules (Pillow, numpy) are imported inside the functions that run in a
# worker thread: the window paints first without them.

ZOOM_STEP = 1.25  # one wheel notch or one + / -
MAX_ZOOM = 8.0  # display pixels per photo pixel at most (800 %)


# ------------------------------------------------------------------ words


def similarity_in_words(level: int | None) -> str:
    """An engine.similarity level as the tiles say it ("Same photo", "Very similar", ...)."""
    return "" if level is None else LABELS[level]


def similarity_line(score: float | None, level: int | None) -> str:
    """The words, then the score: "Very similar (score 0.91)"."""
    parts = [similarity_in_words(level)] + ([f"(score {score:.2f})"] if score is not None else [])
    return " ".join(part for part in parts if part)


def file_size_text(size: int) -> str:
    if size >= 1_000_000_000:
        return f"{size / 1e9:.1f} GB"
    if size >= 1_000_000:
        return f"{size / 1e6:.1f} MB"
    if size >= 1_000:
        return f"{size / 1e3:.0f} KB"
    return f"{size} bytes"


def date_text(iso: str) -> str:
    """'2021-07-04T12:30:00' as '4 Jul 2021, 12:30'."""
    try:
        when = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{when.day} {when:%b %Y, %H:%M}"


def info_lines(info, score: float | None = None, *, similarity: int | None = None, role: str = "") -> list[str]:
    """The facts of a photo (an engine.photo_info.PhotoInfo, or None while it is read) as short
    lines: name; resolution, file size, format; date taken and camera; similarity; folder."""
    lines = []
    if info is None:
        return ["Reading…"]
    lines.append(display_path(os.path.basename(info.path)))
    facts = []
    if info.width and info.height:
        facts.append(f"{info.width} × {info.height} ({info.pixels / 1e6:.1f} MP)")
    if info.file_size is not None:
        facts.append(file_size_text(info.file_size))
    if info.format:
        facts.append(info.format)
    if facts:
        lines.append(" · ".join(facts))
    taken = [f"taken {date_text(info.taken_at)}" if info.taken_at else "no date taken"]
    if info.camera:
        taken.append(info.camera)
    lines.append(" · ".join(taken))
    if role:
        lines.append(role)
    elif score is not None or similarity is not None:
        lines.append(similarity_line(score, similarity))
    if info.problem:
        lines.append(f"Cannot read it: {info.problem}")
    lines.append(display_path(os.path.dirname(info.path)))
    return lines


# ------------------------------------------------------------------ decoding (worker thread)


@dataclass(frozen=True, eq=False)
class Shown:
    """A photo decoded for a pane: the image, the photo's full size, its facts."""

    path: str
    image: QImage  # upright; fewer pixels than the photo when it is a draft
    width: int
    height: int
    info: object  # engine.photo_info.PhotoInfo

    @property
    def is_draft(self) -> bool:
        return self.image.width() < self.width or self.image.height() < self.height


def decode_shown(path: str, fit: tuple[int, int] | None) -> Shown:
    """Read and decode ``path`` for the screen (``fit``: a draft for a screen that size; None:
    every pixel), with its facts. Runs in a worker thread; raises DecodeError for a bad file."""
    from engine.imageio import decode_for_display, read_file  # Pillow, numpy: in the worker thread
    from engine.photo_info import read_photo_info

    info = read_photo_info(path)
    shown = decode_for_display(read_file(path), fit=fit)
    height, width = shown.pixels.shape[:2]
    # copy(): the QImage must own its pixels once the array is gone
    image = QImage(shown.pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return Shown(path, image, shown.width, shown.height, info)


def screen_fit(widget: QWidget | None = None) -> tuple[int, int]:
    """The draft size for the screen the widget is on: its size in device pixels."""
    screen = (widget.screen() if widget is not None else None) or QGuiApplication.primaryScreen()
    if screen is None:
        return 1920, 1080
    size, ratio = screen.size(), screen.devicePixelRatio()
    return max(1, round(size.width() * ratio)), max(1, round(size.height() * ratio))


class PhotoDecoder(QObject):
    """Decodes one photo at a time for a pane (run_in_thread); a request made while one runs
    waits, and only the newest waiting one runs (arrowing through results skips the rest)."""

    decoded = Signal(object)  # Shown
    failed = Signal(str, str)  # path, message

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._task = None
        self._waiting: tuple[str, tuple[int, int] | None] | None = None
        self._closed = False

    def request(self, path: str, fit: tuple[int, int] | None) -> None:
        if self._closed:
            return
        if self._task is not None:
            self._waiting = (path, fit)
            return
        self._start(path, fit)

    def busy(self) -> bool:
        return self._task is not None or self._waiting is not None

    def _start(self, path: str, fit: tuple[int, int] | None) -> None:
        what = f"showing {display_path(os.path.basename(path))}"
        self._task = run_in_thread(lambda: decode_shown(path, fit), self._done,
                                   lambda message: self._failed(path, message), what=what,
                                   after=self._ended, parent=self)

    def _done(self, shown: Shown) -> None:
        if not self._closed:
            self.decoded.emit(shown)

    def _failed(self, path: str, message: str) -> None:
        if not self._closed:
            self.failed.emit(path, message)

    def _ended(self) -> None:
        self._task = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not self._closed:
            self._start(*waiting)

    def shutdown(self) -> None:
        """Drop the waiting request and wait for the decode in flight (no thread outlives us)."""
        self._closed = True
        self._waiting = None
        if self._task is not None:
            self._task.stop()


# ------------------------------------------------------------------ the pane


class PhotoPane(QWidget):
    """One photo, fitted or zoomed, panned by dragging; a draft first, every pixel once zoomed in.

    The view is (zoom, centre): zoom relative to "fit" (1.0 fits the photo into the pane), the
    centre as a fraction of the photo's width and height. Compare mode shares it between panes,
    so photos of different resolutions show the same part at the same size.
    """

    viewChanged = Signal(float, float, float)  # zoom, centre x, centre y: moved by the person
    shownChanged = Signal()  # a photo (draft or full) or a message is on show

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(QSize(120, 90))
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the window has the keys
        self.setMouseTracking(False)
        self.decoder = PhotoDecoder(self)
        self.decoder.decoded.connect(self._on_decoded)
        self.decoder.failed.connect(self._on_failed)
        self.path: str | None = None
        self.shown: Shown | None = None
        self.message = ""  # shown instead of a photo (loading, cannot show)
        self.zoom, self.cx, self.cy = 1.0, 0.5, 0.5
        self._full_asked = False
        self._drag: QPointF | None = None
        self.draft_first = True  # False: every pixel at once (the benchmark's naive peer)

    # ---------------------------------------------------------------- what it shows

    def show_photo(self, path: str, ready: Shown | None = None) -> None:
        """Decode ``path`` (a draft first), or show ``ready``, its draft decoded beforehand; the
        view goes back to fit."""
        self.path = path
        self.shown = None
        self._full_asked = False
        self.message = "Loading…"
        self.zoom, self.cx, self.cy = 1.0, 0.5, 0.5
        if ready is not None and ready.path == path:
            self._on_decoded(ready)
        else:
            self.decoder.request(path, screen_fit(self) if self.draft_first else None)
        self.update()

    @property
    def info(self):
        return self.shown.info if self.shown is not None else None

    def is_full_resolution(self) -> bool:
        return self.shown is not None and not self.shown.is_draft

    def _on_decoded(self, shown: Shown) -> None:
        if shown.path != self.path:
            return  # a photo the pane has moved on from
        if self.shown is not None and not self.shown.is_draft and shown.is_draft:
            return
        self.shown = shown
        self.message = ""
        self.update()
        self.shownChanged.emit()
        self._ask_full_if_needed()

    def _on_failed(self, path: str, message: str) -> None:
        if path != self.path:
            return
        if self.shown is not None:  # the draft is on show; only every pixel failed
            return
        self.message = f"Cannot show this photo: {message}"
        self.update()
        self.shownChanged.emit()

    # ---------------------------------------------------------------- the view

    def fit_scale(self) -> float:
        """Display pixels per photo pixel when the photo fits the pane."""
        if self.shown is None:
            return 1.0
        return min(self.width() / self.shown.width, self.height() / self.shown.height)

    def scale(self) -> float:
        return self.fit_scale() * self.zoom

    def max_zoom(self) -> float:
        return max(1.0, MAX_ZOOM / max(self.fit_scale(), 1e-9))

    def set_view(self, zoom: float, cx: float, cy: float, *, by_person: bool = False) -> None:
        self.zoom = min(max(1.0, zoom), self.max_zoom())
        self.cx, self.cy = self._clamped_centre(cx, cy)
        self.update()
        self._ask_full_if_needed()
        if by_person:
            self.viewChanged.emit(self.zoom, self.cx, self.cy)

    def _clamped_centre(self, cx: float, cy: float) -> tuple[float, float]:
        if self.shown is None:
            return 0.5, 0.5
        s = self.scale()
        half_w = self.width() / (2 * s * self.shown.width)  # half the pane, as a fraction of the photo
        half_h = self.height() / (2 * s * self.shown.height)
        cx = 0.5 if half_w >= 0.5 else min(max(cx, half_w), 1 - half_w)
        cy = 0.5 if half_h >= 0.5 else min(max(cy, half_h), 1 - half_h)
        return cx, cy

    def fit(self) -> None:
        self.set_view(1.0, 0.5, 0.5, by_person=True)

    def actual_size(self) -> None:
        """100 %: one photo pixel to one screen pixel."""
        ratio = self.devicePixelRatioF() or 1.0
        self.set_view(1.0 / (self.fit_scale() * ratio), self.cx, self.cy, by_person=True)

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        """Zoom by ``factor``, keeping the photo point under ``at`` (else the centre) in place."""
        if self.shown is None:
            return
        old = self.scale()
        new_zoom = min(max(1.0, self.zoom * factor), self.max_zoom())
        if at is None:
            self.set_view(new_zoom, self.cx, self.cy, by_person=True)
            return
        w, h = self.shown.width, self.shown.height
        dx, dy = at.x() - self.width() / 2, at.y() - self.height() / 2
        px, py = self.cx + dx / (old * w), self.cy + dy / (old * h)  # the photo point under ``at``
        new = self.fit_scale() * new_zoom
        self.set_view(new_zoom, px - dx / (new * w), py - dy / (new * h), by_person=True)

    def _ask_full_if_needed(self) -> None:
        """Every pixel, once the draft would be enlarged on screen."""
        shown = self.shown
        if shown is None or not shown.is_draft or self._full_asked:
            return
        on_screen = self.scale() * shown.width * (self.devicePixelRatioF() or 1.0)
        if on_screen > shown.image.width() * 1.05:
            self._full_asked = True
            self.decoder.request(shown.path, None)

    def photo_rect(self) -> QRectF:
        """Where the whole photo lies in the pane's coordinates (mostly outside it when zoomed)."""
        shown = self.shown
        s = self.scale()
        w, h = shown.width * s, shown.height * s
        return QRectF(self.width() / 2 - self.cx * w, self.height() / 2 - self.cy * h, w, h)

    # ---------------------------------------------------------------- Qt

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Window).darker(115))
        if self.shown is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            painter.end()
            return
        image = self.shown.image
        target = self.photo_rect()
        visible = target.intersected(QRectF(self.rect()))
        if visible.isEmpty():
            painter.end()
            return
        # Draw only the visible part: the source rectangle in the image's own pixels.
        sx, sy = image.width() / target.width(), image.height() / target.height()
        source = QRectF((visible.left() - target.left()) * sx, (visible.top() - target.top()) * sy,
                        visible.width() * sx, visible.height() * sy)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, sx > 1.0 / 3)
        painter.drawImage(visible, image, source)
        painter.end()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.shown is not None:
            self.cx, self.cy = self._clamped_centre(self.cx, self.cy)
            self._ask_full_if_needed()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP ** steps, event.position())
        event.accept()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.shown is not None:
            self._drag = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag is None or self.shown is None:
            return
        delta = event.position() - self._drag
        self._drag = event.position()
        s = self.scale()
        self.set_view(self.zoom, self.cx - delta.x() / (s * self.shown.width),
                      self.cy - delta.y() / (s * self.shown.height), by_person=True)

    def mouseReleaseEvent(self, event) -> None:
        self._drag = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, event) -> None:
        """Fit, or 100 % at the point double-clicked."""
        if self.shown is None:
            return
        if self.zoom > 1.0:
            self.fit()
        else:
            ratio = self.devicePixelRatioF() or 1.0
            self.zoom_by(1.0 / (self.fit_scale() * ratio), event.position())

    def shutdown(self) -> None:
        self.decoder.shutdown()


def zoom_shortcuts(window: QWidget, pane_of: Callable[[], PhotoPane | None]) -> None:
    """+ / - zoom, 0 fits, 1 is 100 %, on the pane ``pane_of()`` gives (the others follow it in compare)."""
    def on_pane(act: Callable[[PhotoPane], None]) -> Callable[[], None]:
        def run() -> None:
            pane = pane_of()
            if pane is not None:
                act(pane)
        return run

    for keys, act in (((QKeySequence.StandardKey.ZoomIn, "+", "="), lambda p: p.zoom_by(ZOOM_STEP)),
                      ((QKeySequence.StandardKey.ZoomOut, "-"), lambda p: p.zoom_by(1 / ZOOM_STEP)),
                      (("0", "F"), lambda p: p.fit()),
                      (("1",), lambda p: p.actual_size())):
        for key in keys:
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(on_pane(act))


# ------------------------------------------------------------------ the preview window


class PreviewWindow(QWidget):
    """A result at full size: Left / Right (or Up / Down) move through the results, Esc or Space
    closes, + / - / 0 / 1 and the wheel zoom, dragging pans, C compares it with the query.

    ``photo(row)`` gives (path, score, similarity level) of a row of ``count()`` results."""

    rowChanged = Signal(int)
    compareRequested = Signal(int)

    def __init__(self, count: Callable[[], int], photo: Callable[[int], tuple[str, float | None]],
                 parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Preview")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self._count, self._photo = count, photo
        self.row = -1
        self.score: float | None = None
        self.similarity: int | None = None  # an engine.similarity level
        self._direction = 1  # the way the person is going through the results
        self.pane = PhotoPane(self)
        self.pane.shownChanged.connect(self._update_info)
        self.pane.shownChanged.connect(self._prefetch)
        # Drafts of the photos next to the one on show, decoded while it is looked at, so an
        # arrow shows the next photo at once.
        self.drafts: dict[str, Shown] = {}
        self._prefetcher = PhotoDecoder(self)
        self._prefetcher.decoded.connect(self._keep_draft)
        self.pane.decoder.decoded.connect(self._keep_draft)
        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info_label.setContentsMargins(8, 4, 8, 4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.pane, 1)
        layout.addWidget(self.info_label)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        zoom_shortcuts(self, lambda: self.pane)

    def show_row(self, row: int) -> None:
        """Show result ``row`` (clamped to the results)."""
        count = self._count()
        if count == 0:
            return
        row = min(max(row, 0), count - 1)
        self.row = row
        path, self.score, self.similarity = self._photo(row)
        self.pane.show_photo(path, self.drafts.get(path))
        self._update_info()
        self.rowChanged.emit(row)

    def step(self, by: int) -> None:
        if self._count():
            self._direction = 1 if by > 0 else -1
            self.show_row(self.row + by)

    KEPT_DRAFTS = 4  # about 9 MB each for a 12 MP photo on a 1080p screen

    def _keep_draft(self, shown: Shown) -> None:
        """Keep a decode made for the screen (a draft, or a whole photo no bigger than the
        screen), not a big photo's every pixel."""
        fit_w, fit_h = screen_fit(self)
        if shown.is_draft or shown.width * shown.height <= fit_w * fit_h:
            self.drafts.pop(shown.path, None)
            self.drafts[shown.path] = shown
            while len(self.drafts) > self.KEPT_DRAFTS:
                self.drafts.pop(next(iter(self.drafts)))

    def _prefetch(self) -> None:
        """Once the photo on show is there: the draft of the next one the way the person is going."""
        if self.pane.shown is None or not self.isVisible():
            return
        row = self.row + self._direction
        if 0 <= row < self._count():
            path = self._photo(row)[0]
            if path not in self.drafts:
                self._prefetcher.request(path, screen_fit(self))

    def _update_info(self) -> None:
        """Two lines under the photo (the photo gets the height): where it is in the results,
        its name and its similarity; then its facts and its folder."""
        name = display_path(os.path.basename(self.pane.path or ""))
        first = [f"{self.row + 1} of {self._count()}", name]
        if self.score is not None or self.similarity is not None:
            first.append(similarity_line(self.score, self.similarity))
        second = info_lines(self.pane.info)[1:] if self.pane.info is not None else []
        if self.pane.message and self.pane.shown is None:
            second.append(self.pane.message)
        self.info_label.setText(" · ".join(first) + "\n" + " · ".join(second))
        self.setWindowTitle(f"{name} – Preview")

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Escape, Qt.Key.Key_Space):
            self.close()
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_PageDown):
            self.step(1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step(-1)
        elif key == Qt.Key.Key_Home:
            self.show_row(0)
        elif key == Qt.Key.Key_End:
            self.show_row(self._count() - 1)
        elif key == Qt.Key.Key_C:
            self.compareRequested.emit(self.row)
        else:
            super().keyPressEvent(event)

    def open_at(self, row: int) -> None:
        """Show ``row`` in a window as large as the screen allows, in front."""
        self.show_row(row)
        if not self.isVisible():
            screen = self.screen() or QGuiApplication.primaryScreen()
            if screen is not None:
                self.setGeometry(screen.availableGeometry())
            self.show()  # a new window comes up in front
        elif not self.isActiveWindow():
            self.raise_()
        self.activateWindow()
        self.setFocus()

    def closeEvent(self, event) -> None:
        self.drafts.clear()  # tens of megabytes while nobody looks
        super().closeEvent(event)

    def shutdown(self) -> None:
        self._prefetcher.shutdown()
        self.pane.shutdown()

