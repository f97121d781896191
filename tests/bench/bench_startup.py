"""Start-up: process start to an interactive main window on a 100,000-photo library, against bare Qt.

    .venv/bin/python tests/bench/bench_startup.py [--size 100000] [--repeats 7] [--importtime]

Each run is a fresh Python process (cold interpreter, warm disk cache) started from here;
the clock runs from just before the process is spawned until the child reports that its
main window is shown, the event loop is running (a timer fired inside ``exec``) and the
status bar shows the library's photo count. The child is the real start-up path,
``app.main.create_window``, on the offscreen platform, with the library given by
``$LOOKALIKE_LIBRARY`` and its settings in a scratch folder (nothing of the person's is
read or written). The peer, run alternately with it, is bare PySide6: import QtWidgets,
QApplication, a QMainWindow shown, one processEvents. Each child also reports when its
imports were done and when the window was constructed, so a slow run shows where.

The library is bench_library's synthetic one (real catalog rows and arrays, no pixels),
built once and shared with it. ``--importtime`` adds the heaviest imports of one child run
(``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TARGET_S = 2.0
LIBRARIES = Path(tempfile.gettempdir()) / "lookalike-bench-libraries"  # bench_library's folder

# time.monotonic() is CLOCK_MONOTONIC on Linux and macOS: one clock for parent and child.
CHILD = r"""
import time
marks = {"python": time.monotonic()}
import sys
from PySide6 import QtWidgets  # noqa: F401
import app.main, app.main_window, app.icons, app.theme  # noqa: E401,F401
marks["imports"] = time.monotonic()
from PySide6.QtCore import QTimer
from app.main import create_window
application, window = create_window([sys.argv[0]])
marks["window"] = time.monotonic()

def check():
    if window.isVisible() and " photos" in window.library_status.text():
        marks["ready"] = time.monotonic()
        timer.stop()
        print("READY", " ".join(f"{k}={v:.6f}" for k, v in marks.items()), "|", window.library_status.text(),
              flush=True)
        window.close()

timer = QTimer()
timer.timeout.connect(check)
timer.start(1)
application.exec()
"""

PEER = r"""
import time
marks = {"python": time.monotonic()}
from PySide6.QtWidgets import QApplication, QMainWindow
marks["imports"] = time.monotonic()
app = QApplication([])
w = QMainWindow()
w.show()
marks["window"] = time.monotonic()
app.processEvents()
marks["ready"] = time.monotonic()
print("READY", " ".join(f"{k}={v:.6f}" for k, v in marks.items()), flush=True)
"""


def child_env(library: Path, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", LOOKALIKE_LIBRARY=str(library), XDG_CONFIG_HOME=str(scratch))
    env.pop("LOOKALIKE_THEME", None)
    return env


def run_once(code: str, env: dict[str, str], extra: list[str] = ()) -> dict:
    """Seconds from spawn to each mark the child reports (``ready`` last)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, *extra, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    seen = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    if not line.startswith("READY"):
        raise RuntimeError(f"the child did not get ready (exit {proc.returncode}):\n{stderr[-3000:]}")
    marks = {k: float(v) - start for k, v in re.findall(r"(\w+)=([\d.]+)", line.split("|")[0])}
    marks["seen"] = seen - start
    marks["status"] = line.split("|", 1)[1].strip() if "|" in line else ""
    marks["stderr"] = stderr
    return marks


def heaviest_imports(code: str, env: dict[str, str], top: int = 15) -> list[tuple[float, str]]:
    """(cumulative seconds, module) of the top-level imports that took longest, from -X importtime."""
    stderr = run_once(code, env, ["-X", "importtime"])["stderr"]
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 3:  # top level and one level down
            rows.append((int(m.group(2)) / 1e6, m.group(3) + m.group(4)))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()

    from engine.default_model import build_default_model
    from tests.bench.bench_library import build

    library = LIBRARIES / f"lib-{args.size}"
    if not (library / "catalog.sqlite3").exists():
        started = time.monotonic()
        print(f"building a synthetic library of {args.size:,} photos in {library} ...", flush=True)
        build(library, build_default_model(64), args.size)
        print(f"  built in {time.monotonic() - started:.0f} s")

    with tempfile.TemporaryDirectory(prefix="lookalike-startup-") as scratch:
        env = child_env(library, Path(scratch))
        run_once(CHILD, env)  # warm the disk cache and numba's cache, as any second start
        ours, peer = [], []
        for _ in range(args.repeats):
            ours.append(run_once(CHILD, env))
            peer.append(run_once(PEER, env))
        status = ours[-1]["status"]

        def column(runs, key):
            values = [r[key] for r in runs]
            return statistics.median(values), min(values)

        print(f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.repeats} runs each, "
              f"alternating; library: {status}\n")
        print("| process | python up s | imports done s | window built s | interactive s (median / min) |")
        print("|---|---|---|---|---|")
        for name, runs in (("Lookalike", ours), ("bare PySide6 window (peer)", peer)):
            cells = [f"{column(runs, k)[0]:.3f}" for k in ("python", "imports", "window")]
            median, fastest = column(runs, "ready")
            print(f"| {name} | {' | '.join(cells)} | {median:.3f} / {fastest:.3f} |")
        ratio = column(ours, "ready")[0] / column(peer, "ready")[0]
        verdict = "met" if column(ours, "ready")[0] < TARGET_S else "MISSED"
        print(f"\nLookalike / peer (median): {ratio:.2f}x; target {TARGET_S:.0f} s: {verdict}")

        if args.importtime:
            print("\nheaviest imports of one Lookalike start (cumulative s, -X importtime):")
            for seconds, module in heaviest_imports(CHILD, env):
                print(f"  {seconds:6.3f}  {module}")


if __name__ == "__main__":
    main()
