"""`lookalike --self-test`: decode, encode, store and search a few photos made on the spot; report versions and providers."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

PHOTOS = 20  # over engine.index.SMALL_UPDATE, so the decoder processes are exercised too


def _photo(seed: int, size=(480, 360)):
    """A structured scene (gradient, shapes, noise): different seeds give different photos."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(0, 1, height)[:, None, None]
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    pixels = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3))
    noise = np.kron(rng.normal(0, 30, (height // 24 + 1, width // 24 + 1, 3)), np.ones((24, 24, 1)))
    image = Image.fromarray(np.clip(pixels + noise[:height, :width], 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(20, 120))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(2) else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
    return image


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a missing optional part is reported, not fatal
        return f"missing ({type(exc).__name__})"
    return str(getattr(mod, "__version__", getattr(mod, "version", "?")))


class _Checks:
    def __init__(self, out):
        self.out = out
        self.failed: list[str] = []

    def step(self, name: str, fn):
        started = time.perf_counter()
        try:
            detail = fn()
        except Exception as exc:
            self.failed.append(name)
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}", file=self.out)
            traceback.print_exc(file=sys.stderr)
            return None
        print(f"ok    {name} ({time.perf_counter() - started:.1f} s){': ' + detail if detail else ''}", file=self.out)
        return detail


def run(out=None) -> int:
    """0 when every step passed, 1 otherwise; one line per step on ``out`` (stdout)."""
    out = out or sys.stdout
    from engine import __version__

    print(f"Lookalike {__version__} self-test; Python {platform.python_version()} on {platform.platform()}"
          f"{' (bundle)' if getattr(sys, 'frozen', False) else ''}", file=out)
    import onnxruntime

    from engine.encoder import choose_providers

    chosen, why = choose_providers("auto")
    print(f"ONNX Runtime {onnxruntime.__version__}; providers available: "
          f"{', '.join(onnxruntime.get_available_providers())}; chosen: {chosen[0]} ({why})", file=out)
    rawpy_version = _version("rawpy")
    libraw = ""
    if not rawpy_version.startswith("missing"):
        import rawpy

        version = getattr(rawpy, "libraw_version", None)
        libraw = f" (LibRaw {'.'.join(map(str, version))})" if version else ""
    print("Versions: " + ", ".join(f"{name} {_version(module)}" for name, module in (
        ("numpy", "numpy"), ("Pillow", "PIL"), ("pillow-heif", "pillow_heif"), ("onnx", "onnx"),
        ("numba", "numba"), ("PySide6", "PySide6"))) + f", rawpy {rawpy_version}{libraw}", file=out)

    checks = _Checks(out)
    saved_env = {name: os.environ.get(name) for name in ("LOOKALIKE_CACHE_DIR", "QT_QPA_PLATFORM")}
    try:
        with tempfile.TemporaryDirectory(prefix="lookalike-self-test-") as tmp:
            _run_checks(checks, Path(tmp))
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if checks.failed:
        print(f"Self-test FAILED: {', '.join(checks.failed)}", file=out)
        return 1
    print("Self-test passed", file=out)
    return 0


def _run_checks(checks: _Checks, tmp: Path) -> None:
    """Each step in order; a failed step is reported and the next ones that can still run do."""
    os.environ["LOOKALIKE_CACHE_DIR"] = str(tmp / "cache")  # nothing left behind
    folder = tmp / "photos"
    state: dict = {}

    def make_photos():
        folder.mkdir()
        for seed in range(PHOTOS):
            _photo(seed).save(folder / f"photo{seed:02d}.jpg", quality=90)
        from PIL import Image

        # An edited copy of photo 3 (smaller, brighter): the search must find its original.
        with Image.open(folder / "photo03.jpg") as original:
            copy = original.resize((360, 270)).point(lambda v: min(255, int(v * 1.1)))
        copy.save(tmp / "query.jpg", quality=80)
        return f"{PHOTOS} photos in {folder}"

    def decode():
        from engine.imageio import decode_path

        decoded = decode_path(folder / "photo00.jpg")
        assert decoded.pixels.shape == (224, 224, 3) and decoded.thumbnail
        return f"{decoded.width}x{decoded.height} -> model input {decoded.pixels.shape}"

    def model():
        from engine.default_model import build_default_model, shipped_default_model

        state["model"] = build_default_model(64, quiet=True)
        return f"{state['model'].name} ({'shipped' if shipped_default_model() else 'built'})"

    def encode():
        from engine.encoder import Encoder
        from engine.imageio import decode_path

        encoder = Encoder(state["model"])
        pixels = np.stack([decode_path(folder / f"photo0{i}.jpg").pixels for i in range(2)])
        codes, features = encoder.encode(pixels)
        assert len(codes) == 2 and np.isfinite(features).all()
        return f"on {encoder.provider}"

    def index():
        from engine.index import Indexer
        from engine.library import Library

        state["library"] = library = Library(tmp / "library")
        library.install_model(state["model"])
        report = Indexer(library, workers=1).run([folder])
        assert report.added == PHOTOS and not report.skipped, report.as_dict()
        return f"{report.added} photos stored in {tmp / 'library'} (1 decoder process)"

    def search():
        hits = state["library"].search_file(tmp / "query.jpg")
        best = Path(hits[0].path).name
        assert best == "photo03.jpg", [Path(h.path).name for h in hits[:5]]
        return f"an edited copy finds its original first ({best}, Hamming {hits[0].hamming})"

    def kernels():
        from engine import search

        backend = search.warm_up()  # numba's kernels, compiled once into the user cache folder
        if backend == "numba":
            hits = state["library"].search_file(tmp / "query.jpg")
            assert Path(hits[0].path).name == "photo03.jpg"
        return f"searches run on {backend}"

    def window():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # load Qt and its plugins, show nothing
        from PySide6.QtCore import QSettings, qInstallMessageHandler
        from PySide6.QtGui import QIcon
        from PySide6.QtWidgets import QApplication

        from app.icons import icon_path

        # The offscreen platform's one notice about window size hints is not a finding.
        qInstallMessageHandler(lambda mode, context, message: None if "propagateSizeHints" in message
                               else print(message, file=sys.stderr))
        app = QApplication.instance() or QApplication(["lookalike"])
        pixmap = QIcon(str(icon_path("app"))).pixmap(64, 64)
        assert not pixmap.isNull(), "the SVG icon did not render (Qt's svg plugin missing?)"
        if "library" not in state:
            return "Qt loads, the SVG icons render"
        from app.main_window import MainWindow

        started = time.perf_counter()
        settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
        main_window = MainWindow(tmp / "library", settings=settings, warm_up=False)
        main_window.show()
        app.processEvents()
        shown = time.perf_counter() - started
        main_window.close()
        app.processEvents()
        return f"Qt loads, the SVG icons render, the main window opens on the library in {shown:.2f} s"

    for name, fn in (("photos", make_photos), ("decode", decode), ("model", model), ("encode", encode),
                     ("index", index), ("search", search), ("search kernels", kernels), ("window", window)):
        if checks.step(name, fn) is None and name in ("photos", "model"):
            break
    if "library" in state:
        state["library"].close()
