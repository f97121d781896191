"""Light and dark palettes on a real window, following the system or pinned by LOOKALIKE_THEME; themed icons."""

from __future__ import annotations

import logging
import statistics

import pytest
import shiboken6
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPalette

from app.icons import ICON_DIR, NAMES, icon
from app.theme import THEME_ENV, Theme, palette, requested_theme


@pytest.fixture
def themes(qapp):
    """Makes Themes and afterwards deletes them and restores the application's style and palette."""
    style, original = qapp.style().name(), QPalette(qapp.palette())
    made = []

    def make(pinned=None, *, from_environment=False):
        theme = Theme.from_environment(qapp) if from_environment else Theme(qapp, pinned)
        made.append(theme)
        return theme

    yield make
    for theme in made:
        if shiboken6.isValid(theme):  # a test may have deleted it already (a second delete crashes PySide6 6.11)
            shiboken6.delete(theme)  # also disconnects it from colorSchemeChanged
    qapp.setStyle(style)
    qapp.setPalette(original)


def _background(window) -> QColor:
    """The commonest colour of the window as drawn: its background."""
    image = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    step = 7
    pixels = [image.pixel(x, y) for y in range(0, image.height(), step) for x in range(0, image.width(), step)]
    return QColor.fromRgb(statistics.mode(pixels))


def _ink(pixmap, min_alpha: int = 255) -> list[QColor]:
    """The (by default fully) opaque pixels of an icon."""
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_ARGB32)
    colours = [QColor.fromRgba(image.pixel(x, y)) for y in range(image.height()) for x in range(image.width())]
    return [c for c in colours if c.alpha() >= min_alpha]


def test_pinned_dark_theme_draws_a_dark_window_with_light_text(themes, monkeypatch, make_window, tmp_path, qtbot):
    monkeypatch.setenv(THEME_ENV, "dark")
    theme = themes(from_environment=True)
    assert theme.name == "dark" and theme.pinned == "dark"
    window = make_window(tmp_path / "no-library")
    qtbot.waitUntil(window.is_empty_state, timeout=10_000)
    background, text = _background(window), window.palette().color(QPalette.ColorRole.WindowText)
    assert window.style().name() == "fusion"
    assert background.lightness() < 70 and text.lightness() > 180
    assert background == window.palette().color(QPalette.ColorRole.Window)


def test_pinned_light_theme_draws_a_light_window_with_dark_text(themes, monkeypatch, make_window, tmp_path, qtbot):
    monkeypatch.setenv(THEME_ENV, " Light ")
    theme = themes(from_environment=True)
    assert theme.name == "light"
    window = make_window(tmp_path / "no-library")
    qtbot.waitUntil(window.is_empty_state, timeout=10_000)
    background, text = _background(window), window.palette().color(QPalette.ColorRole.WindowText)
    assert background.lightness() > 200 and text.lightness() < 70


def test_theme_follows_the_system_scheme_unless_pinned(themes, qapp, make_window, tmp_path, qtbot):
    hints = qapp.styleHints()
    following = themes()
    switches = []
    following.changed.connect(switches.append)
    window = make_window(tmp_path / "no-library")
    qtbot.waitUntil(window.is_empty_state, timeout=10_000)
    # The platform's notice, as a desktop sends it when the person switches to dark.
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert following.name == "dark" and switches == ["dark"]
    qtbot.waitUntil(lambda: _background(window).lightness() < 70, timeout=2000)  # widgets hear of it by event
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert following.name == "light" and switches == ["dark", "light"]
    qtbot.waitUntil(lambda: _background(window).lightness() > 200, timeout=2000)

    shiboken6.delete(following)
    pinned = themes("dark")
    qtbot.waitUntil(lambda: _background(window).lightness() < 70, timeout=2000)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    qtbot.wait(50)
    assert pinned.name == "dark" and _background(window).lightness() < 70


def test_requested_theme_reads_the_environment(caplog):
    assert requested_theme({THEME_ENV: "DARK"}) == "dark"
    assert requested_theme({THEME_ENV: "light"}) == "light"
    assert requested_theme({}) is None
    assert requested_theme({THEME_ENV: "auto"}) is None
    with caplog.at_level(logging.WARNING, logger="app.theme"):
        assert requested_theme({THEME_ENV: "drak"}) is None
    assert "drak" in caplog.text
    with pytest.raises(ValueError):
        palette("sepia")


def test_every_icon_file_is_named_and_renders_sharp_at_any_scale(qapp):
    assert sorted(p.stem for p in ICON_DIR.glob("*.svg")) == sorted(NAMES)
    for name in NAMES:
        assert not icon(name).isNull()
        for size, scale in ((16, 1.0), (16, 2.0), (24, 1.5), (256, 1.0)):
            pixmap = icon(name).pixmap(QSize(size, size), scale)
            assert pixmap.devicePixelRatio() == scale
            assert pixmap.size() == QSize(round(size * scale), round(size * scale)), name
            assert len(_ink(pixmap, 128)) > (size * scale) ** 2 / 50, f"{name} draws almost nothing at {size}@{scale}x"
    with pytest.raises(KeyError):
        icon("no-such-icon")
    changed = QIcon(icon("paste"))
    changed.addFile(str(ICON_DIR / "undo.svg"))  # changing a copy makes Qt clone the engine
    assert len(_ink(changed.pixmap(QSize(24, 24)), 128)) > 24


def test_line_icons_take_the_theme_text_colour(themes, qapp):
    theme = themes()
    for scheme, state in ((Qt.ColorScheme.Dark, "dark"), (Qt.ColorScheme.Light, "light")):
        qapp.styleHints().colorSchemeChanged.emit(scheme)
        assert theme.name == state
        text = palette(state).color(QPalette.ColorRole.WindowText)
        ink = _ink(icon("open").pixmap(QSize(48, 48)))
        assert ink and all(abs(c.lightness() - text.lightness()) < 8 for c in ink), state
        disabled = _ink(icon("open").pixmap(QSize(48, 48), QIcon.Mode.Disabled))
        assert disabled and disabled[0] != ink[0]
    # Icons with colours of their own keep them in either theme.
    green = _ink(icon("similar").pixmap(QSize(48, 48)))
    assert green and all(c.green() > c.red() and c.green() > c.blue() for c in green)


def test_main_starts_a_themed_window_with_the_app_icon(themes, qapp, qtbot, monkeypatch, tmp_path):
    from PySide6.QtCore import QSettings, QStandardPaths

    from app.main import create_window

    monkeypatch.setenv(THEME_ENV, "dark")
    monkeypatch.setenv("LOOKALIKE_LIBRARY", str(tmp_path / "no-library"))
    user_settings = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "config"))
    try:
        app, window = create_window(["lookalike"])
        qtbot.addWidget(window)
        assert app is qapp and window.isVisible()
        assert app.style().name() == "fusion" and app.lookalike_theme.name == "dark"
        assert not app.windowIcon().isNull() and not window.windowIcon().isNull()
        qtbot.waitUntil(window.is_empty_state, timeout=10_000)
        assert _background(window).lightness() < 70
        window.close()
    finally:
        QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, user_settings)
        theme = getattr(qapp, "lookalike_theme", None)
        if theme is not None:
            del qapp.lookalike_theme
            shiboken6.delete(theme)
    assert (tmp_path / "config").exists()  # the window's settings went to the scratch folder
