"""What the window's application event filter (Ctrl+V window-wide, mouse back/forward) costs per Qt event.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_event_filter.py [--events 200000] [--repeats 5]

Posts events to a plain QObject and processes them, with the main window's filter installed
on the application and without it (the peer, same run): every event of the process passes
the filter, so its cost per event is what it adds to everything the window does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


class Sink(QObject):
    def event(self, event) -> bool:
        return True


def run(count: int, sink: QObject) -> float:
    start = time.perf_counter()
    for _ in range(count):
        QCoreApplication.postEvent(sink, QEvent(QEvent.Type.User))
    QCoreApplication.processEvents()
    QCoreApplication.sendPostedEvents(sink)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow

    sink = Sink()
    without = [run(args.events, sink) for _ in range(args.repeats)]
    with tempfile.TemporaryDirectory() as scratch:
        settings = QSettings(str(Path(scratch) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(Path(scratch) / "no-library", settings=settings, warm_up=False)
        with_filter = [run(args.events, sink) for _ in range(args.repeats)]
        window.shutdown()
        window.deleteLater()
    app.processEvents()
    base, filtered = statistics.median(without), statistics.median(with_filter)
    print(f"{args.events:,} events, median of {args.repeats}: without the filter {base * 1e9 / args.events:.0f} ns "
          f"per event, with it {filtered * 1e9 / args.events:.0f} ns per event "
          f"(+{(filtered - base) * 1e9 / args.events:.0f} ns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
