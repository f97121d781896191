"""Space to photo on screen: the window's preview (a screen-sized draft first) against naive full decodes, on 12 MP JPEGs.

    .venv/bin/python tests/bench/bench_preview.py [--photos 6] [--rounds 3] [--screen 1920x1080]

The photos are 4000 x 3000 JPEGs (quality 92, about 5 MB, like a phone's) made here with
Pillow: a structured scene upscaled with sensor-like noise; every other one stored sideways
with EXIF orientation 6. The preview is app.preview.PreviewWindow on the offscreen platform,
as large as a ``--screen`` display (the draft is decoded for that size). The clock runs from
``open_at(row)`` (what Space calls) until the pane has painted the photo (a synchronous
repaint after its decode arrived), then from "1" (100 %) until every pixel is painted; and
the Right arrow to the next photo painted, after 0.3 s on each (the preview decodes the next
photo's draft meanwhile).

Peers in the same run, on the same files:
- "full first": the same window with the draft switched off (the whole photo decoded first);
- "QImageReader": what a simple Qt viewer does, QImageReader with its EXIF transform reading
  the whole file in the GUI thread, then a QPixmap scaled into a label (the window is frozen
  for all of it).
Medians over photos x rounds; each photo is read once before, so the page cache is warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FOLDER = Path(tempfile.gettempdir()) / "lookalike-bench-preview"


def make_photos(count: int, folder: Path = FOLDER) -> list[Path]:
    """``count`` 12 MP JPEGs (made once, kept in the temporary folder)."""
    import numpy as np
    from PIL import Image

    from tests import photos

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo-{i}-4000x3000.jpg"
        paths.append(path)
        if path.exists():
            continue
        base = photos.scene(900 + i, (1000, 750)).resize((4000, 3000), Image.Resampling.BICUBIC)
        rng = np.random.default_rng(i)
        noisy = np.asarray(base, np.int16) + rng.normal(0, 10, (3000, 4000, 3)).astype(np.int16)
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = "2024:06:0%d 10:00:00" % (i % 9 + 1)
        if i % 2:  # stored sideways, shown upright
            exif[0x0112] = 6
            image = image.transpose(Image.Transpose.ROTATE_90)
        image.save(path, quality=92, exif=exif.tobytes())
    return paths


def _wait(app, condition, timeout: float = 30.0) -> None:
    end = time.perf_counter() + timeout
    while not condition():
        app.processEvents()
        if time.perf_counter() > end:
            raise TimeoutError("the photo never came")
        time.sleep(0.0005)


def time_preview(app, paths: list[Path], rounds: int, screen: tuple[int, int], *, draft: bool) -> dict:
    """Seconds from open_at to the first paint of the photo, and from 100 % to every pixel painted."""
    import app.preview as preview

    preview.screen_fit = lambda widget=None: screen
    window = preview.PreviewWindow(lambda: len(paths), lambda row: (str(paths[row]), 0.93))
    window.resize(*screen)
    window.show()
    pane = window.pane
    if not draft:  # the naive peer: every pixel at once, and nothing decoded ahead
        pane.draft_first = False
        pane.shownChanged.disconnect(window._prefetch)
    first, full_after_zoom, result_arrows = [], [], []
    try:
        for _ in range(rounds):
            for row in range(len(paths)):
                _wait(app, lambda: not window._prefetcher.busy())
                window.drafts.clear()  # no head start: the decode is timed
                start = time.perf_counter()
                window.open_at(row)
                _wait(app, lambda: pane.shown is not None)
                pane.repaint()
                shown = time.perf_counter()
                first.append(shown - start)
                _wait(app, lambda: not window._prefetcher.busy())  # the next photo's draft: not timed
                zoom = time.perf_counter()
                pane.actual_size()
                _wait(app, pane.is_full_resolution)
                pane.repaint()
                done = time.perf_counter()
                full_after_zoom.append(done - zoom)
                _wait(app, lambda: not pane.decoder.busy())
        if draft:  # arrowing through: the next photo's draft was decoded while this one was looked at
            arrows = []
            window.open_at(0)
            for row in range(1, len(paths)):
                _wait(app, lambda: pane.shown is not None and not window._prefetcher.busy())
                time.sleep(0.3)  # the person looks at the photo
                start = time.perf_counter()
                window.step(1)
                _wait(app, lambda: pane.shown is not None)
                pane.repaint()
                arrows.append(time.perf_counter() - start)
            result_arrows = arrows
    finally:
        window.shutdown()
        window.close()
        window.deleteLater()
        app.processEvents()
    return {"first": first, "full": full_after_zoom, "arrow": result_arrows}


def time_qimagereader(app, paths: list[Path], rounds: int, screen: tuple[int, int]) -> list[float]:
    """The simple viewer: the whole file decoded in the GUI thread, scaled into a label."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImageReader, QPixmap
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    label.resize(*screen)
    label.show()
    times = []
    for _ in range(rounds):
        for path in paths:
            start = time.perf_counter()
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            image = reader.read()
            pixmap = QPixmap.fromImage(image).scaled(label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation)
            label.setPixmap(pixmap)
            label.repaint()
            times.append(time.perf_counter() - start)
    label.close()
    label.deleteLater()
    app.processEvents()
    return times


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return (f"median {statistics.median(values) * 1000:6.0f} ms   min {values[0] * 1000:5.0f}   "
            f"max {values[-1] * 1000:5.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--screen", default="1920x1080")
    args = parser.parse_args()
    screen = tuple(int(v) for v in args.screen.lower().split("x"))

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    paths = make_photos(args.photos)
    for path in paths:
        path.read_bytes()  # warm the page cache: the clock measures decoding, not the disk
    size_mb = statistics.mean(p.stat().st_size for p in paths) / 1e6
    print(f"{len(paths)} JPEGs 4000 x 3000 (12 MP, {size_mb:.1f} MB on average, half EXIF-rotated), "
          f"{args.rounds} rounds, screen {screen[0]} x {screen[1]}, {os.cpu_count()} cores")

    ours = time_preview(app, paths, args.rounds, screen, draft=True)
    naive = time_preview(app, paths, args.rounds, screen, draft=False)
    reader = time_qimagereader(app, paths, args.rounds, screen)
    print(f"preview, Space to draft on screen        {_ms(ours['first'])}")
    print(f"preview, 100 % to every pixel on screen  {_ms(ours['full'])}")
    print(f"preview, Right arrow to the next photo   {_ms(ours['arrow'])}  (decoded while the last was on show)")
    print(f"peer: full decode first, Space to photo  {_ms(naive['first'])}")
    print(f"peer: QImageReader in the GUI thread     {_ms(reader)}  (the window frozen throughout)")
    speedup = statistics.median(naive["first"]) / statistics.median(ours["first"])
    print(f"draft first is {speedup:.1f}x sooner on screen than a full decode")


if __name__ == "__main__":
    main()
