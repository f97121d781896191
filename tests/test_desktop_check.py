"""A desktop missing Qt's X11 libraries gets one line naming the packages, not Qt's abort."""

import os
import subprocess
import sys

from app.desktop_check import install_line, missing_for_window, missing_libraries, uses_xcb

# What ldd prints for PySide6's xcb plugin on a minimal Debian without libxcb-cursor0 and libxcb-icccm4.
LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd4f5f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f8a1c000000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f8a1bfd0000)
\tlibxcb-cursor.so.0 => not found
"""


def test_ldd_output_gives_the_missing_libraries_once_each():
    assert missing_libraries(LDD_MISSING) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    assert missing_libraries("\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x1)\n") == []


def test_the_line_names_debian_packages_and_the_libraries():
    line = install_line(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libodd.so.9"])
    assert "sudo apt-get install libodd.so.9 libxcb-cursor0 libxcb-icccm4" in line
    assert "libxcb-cursor.so.0" in line and "\n" not in line


def test_only_the_xcb_platform_is_checked():
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}) == sys.platform.startswith("linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"})
    assert not uses_xcb({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"})
    assert missing_for_window({"QT_QPA_PLATFORM": "offscreen"}) == []


def test_the_app_prints_the_packages_and_exits_3_instead_of_aborting(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ldd").write_text("#!/bin/sh\nprintf '\\tlibxcb-cursor.so.0 => not found\\n'\n")
    (fake / "ldd").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", QT_QPA_PLATFORM="xcb",
               DISPLAY=":0", LOOKALIKE_LIBRARY=str(tmp_path / "library"))
    proc = subprocess.run([sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "lookalike: Lookalike's window needs system libraries that are not installed (libxcb-cursor.so.0); "
        "on Debian or Ubuntu: sudo apt-get install libxcb-cursor0"]
