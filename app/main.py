"""Start the desktop window: ``main(argv)`` creates the QApplication and the main window."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import SETTINGS_APP, SETTINGS_ORG, MainWindow

    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    app.setOrganizationName(SETTINGS_ORG)
    app.setApplicationName(SETTINGS_APP)
    settings = QSettings(SETTINGS_ORG, SETTINGS_APP)
    window = MainWindow(settings=settings)
    window.show()
    code = app.exec()
    window.shutdown()  # already done by closeEvent unless the loop ended another way
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
