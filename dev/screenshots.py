"""Screenshots of every screen for the README: a demo library of sample photos, each screen rendered offscreen.

    dev/screenshots [--out docs/screenshots] [--scale 2] [--keep]

Builds a demo photo folder from the photos bundled with scikit-image and scikit-learn
(a cat, an espresso, a rocket, a temple, ...) plus edited copies of each (cropped,
mirrored, warmer, smaller), indexes it into a demo library with the default model, labels
a few pairs, then drives the real windows on Qt's offscreen platform and saves
``QWidget.grab()`` of each as PNG: the main window empty and with the results of a
dropped photo (light and dark, and small with its Advanced section open), the result menu, the
results refined by marks, a result's preview and its comparison with the query, every page of
the indexing wizard, the
pair-labeling view, the labels list and the retrain dialog (light and dark). A screen whose module is not
there (yet) is skipped with a note, and the others are still made. Takes about a minute.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO = Path(tempfile.gettempdir()) / "lookalike-demo"
MARKER = ".lookalike-demo"  # only a folder holding this is ever deleted
WINDOW = (1180, 760)

# sample -> album; the bundled photos that look like photos (the others are diagrams).
SAMPLES = {
    "chelsea": "Home", "coffee": "Home", "astronaut": "Trips", "rocket": "Trips", "china": "Trips",
    "flower": "Garden", "motorcycle": "Trips", "hubble_deep_field": "Sky", "moon": "Sky",
    "immunohistochemistry": "Lab", "retina": "Lab", "coins": "Lab", "camera": "Home", "clock": "Home",
    "brick": "Textures", "grass": "Garden", "gravel": "Garden",
}
CAMERA = ("chelsea", "coffee", "rocket", "china", "flower", "motorcycle", "astronaut", "hubble_deep_field")


# ------------------------------------------------------------------ demo photos


def sample_image(name: str):
    """A bundled sample photo as an RGB PIL image (none needs a download)."""
    import numpy as np
    from PIL import Image

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    elif name == "motorcycle":
        from skimage import data

        array = data.stereo_motorcycle()[0]
    else:
        from skimage import data

        array = getattr(data, name)()
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (255 * (array - array.min()) / max(float(array.max() - array.min()), 1e-9)).astype(np.uint8)
    image = Image.fromarray(array)
    return image.convert("RGB")


def camera_original(image):
    """The photo as a 4000 x 3000 camera file: cropped to 4:3 and upscaled."""
    from PIL import Image

    width, height = image.size
    if width * 3 > height * 4:
        crop = height * 4 // 3
        image = image.crop(((width - crop) // 2, 0, (width - crop) // 2 + crop, height))
    else:
        crop = width * 3 // 4
        image = image.crop((0, (height - crop) // 2, width, (height - crop) // 2 + crop))
    return image.resize((4000, 3000), Image.Resampling.BICUBIC)


def edits(image) -> dict[str, object]:
    """Edited copies a person's folders hold: a crop, a mirror, a warmer print, a small re-save."""
    from PIL import Image, ImageEnhance, ImageOps

    width, height = image.size
    cropped = image.crop((width // 8, height // 10, width - width // 6, height - height // 8))
    r, g, b = image.split()
    warm = ImageEnhance.Brightness(
        Image.merge("RGB", (r.point(lambda v: min(255, int(v * 1.12))), g, b.point(lambda v: int(v * 0.85))))
    ).enhance(1.08)
    small = image.resize((max(1, width * 2 // 5), max(1, height * 2 // 5)))
    return {"cropped": cropped, "mirrored": ImageOps.mirror(image), "warm": warm, "small": small}


def make_demo_photos(root: Path) -> dict:
    """The demo folders: originals in albums, edits in Edited/, a query in Downloads/."""
    from PIL import Image

    pictures = root / "Pictures"
    originals: dict[str, Path] = {}
    edited: dict[str, dict[str, Path]] = {}
    for name, album in SAMPLES.items():
        image = sample_image(name)
        path = pictures / album / f"{name.replace('_', '-')}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=92)
        originals[name] = path
        edited[name] = {}
        for kind, copy in edits(image).items():
            target = pictures / "Edited" / f"{path.stem}-{kind}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            copy.save(target, quality=60 if kind == "small" else 88)
            edited[name][kind] = target
    # A camera's full-size originals (12 MP), which the exported copies above were made from;
    # they also make the wizard's indexing last long enough to be seen under way.
    (pictures / "Camera").mkdir()
    for number, name in enumerate(CAMERA):
        exif = Image.Exif()  # what a camera writes: the preview and compare panes show it
        exif[0x010F], exif[0x0110] = "FUJIFILM", "X-T30"
        exif.get_ifd(0x8769)[0x9003] = f"2024:05:{10 + number:02d} 16:{7 * number:02d}:31"
        camera_original(sample_image(name)).save(pictures / "Camera" / f"IMG_{2041 + 7 * number}.jpg", quality=90,
                                                 exif=exif.tobytes())
    # The stereo pair's other view: a second shot of the same scene, as people take.
    from skimage import data

    Image.fromarray(data.stereo_motorcycle()[1]).convert("RGB").save(pictures / "Trips" / "motorcycle-2.jpg",
                                                                     quality=92)
    # The query: the espresso as a chat app would send it back, tilted, cropped and small.
    coffee = sample_image("coffee").rotate(5, resample=Image.Resampling.BICUBIC)
    width, height = coffee.size
    query = coffee.crop((width // 10, height // 10, width - width // 12, height - height // 9)).resize((420, 300))
    downloads = root / "Downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    query_path = downloads / "espresso-from-chat.jpg"
    query.save(query_path, quality=70)
    return {"pictures": pictures, "originals": originals, "edited": edited, "query": query_path}


def build_library(path: Path, photos: dict) -> None:
    """Index the demo photos with the default model and label a few pairs."""
    from engine.default_model import build_default_model
    from engine.index import Indexer
    from engine.labels import import_csv
    from engine.library import Library

    with Library(path) as library:
        library.install_model(build_default_model(64, quiet=True))
        report = Indexer(library, workers=0).run([photos["pictures"]])
        if report.added == 0:
            raise RuntimeError(f"the demo library indexed nothing: {report}")
        pairs = []
        names = list(photos["originals"])
        for i, name in enumerate(names):
            for kind in ("cropped", "mirrored", "warm", "small")[: 1 + i % 3]:
                pairs.append((photos["originals"][name], photos["edited"][name][kind], "similar"))
            other = names[(i + 3) % len(names)]
            pairs.append((photos["originals"][name], photos["originals"][other], "dissimilar"))
        table = path.parent / "labels.csv"
        with table.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["a", "b", "label"])
            writer.writerows([str(a), str(b), label] for a, b, label in pairs)
        result = import_csv(library.store, table, source="demo")
        if result.problems:
            raise RuntimeError(f"demo labels: {result.problems[:3]}")


# ------------------------------------------------------------------ driving the windows


class Shooter:
    """Saves grabs of widgets and keeps a list of what was made and what was skipped."""

    def __init__(self, app, out: Path):
        self.app, self.out = app, out
        self.made: list[Path] = []
        self.skipped: list[tuple[str, str]] = []

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                print(f"  (gave up waiting for {what or 'the screen'} after {timeout:.0f} s)", flush=True)
                return False
            self.app.processEvents()
            time.sleep(0.01)
        return True

    def settle(self, seconds: float = 0.2) -> None:
        """Let queued events (repaints, palette changes, loaded images) be handled."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def save(self, widget, name: str) -> None:
        focus = widget.focusWidget()
        if focus is not None and widget.isWindow() and hasattr(widget, "menuBar"):
            focus.clearFocus()  # no text cursor blinking in a main window's spin box
        self.settle()
        path = self.out / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise RuntimeError(f"could not write {path}")
        self.made.append(path)
        print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)

    def run(self, name: str, shoot: Callable[[], None]) -> None:
        try:
            shoot()
        except ModuleNotFoundError as exc:
            self.skipped.append((name, f"module {exc.name} is not there yet"))
        except Exception as exc:  # noqa: BLE001 -- one broken screen must not cost the others
            traceback.print_exc()
            self.skipped.append((name, f"{type(exc).__name__}: {exc}"))


def make_window(library: Path, settings_dir: Path):
    from PySide6.QtCore import QSettings

    from engine.default_model import build_default_model
    from app.main_window import MainWindow

    settings = QSettings(str(settings_dir / f"{library.name}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(library, settings=settings, warm_up=False, wizard_options={
        "model_provider": lambda: build_default_model(64, quiet=True), "indexer_options": {"workers": 0}})
    window.resize(*WINDOW)
    window.show()
    return window


def drop_file(window, path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:
        enter = QDragEnterEvent(QPointF(60, 60), *args)  # PySide6 >= 6.12 (where a QPoint is deprecated)
    except TypeError:
        enter = QDragEnterEvent(QPoint(60, 60), *args)  # before 6.12
    QApplication.sendEvent(window, enter)
    QApplication.sendEvent(window, QDropEvent(QPointF(60, 60), *args))


def shoot_empty_and_wizard(shot: Shooter, scratch: Path, photos: dict) -> None:
    window = make_window(scratch / "new-library", scratch)
    try:
        shot.wait(window.is_empty_state, what="the empty state")
        shot.save(window, "main-empty")
        window.open_wizard()
        wizard = window.wizard
        wizard.resize(760, 540)
        pictures = photos["pictures"]
        for album in ("Camera", "Home", "Trips", "Garden"):
            wizard.folders_page.add_folder(pictures / album)
        number = 1
        shot.save(wizard, f"wizard-{number}-folders")
        while wizard.currentPage() is not wizard.progress_page:
            wizard.next()
            number += 1
            page = wizard.currentPage()
            if page is wizard.progress_page:
                break
            # A counting page is ready when its count is in; any page when it is complete.
            shot.wait(lambda page=page: getattr(page, "count", 0) is not None and page.isComplete(), timeout=20,
                      what=f"wizard page {number}")
            shot.save(wizard, f"wizard-{number}-{_slug(page.title()) or page.__class__.__name__.lower()}")
        progress = wizard.progress_page
        # Mid-run is the view worth showing: a third done, rate and time left on screen.
        shot.wait(lambda: progress.bar.maximum() > 1 and progress.bar.value() >= progress.bar.maximum() // 3
                  or progress.isComplete(), timeout=60, what="indexing to get going")
        shot.save(wizard, f"wizard-{number}-progress")
        progress.cancel()
        shot.wait(progress.isComplete, timeout=60, what="the indexing to stop")
    finally:
        window.close()


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())[:30]


def shoot_results(shot: Shooter, library: Path, scratch: Path, photos: dict) -> None:
    from app.theme import Theme

    window = make_window(library, scratch)
    try:
        shot.wait(lambda: " photos" in window.library_status.text(), what="the library")
        drop_file(window, photos["query"])
        shot.wait(lambda: window.model.rowCount() > 0, what="the results")
        visible = min(window.model.rowCount(), 15)
        window.grab()  # paints the grid, which asks for the thumbnails
        shot.wait(lambda: all(window.model.thumbnail_loaded(r) for r in range(visible))
                  and window.query_label.pixmap() is not None and not window.query_label.pixmap().isNull(),
                  timeout=20, what="the thumbnails")
        shot.save(window, "main-results")

        index = window.model.index(1)
        menu = window.result_menu(index)
        menu.adjustSize()
        shot.save(menu, "result-menu")
        menu.deleteLater()

        dark = Theme(shot.app, "dark")
        shot.settle(0.3)
        shot.save(window, "main-results-dark")
        dark.deleteLater()
        Theme(shot.app, "light")
        shot.settle(0.2)

        # A small window (800 x 600) with the Advanced section open: the grid keeps three columns
        panel = getattr(window, "search_panel", None)
        if panel is not None:
            window.resize(800, 600)
            panel.advanced.set_open(True)
            shot.settle(0.3)
            window.grab()
            visible = min(window.model.rowCount(), 9)
            shot.wait(lambda: all(window.model.thumbnail_loaded(r) for r in range(visible)), timeout=20,
                      what="the thumbnails")
            shot.save(window, "main-small")
            panel.advanced.set_open(False)
            window.resize(*WINDOW)
            shot.settle(0.3)

        # Marks refine the results at once: one similar, one dissimilar (which leaves the list)
        if hasattr(window, "mark_results"):
            paths = [window.model.item(row).path for row in range(window.model.rowCount())]
            similar = next((p for p in paths if "IMG_" in p), paths[3])  # a coffee under a camera name
            dissimilar = next((p for p in paths if "motorcycle" in p), paths[2])
            for path, label in ((similar, 1), (dissimilar, -1)):
                window.mark_results([path], label)
                shot.wait(window.results_are_current, what="the refined results")
            window.grab()
            visible = min(window.model.rowCount(), 15)
            shot.wait(lambda: all(window.model.thumbnail_loaded(r) for r in range(visible)), timeout=20,
                      what="the thumbnails")
            shot.save(window, "main-refined")
    finally:
        window.close()


def shoot_preview_compare(shot: Shooter, library: Path, scratch: Path, photos: dict) -> None:
    """The full-size preview of a result (Space), and the query compared with it (C), zoomed in."""
    from PySide6.QtCore import QPointF

    window = make_window(library, scratch)
    try:
        shot.wait(lambda: " photos" in window.library_status.text(), what="the library")
        drop_file(window, photos["query"])
        shot.wait(lambda: window.model.rowCount() > 0, what="the results")
        paths = [window.model.item(row).path for row in range(window.model.rowCount())]
        row = next((r for r, p in enumerate(paths) if "IMG_" in p), 0)  # the espresso as the camera took it
        window.preview_result(row)
        preview = window.preview
        preview.resize(*WINDOW)
        shot.wait(lambda: preview.pane.shown is not None, what="the preview")
        shot.save(preview, "preview")
        preview.close()

        compare = window.compare_results([row])
        compare.resize(*WINDOW)
        shot.wait(lambda: all(pane.info is not None for pane in compare.panes), what="the compared photos")
        first = compare.panes[0]
        first.zoom_by(2.5, QPointF(first.width() * 0.45, first.height() * 0.55))  # every pane follows
        shot.wait(lambda: all(pane.shown is not None and (pane.is_full_resolution() or not pane.decoder.busy())
                              for pane in compare.panes), what="every pixel")
        shot.save(compare, "compare")
        compare.close()
    finally:
        window.close()


def shoot_acting(shot: Shooter, library: Path, scratch: Path, photos: dict) -> None:
    """Select all but the best among a photo's copies, the trash question, the Duplicates view."""
    window = make_window(library, scratch)
    try:
        shot.wait(lambda: " photos" in window.library_status.text(), what="the library")
        original = photos["originals"]["coffee"]
        window.search(str(original))
        shot.wait(lambda: window.results_are_current() and window.model.rowCount() > 0, what="the results")
        camera = photos["pictures"] / "Camera" / f"IMG_{2041 + 7 * CAMERA.index('coffee')}.jpg"
        copies = [str(original), str(camera)] + [str(p) for p in photos["edited"]["coffee"].values()]
        window.file_actions.select_all_but_best([p for p in copies if window.model.row_of(p) >= 0])
        shot.wait(lambda: window.model.keeper() is not None and not window.file_actions.is_choosing(),
                  what="the keeper")
        window.grab()
        visible = min(window.model.rowCount(), 15)
        shot.wait(lambda: all(window.model.thumbnail_loaded(r) for r in range(visible)), timeout=20,
                  what="the thumbnails")
        shot.save(window, "main-keep-best")
        window.file_actions.trash_selected()
        runner = window.file_actions.runner
        shot.wait(lambda: runner.confirmation is not None, what="the trash question")
        runner.confirmation.adjustSize()
        shot.save(runner.confirmation, "trash-confirm")
        runner.confirmation.reject()  # nothing moves
        shot.wait(lambda: not runner.is_busy(), what="the question to close")

        dialog = window.open_duplicates()
        dialog.resize(900, 560)
        dialog.find()
        shot.wait(lambda: not dialog.is_running(), timeout=60, what="the duplicate groups")
        shot.wait(lambda: all(not dialog.tree.topLevelItem(0).child(r).icon(0).isNull()
                              for r in range(dialog.tree.topLevelItem(0).childCount())),
                  timeout=20, what="the group thumbnails")
        shot.save(dialog, "duplicates")
    finally:
        window.close()


def labeling_controller(window, library: Path):
    """The window's labelling part (app.labeling.LabelingController), made here if the window has none."""
    from app.labeling import LabelingController  # another part of the app: skipped while it is missing

    found = window.findChildren(LabelingController)
    if found:
        return found[0], False
    return LabelingController(window, library), True


def shoot_labeling(shot: Shooter, library: Path, scratch: Path, photos: dict) -> None:
    window = make_window(library, scratch)
    controller, ours = None, False
    try:
        shot.wait(lambda: " photos" in window.library_status.text(), what="the library")
        drop_file(window, photos["query"])  # a recent search, which suggestions draw on
        shot.wait(lambda: window.model.rowCount() > 0, what="the results")
        window.resize(1500, 800)
        controller, ours = labeling_controller(window, library)
        view = controller.open_pair_view()
        shot.wait(lambda: getattr(view, "current", True) is not None, timeout=30, what="a pair to label")
        shot.settle(1.5)  # the pair's photos load in the background
        # The pairs open in a window of their own (app/labeling/controller.py) unless docked
        shot.save(controller.dock if controller.dock.isFloating() else window, "label-pairs")
    finally:
        if ours and controller is not None:
            controller.shutdown()
        window.close()


def shoot_labels(shot: Shooter, library: Path, scratch: Path) -> None:
    window = make_window(library, scratch)
    controller, ours = None, False
    try:
        shot.wait(lambda: " photos" in window.library_status.text(), what="the library")
        controller, ours = labeling_controller(window, library)
        dialog = controller.open_labels_dialog()
        dialog.resize(980, 560)
        shot.settle(2.0)  # the list and its thumbnails load in the background
        shot.save(dialog, "labels")
        dialog.close()
    finally:
        if ours and controller is not None:
            controller.shutdown()
        window.close()


def shoot_retrain(shot: Shooter, library: Path, scratch: Path) -> None:
    from app.retrain import RetrainDialog
    from app.theme import Theme

    window = make_window(library, scratch)
    try:
        shot.wait(lambda: " photos" in window.library_status.text(), what="the library")
        opener = getattr(window, "open_retrain_dialog", None)
        dialog = opener() if opener else RetrainDialog(library, parent=window)
        if dialog is None:
            dialog = window.findChildren(RetrainDialog)[-1]
        dialog.show()
        shot.wait(lambda: getattr(dialog, "facts", True) is not None, timeout=20, what="the library's facts")
        if dialog.train_button.isEnabled():
            # A real (head-mode, seconds) run, so the shot shows the loss curve and the check.
            dialog.start_training()
            shot.wait(lambda: not dialog.is_training() and dialog.new_version is not None, timeout=180,
                      what="the trainer")
        shot.save(dialog, "retrain")
        dark = Theme(shot.app, "dark")
        shot.settle(0.3)
        shot.save(dialog, "retrain-dark")
        dark.deleteLater()
        Theme(shot.app, "light")
        shot.settle(0.2)
        dialog.close()
        shot.settle(0.5)
    finally:
        window.close()


# ------------------------------------------------------------------ main


def offscreen_platform(scale: float, scratch: Path) -> str:
    """Qt's offscreen platform with a screen big enough for the windows, at ``scale`` device pixels."""
    config = scratch / "offscreen.json"
    config.write_text(json.dumps({"screens": [{"name": "demo", "x": 0, "y": 0, "width": 1920, "height": 1200,
                                                "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": scale}]}))
    return f"offscreen:configfile={config}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio (2: high-DPI images)")
    parser.add_argument("--keep", action="store_true", help=f"keep the demo photos and library in {DEMO}")
    args = parser.parse_args()

    started = time.monotonic()
    if DEMO.exists():
        if not (DEMO / MARKER).exists():
            print(f"{DEMO} exists and is not a demo folder made by this script; move it away", file=sys.stderr)
            return 2
        shutil.rmtree(DEMO)
    DEMO.mkdir(parents=True)
    (DEMO / MARKER).write_text("made by dev/screenshots; safe to delete\n")
    scratch = DEMO / "scratch"
    scratch.mkdir()
    os.environ["QT_QPA_PLATFORM"] = offscreen_platform(args.scale, scratch)
    os.environ.pop("LOOKALIKE_THEME", None)
    args.out.mkdir(parents=True, exist_ok=True)
    shot = None
    try:
        print("making the demo photos ...", flush=True)
        photos = make_demo_photos(DEMO)
        library = DEMO / "library"
        print("indexing them into a demo library ...", flush=True)
        build_library(library, photos)
        print(f"  ready after {time.monotonic() - started:.0f} s", flush=True)

        from PySide6.QtWidgets import QApplication

        from app.icons import icon
        from app.theme import Theme

        app = QApplication.instance() or QApplication([sys.argv[0]])
        app.setApplicationName("Lookalike")
        app.setWindowIcon(icon("app"))
        Theme(app, "light")  # the screenshots' look does not depend on this machine's scheme
        shot = Shooter(app, args.out)
        print("screens:", flush=True)
        shot.run("main window, empty, and the indexing wizard", lambda: shoot_empty_and_wizard(shot, scratch, photos))
        shot.run("main window with results", lambda: shoot_results(shot, library, scratch, photos))
        shot.run("preview and compare (app.preview, app.compare)",
                 lambda: shoot_preview_compare(shot, library, scratch, photos))
        shot.run("acting on results, duplicates (app.file_actions, app.duplicates_view)",
                 lambda: shoot_acting(shot, library, scratch, photos))
        shot.run("pair labeling (app.labeling)", lambda: shoot_labeling(shot, library, scratch, photos))
        shot.run("labels list (app.labeling)", lambda: shoot_labels(shot, library, scratch))
        shot.run("retrain dialog (app.retrain.RetrainDialog)", lambda: shoot_retrain(shot, library, scratch))
        shot.settle(0.2)
    finally:
        if not args.keep:
            shutil.rmtree(DEMO, ignore_errors=True)
    print(f"{len(shot.made)} screenshots in {time.monotonic() - started:.0f} s")
    for name, reason in shot.skipped:
        print(f"skipped {name}: {reason}")
    failed = [name for name, reason in shot.skipped if "is not there yet" not in reason]
    return 1 if failed or not shot.made else 0


if __name__ == "__main__":
    sys.exit(main())
