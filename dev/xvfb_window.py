"""Try the real window as a person would: Xvfb, a window manager, the app, keys and clicks by xdotool, screenshots.

    dev/xvfb-window [--library DIR] [--out DIR] [--python PY] [--screen 1400x900] [STEP ...]

Starts an X server (Xvfb) on a free display and openbox on it, opens Lookalike there (the
xcb platform, as on a desktop; ``python -m app``, or ``./run-app`` without ``--python`` and
without a ``.venv/``), waits for its window, runs the steps in order, then quits the app
(Ctrl+Q) and stops everything it started. Settings live in a fresh folder for each run
(``--config DIR`` to keep them between runs, for "reopen the app" checks). Steps, one
argument each:

    wait SECONDS          let the app work (searches, thumbnails)
    key KEY...            xdotool key names to the window: ctrl+v alt+Left ctrl+plus Escape
    type TEXT             typed into the focused widget
    click BUTTON [X Y]    a mouse button (1 left, 3 right, 8 back, 9 forward) at X,Y in the window
    resize W H            the window's size
    clip PATH             the clipboard holds PATH as a file (what a file manager's Copy puts there)
    clip-image PATH       the clipboard holds PATH's pixels (what a browser's Copy image puts there)
    shot NAME             OUT/NAME.png, the window with its frame
    restart               quit the app (Ctrl+Q) and open it again with the same settings

Example: dev/xvfb-window --library /tmp/lib "clip /tmp/a.jpg" "click 1 700 300" "key ctrl+v" "wait 3" "shot pasted"
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"Xvfb": "xvfb", "openbox": "openbox", "xdotool": "xdotool", "import": "imagemagick"}

# A clipboard owner: X has no clipboard of its own, a program holds the data until another takes it.
CLIPBOARD_OWNER = r"""
import sys
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QGuiApplication, QImage
app = QGuiApplication(sys.argv[:1])
mime = QMimeData()
if sys.argv[1] == "image":
    mime.setImageData(QImage(sys.argv[2]))
else:
    mime.setUrls([QUrl.fromLocalFile(sys.argv[2])])
    mime.setText(sys.argv[2])
QGuiApplication.clipboard().setMimeData(mime)
print("ready", flush=True)
app.exec()
"""


class Session:
    """The processes of one run (each stopped by its own id at the end) and the app's window."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="lookalike-xvfb-"))
        self.config = Path(args.config) if args.config else self.scratch / "config"
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ)
        self.window = ""

    # ------------------------------------------------------------------ processes

    def start_x(self) -> None:
        read, write = os.pipe()
        width, height = self.args.screen.split("x")
        self.processes["xvfb"] = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=open(self.scratch / "xvfb.log", "w"))
        os.close(write)
        with os.fdopen(read) as handle:
            number = handle.readline().strip()  # Xvfb writes its display number once it accepts clients
        if not number:
            raise SystemExit(f"dev/xvfb-window: Xvfb did not start (see {self.scratch / 'xvfb.log'})")
        self.env.update(DISPLAY=f":{number}", QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(self.config),
                        XDG_SESSION_TYPE="x11")
        self.env.pop("WAYLAND_DISPLAY", None)
        self.processes["wm"] = subprocess.Popen(["openbox"], env=self.env, stdout=subprocess.DEVNULL,
                                                stderr=open(self.scratch / "openbox.log", "w"))
        time.sleep(0.5)
        print(f"X server on :{number} with openbox; logs in {self.scratch}")

    def app_command(self) -> list[str]:
        python = self.args.python or (str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else "")
        if python:
            return [python, "-m", "app", *self.args.app_args]
        return [str(ROOT / "run-app"), *self.args.app_args]

    def start_app(self) -> None:
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        if self.args.library:
            env["LOOKALIKE_LIBRARY"] = str(Path(self.args.library).resolve())
        log = open(self.scratch / "app.log", "a")
        self.processes["app"] = subprocess.Popen(self.app_command(), env=env, cwd=ROOT, stdout=log, stderr=log)
        self.window = self.wait_for_window()
        print(f"window {self.window} up (app log {self.scratch / 'app.log'})")
        time.sleep(self.args.settle)

    def wait_for_window(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["app"].poll() is not None:
                raise SystemExit(f"dev/xvfb-window: the app exited with {self.processes['app'].returncode}; "
                                 f"see {self.scratch / 'app.log'}")
            found = self.xdotool("search", "--onlyvisible", "--name", "^Lookalike", check=False)
            if found:
                window = found.split()[0]
                self.xdotool("windowactivate", "--sync", window, check=False)
                return window
            time.sleep(0.3)
        raise SystemExit("dev/xvfb-window: no Lookalike window within a minute")

    def quit_app(self) -> None:
        app = self.processes.pop("app", None)
        if app is None:
            return
        if app.poll() is None:
            self.xdotool("key", "--window", self.window, "ctrl+q", check=False)
            try:
                app.wait(20)
            except subprocess.TimeoutExpired:
                app.terminate()
                app.wait(10)
        print(f"app exited with {app.returncode}")

    def stop(self) -> None:
        self.quit_app()
        for name in ("clipboard", "wm", "xvfb"):
            process = self.processes.pop(name, None)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()

    # ------------------------------------------------------------------ steps

    def xdotool(self, *words: str, check: bool = True) -> str:
        done = subprocess.run(["xdotool", *words], env=self.env, capture_output=True, text=True)
        if check and done.returncode:
            raise SystemExit(f"dev/xvfb-window: xdotool {' '.join(words)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def set_clipboard(self, kind: str, path: str) -> None:
        old = self.processes.pop("clipboard", None)
        if old is not None and old.poll() is None:
            old.terminate()
            old.wait(10)
        python = self.args.python or sys.executable
        target = os.path.abspath(os.path.expanduser(path))
        owner = subprocess.Popen([python, "-c", CLIPBOARD_OWNER, kind, target], env=self.env,
                                 stdout=subprocess.PIPE, text=True)
        owner.stdout.readline()
        self.processes["clipboard"] = owner

    def step(self, text: str) -> None:
        verb, *words = shlex.split(text)
        print(f"> {text}")
        if verb == "wait":
            time.sleep(float(words[0]))
        elif verb == "key":
            self.xdotool("windowactivate", "--sync", self.window, check=False)
            self.xdotool("key", "--clearmodifiers", "--delay", "80", *words)
            time.sleep(0.3)
        elif verb == "type":
            self.xdotool("type", "--delay", "30", " ".join(words))
        elif verb == "click":
            if len(words) >= 3:
                self.xdotool("mousemove", "--window", self.window, words[1], words[2])
            self.xdotool("click", words[0])
            time.sleep(0.3)
        elif verb == "resize":
            self.xdotool("windowsize", "--sync", self.window, words[0], words[1], check=False)
            time.sleep(0.5)
        elif verb in ("clip", "clip-image"):
            self.set_clipboard("image" if verb == "clip-image" else "file", words[0])
        elif verb == "shot":
            target = self.out / f"{words[0]}.png"
            frame = self.xdotool("search", "--onlyvisible", "--name", "^Lookalike", check=False).split()
            subprocess.run(["import", "-window", "root", str(target)], env=self.env, check=True)
            print(f"  {target} ({len(frame)} Lookalike window(s) on screen)")
        elif verb == "restart":
            self.quit_app()
            self.start_app()
        else:
            raise SystemExit(f"dev/xvfb-window: unknown step {verb!r} (see --help)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--library", help="the library to open ($LOOKALIKE_LIBRARY for the app)")
    parser.add_argument("--out", default="/tmp/lookalike-xvfb", help="where screenshots go")
    parser.add_argument("--python", help="the interpreter to run `-m app` with (default: .venv/bin/python)")
    parser.add_argument("--config", help="the settings folder (XDG_CONFIG_HOME), kept; default: a fresh one")
    parser.add_argument("--screen", default="1400x900", help="the X screen's size")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait once the window is up")
    parser.add_argument("--app-arg", dest="app_args", action="append", default=[],
                        help="an argument for the app (repeat), e.g. a photo to search for")
    parser.add_argument("steps", nargs="*", help="steps, one argument each (see above)")
    args = parser.parse_args(argv)
    missing = [f"{tool} (apt-get install {package})" for tool, package in TOOLS.items() if not shutil.which(tool)]
    if missing:
        print("dev/xvfb-window: missing " + ", ".join(missing), file=sys.stderr)
        return 3
    session = Session(args)
    try:
        session.start_x()
        session.start_app()
        for step in args.steps:
            session.step(step)
    finally:
        session.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
