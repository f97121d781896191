"""Drives the real app as a person would: search, Model > Retrain, train, activate, roll back, Ctrl+Q.

    python -m tests.gui.retrain_then_quit QUERY_PHOTO [TRAINER_ARGS...]

Run in a fresh process (tests/gui/test_retrain.py does) with LOOKALIKE_LIBRARY set to a
labelled library; the exit status is the app's own, so a crash while the interpreter
shuts down (PySide6 6.12.0 on CPython 3.11 freed True there: exit 134) shows as such.
Each step is printed as it is reached; a step that never comes ends the run with exit 3.
"""

from __future__ import annotations

import faulthandler
import sys
import time

STEP_TIMEOUT_S = 240  # the trainer imports torch on two busy cores


def main(argv: list[str]) -> int:
    faulthandler.enable()
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.main import create_window

    query, trainer_args = argv[0], argv[1:]
    app, window = create_window([sys.argv[0]], query)
    state: dict = {"step": 0, "since": time.monotonic()}

    def dialog():
        return window.retrain_dialog

    def active_id():
        facts = dialog().facts
        return facts.active.id if facts and facts.active else None

    def idle() -> bool:
        d = dialog()
        return d is not None and not d.is_training() and not d.is_activating() and d._facts_thread is None

    def press(key: Qt.Key, widget=None) -> None:
        QTest.keyClick(widget or window, key, Qt.KeyboardModifier.ControlModifier)

    # (what must hold before the step, what the step does): the person's way through the flow.
    steps = [
        ("results of the query", lambda: window.model.rowCount() > 0,
         lambda: press(Qt.Key.Key_R)),
        ("the retrain dialog read the library", lambda: dialog() is not None and dialog().facts is not None,
         lambda: (setattr(dialog(), "extra_args", trainer_args), dialog().train_button.click())),
        ("training done", lambda: idle() and dialog().new_version is not None and dialog().facts.models[-1].id
         == dialog().new_version, lambda: dialog().activate_new_button.click()),
        ("new version active", lambda: idle() and active_id() == dialog().new_version,
         lambda: (dialog().tabs.setCurrentIndex(1), dialog().rollback_button.click())),
        ("rolled back", lambda: idle() and active_id() != dialog().new_version,
         lambda: print(f"active after the roll back: v{active_id()}", flush=True)),
        ("back in the main window", lambda: True, window.activateWindow),
        ("quit", lambda: QApplication.activeWindow() is window, lambda: press(Qt.Key.Key_Q)),
    ]

    def advance() -> None:
        if state["step"] >= len(steps):
            return
        name, ready, act = steps[state["step"]]
        if ready():
            print(f"step: {name}", flush=True)
            state["step"] += 1
            state["since"] = time.monotonic()
            act()
        elif time.monotonic() - state["since"] > STEP_TIMEOUT_S:
            print(f"stuck before: {name}", flush=True)
            app.exit(3)

    timer = QTimer()
    timer.setInterval(100)
    timer.timeout.connect(advance)
    timer.start()
    code = app.exec()
    timer.stop()
    window.shutdown()
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
