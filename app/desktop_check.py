"""Before the window opens on Linux/X11: name the system packages Qt's xcb plugin is missing, in one line.

Without them Qt prints "Could not load the Qt platform plugin xcb" and aborts, which tells a
person nothing they can act on. PySide6's wheels carry Qt itself but rely on the desktop's
X11 libraries; most desktops have them, minimal installs and containers often lack a few
(libxcb-cursor0 is the usual one since Qt 6.5).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# soname -> Debian/Ubuntu package (the names other distributions use are close; the message
# lists the libraries too).
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_CANNOT_OPEN = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")


def uses_xcb(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt will try its xcb (X11) plugin: asked for, or the default on a non-Wayland Linux desktop."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    platform = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if platform:
        return platform == "xcb"
    return environ.get("XDG_SESSION_TYPE") != "wayland" or not environ.get("WAYLAND_DISPLAY")


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames ldd reported as not found, in order, once each."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def missing_from_import_error(message: str) -> list[str]:
    """The soname in an ImportError such as "libEGL.so.1: cannot open shared object file"."""
    return _CANNOT_OPEN.findall(message)


def install_line(sonames: list[str]) -> str:
    """One line a person can act on: the packages to install, and the libraries they provide."""
    packages = sorted({DEBIAN_PACKAGES.get(name, name) for name in sonames})
    return (f"Lookalike's window needs system libraries that are not installed ({', '.join(sonames)}); "
            f"on Debian or Ubuntu: sudo apt-get install {' '.join(packages)}")


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_for_window(environ: dict[str, str] | None = None) -> list[str]:
    """Sonames Qt's xcb plugin cannot find here ([] when not using xcb, or when it cannot be told)."""
    if not uses_xcb(environ):
        return []
    plugin = xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    try:
        proc = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return missing_libraries(proc.stdout)
