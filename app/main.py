"""Start the desktop window: ``main(argv)`` creates the QApplication, the theme and the main window."""

from __future__ import annotations

import sys

from app.desktop_check import install_line, missing_for_window, missing_from_import_error


def create_window(argv: list[str] | None = None, query: str | None = None):
    """The application (themed, with its icon) and a shown main window, searching for ``query``
    (a photo's path) when given; the event loop is not started."""
    # Qt only after the system check: without the desktop's X11 libraries it cannot load
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.icons import icon
    from app.main_window import SETTINGS_APP, SETTINGS_ORG, MainWindow
    from app.theme import Theme

    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    app.setOrganizationName(SETTINGS_ORG)
    app.setApplicationName(SETTINGS_APP)
    app.setWindowIcon(icon("app"))
    app.lookalike_theme = Theme.from_environment(app)  # kept on the app: it lives as long as the app
    settings = QSettings(SETTINGS_ORG, SETTINGS_APP)
    window = MainWindow(settings=settings)
    window.show()
    if query:
        window.search(query)
    return app, window


EXIT_ENVIRONMENT = 3  # as the CLI's: the machine is not right


def main(argv: list[str] | None = None, query: str | None = None) -> int:
    missing = missing_for_window()
    if missing:
        print(f"lookalike: {install_line(missing)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    try:
        app, window = create_window(argv, query)
    except ImportError as exc:  # Qt's own libraries need a few of the system's (EGL, fontconfig)
        missing = missing_from_import_error(str(exc))
        if not missing:
            raise
        print(f"lookalike: {install_line(missing)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    code = app.exec()
    window.shutdown()  # already done by closeEvent unless the loop ended another way
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
