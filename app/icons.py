"""The app's line icons (resources/icons/*.svg) as QIcons that scale to any DPI and follow the palette.

``icon(name)`` returns a cached QIcon. Its engine renders the SVG at the size and device
pixel ratio asked for, so icons stay sharp on high-DPI screens, and it paints the SVG's
``currentColor`` in the palette's text colour of the moment (disabled and selected states
included), so the same file serves the light and the dark theme. Icons with colours of
their own (similar, dissimilar, app) keep them.

Names (one file ``resources/icons/<name>.svg`` each):

- ``app``: the window and application icon
- ``open``: File > Open…, and "Open" on a result
- ``paste``: paste an image or a path as the query
- ``search``: find lookalikes (of a file, of a result)
- ``add-folder``: add photo folders, index (the indexing wizard)
- ``label-pairs``: Label pairs…
- ``labels``: Labels… (the list of labelled pairs)
- ``retrain``: Retrain… (learn from the labels)
- ``similar``: mark a pair as similar (green check)
- ``dissimilar``: mark a pair as dissimilar (red cross)
- ``skip``: skip a pair
- ``undo``: undo the last label
- ``reveal``: reveal in the file manager
- ``copy``: copy a path
- ``settings``: settings, preferences

The folder is found next to the ``app`` package (``<root>/resources/icons``): in a source
checkout and an editable install that is the repository's ``resources/``; a wheel installs
``resources/`` beside ``app/`` in site-packages.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QIconEngine, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
NAMES = ("app", "open", "paste", "search", "add-folder", "label-pairs", "labels", "retrain", "similar",
         "dissimilar", "skip", "undo", "reveal", "copy", "settings")
_CACHE_LIMIT = 32  # rendered pixmaps kept per icon: a few sizes x modes x themes
_CLONES: list[QIconEngine] = []  # see SvgIconEngine.clone; rare (only a changed copy clones)


def icon_path(name: str) -> Path:
    """The SVG file of an icon; a name without a file is a bug in the caller."""
    path = ICON_DIR / f"{name}.svg"
    if not path.is_file():
        raise KeyError(f"no icon named {name!r} in {ICON_DIR}")
    return path


@cache
def icon(name: str) -> QIcon:
    """The icon called ``name`` (see the module docstring for the names)."""
    return QIcon(SvgIconEngine(icon_path(name).read_bytes()))


class SvgIconEngine(QIconEngine):
    """Renders one SVG at any size and scale, ``currentColor`` taken from the application palette."""

    def __init__(self, svg: bytes):
        super().__init__()
        self._svg = svg
        self._themed = b"currentColor" in svg
        self._renderers: dict[str, QSvgRenderer] = {}
        self._pixmaps: dict[tuple, QPixmap] = {}

    def _colour(self, mode: QIcon.Mode) -> str:
        palette = QGuiApplication.palette()
        if mode == QIcon.Mode.Disabled:
            colour = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        elif mode == QIcon.Mode.Selected:
            colour = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.HighlightedText)
        else:
            colour = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.WindowText)
        return colour.name()

    def _renderer(self, mode: QIcon.Mode) -> QSvgRenderer:
        colour = self._colour(mode) if self._themed else ""
        renderer = self._renderers.get(colour)
        if renderer is None:
            data = self._svg.replace(b"currentColor", colour.encode()) if self._themed else self._svg
            renderer = QSvgRenderer(QByteArray(data))
            renderer.setAspectRatioMode(Qt.AspectRatioMode.KeepAspectRatio)
            self._renderers[colour] = renderer
        return renderer

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        self._renderer(mode).render(painter, QRectF(rect))

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def scaledPixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float) -> QPixmap:
        key = (size.width(), size.height(), round(scale, 3), self._colour(mode) if self._themed else "", mode)
        pixmap = self._pixmaps.get(key)
        if pixmap is None:
            width, height = max(1, round(size.width() * scale)), max(1, round(size.height() * scale))
            image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._renderer(mode).render(painter, QRectF(0, 0, width, height))
            painter.end()
            if mode == QIcon.Mode.Disabled and not self._themed:
                image = _faded(image)
            pixmap = QPixmap.fromImage(image)
            pixmap.setDevicePixelRatio(scale)
            if len(self._pixmaps) >= _CACHE_LIMIT:
                self._pixmaps.clear()
            self._pixmaps[key] = pixmap
        return pixmap

    def actualSize(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QSize:
        return size  # scalable: any size is an actual size

    def clone(self) -> QIconEngine:
        # Qt takes the clone (when a copy of the icon is changed) but PySide does not hand it
        # ownership: without a reference kept here the clone would be freed under Qt's feet.
        engine = SvgIconEngine(self._svg)
        _CLONES.append(engine)
        return engine

    def key(self) -> str:
        return "lookalike-svg"

    def isNull(self) -> bool:
        return False


def _faded(image: QImage) -> QImage:
    """A coloured icon's disabled look: the same drawing at 40 % opacity."""
    faded = QImage(image.size(), QImage.Format.Format_ARGB32_Premultiplied)
    faded.fill(Qt.GlobalColor.transparent)
    painter = QPainter(faded)
    painter.setOpacity(0.4)
    painter.drawImage(0, 0, image)
    painter.end()
    return faded
