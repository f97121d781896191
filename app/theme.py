"""Light and dark Fusion palettes that follow the system colour scheme; ``LOOKALIKE_THEME`` overrides it.

``Theme(app)`` sets the Fusion style (the same look on every platform, and one that
honours a palette fully), applies the palette for the system's colour scheme (Qt >= 6.5
reports it through ``QStyleHints.colorScheme``) and switches when the system switches.
``LOOKALIKE_THEME=light`` or ``dark`` pins one; ``auto`` (or unset) follows the system,
and a scheme the platform does not report counts as light.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette

log = logging.getLogger(__name__)

THEME_ENV = "LOOKALIKE_THEME"
THEMES = ("light", "dark")
ACCENT = "#3d7bf0"  # the app icon's blue

_R = QPalette.ColorRole
_LIGHT = {
    _R.Window: "#efefef", _R.WindowText: "#1e1e1e", _R.Base: "#ffffff", _R.AlternateBase: "#f4f4f4",
    _R.ToolTipBase: "#fffff0", _R.ToolTipText: "#1e1e1e", _R.PlaceholderText: "#7c7c7c",
    _R.Text: "#1e1e1e", _R.Button: "#efefef", _R.ButtonText: "#1e1e1e", _R.BrightText: "#ffffff",
    _R.Light: "#ffffff", _R.Midlight: "#dadada", _R.Mid: "#b8b8b8", _R.Dark: "#9f9f9f", _R.Shadow: "#767676",
    _R.Highlight: "#2f6fe0", _R.HighlightedText: "#ffffff", _R.Link: "#1a5fd0", _R.LinkVisited: "#7a3fc0",
}
_LIGHT_DISABLED = {_R.WindowText: "#9a9a9a", _R.Text: "#9a9a9a", _R.ButtonText: "#9a9a9a",
                   _R.Base: "#efefef", _R.Highlight: "#b8b8b8", _R.HighlightedText: "#efefef"}
_DARK = {
    _R.Window: "#2d2d30", _R.WindowText: "#e6e6e6", _R.Base: "#1e1e20", _R.AlternateBase: "#29292c",
    _R.ToolTipBase: "#3a3a3e", _R.ToolTipText: "#e6e6e6", _R.PlaceholderText: "#8c8c8c",
    _R.Text: "#e6e6e6", _R.Button: "#36363a", _R.ButtonText: "#e6e6e6", _R.BrightText: "#ff6b6b",
    _R.Light: "#4c4c52", _R.Midlight: "#404045", _R.Mid: "#29292c", _R.Dark: "#1b1b1d", _R.Shadow: "#0c0c0d",
    _R.Highlight: ACCENT, _R.HighlightedText: "#ffffff", _R.Link: "#79aefc", _R.LinkVisited: "#b495ff",
}
_DARK_DISABLED = {_R.WindowText: "#77777c", _R.Text: "#77777c", _R.ButtonText: "#77777c",
                  _R.Base: "#2d2d30", _R.Highlight: "#4c4c52", _R.HighlightedText: "#a0a0a0"}


def palette(theme: str) -> QPalette:
    """The palette of ``theme`` ("light" or "dark")."""
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {THEMES}, not {theme!r}")
    colours, disabled = (_DARK, _DARK_DISABLED) if theme == "dark" else (_LIGHT, _LIGHT_DISABLED)
    result = QPalette()
    for role, colour in colours.items():
        result.setColor(role, QColor(colour))
    if hasattr(_R, "Accent"):  # Qt >= 6.6
        result.setColor(_R.Accent, QColor(colours[_R.Highlight]))
    for role, colour in disabled.items():
        result.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return result


def requested_theme(environ: Mapping[str, str] = os.environ) -> str | None:
    """The theme ``LOOKALIKE_THEME`` pins, or None to follow the system."""
    value = environ.get(THEME_ENV, "").strip().lower()
    if value in THEMES:
        return value
    if value not in ("", "auto", "system"):
        log.warning("%s=%r is not light, dark or auto: following the system", THEME_ENV, value)
    return None


def theme_for_scheme(scheme: Qt.ColorScheme) -> str:
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


class Theme(QObject):
    """Keeps the application's palette in step with the system colour scheme, unless pinned."""

    changed = Signal(str)  # "light" or "dark", after the palette is applied

    def __init__(self, app: QGuiApplication, pinned: str | None = None, *, use_fusion: bool = True):
        super().__init__(app)
        if pinned is not None and pinned not in THEMES:
            raise ValueError(f"theme must be one of {THEMES}, not {pinned!r}")
        self._app = app
        self.pinned = pinned
        self.name = ""
        if use_fusion and hasattr(app, "setStyle"):  # a QApplication, not a bare QGuiApplication
            app.setStyle("Fusion")
        hints = app.styleHints()
        hints.colorSchemeChanged.connect(self._on_scheme_changed)
        self._apply(self.pinned or theme_for_scheme(hints.colorScheme()))

    @classmethod
    def from_environment(cls, app: QGuiApplication) -> Theme:
        return cls(app, requested_theme())

    def _on_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        if self.pinned is None:
            self._apply(theme_for_scheme(scheme))

    def _apply(self, name: str) -> None:
        if name == self.name:
            return
        self.name = name
        self._app.setPalette(palette(name))
        self.changed.emit(name)
