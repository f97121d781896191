"""GUI test fixtures: offscreen Qt, strict Qt logging, no thread left running, an indexed library."""

from __future__ import annotations

import gc
import importlib
import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings, QThread, QThreadPool  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from engine.index import Indexer  # noqa: E402
from engine.library import Library  # noqa: E402
from tests import photos  # noqa: E402


def pytest_collection_modifyitems(items):
    """Every GUI test fails on a Qt warning; the offscreen plugin's size-hint and raise notices are not
    (a window of its own, such as the floating Label pairs panel, is raised when it floats)."""
    for item in items:
        if "tests/gui/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints",
                                                      r"This plugin does not support raise\(\)"))


PHOTOS = 16
# The wizard tests index with one decoder process: a process pool driven from the wizard's
# worker thread, as in the app, at the smallest size.


def _running_threads() -> list[str]:
    """QThreads still running, with where they were started (app.background records it), and
    thread pools still busy, found among live Python wrappers."""
    busy = []
    for obj in gc.get_objects():
        cls = type(obj)  # not isinstance: that asks some foreign objects for __class__
        try:
            if issubclass(cls, QThread) and obj.isRunning() and obj is not QApplication.instance().thread():
                origin = getattr(obj, "origin", None) or "  (not started through app.background)\n"
                busy.append(f"QThread {obj.objectName() or cls.__name__}, started at:\n{origin}")
            elif issubclass(cls, QThreadPool) and obj.activeThreadCount():
                busy.append(f"QThreadPool with {obj.activeThreadCount()} active")
        except RuntimeError:  # the C++ object is gone: not running
            continue
    if QThreadPool.globalInstance().activeThreadCount():
        busy.append("global QThreadPool")
    return busy


@pytest.fixture(autouse=True)
def no_thread_left(qapp):
    """Fails a test that leaves a worker thread running (set up first, so checked last)."""
    yield
    QApplication.processEvents()
    busy = _running_threads()
    assert not busy, "threads left running:\n" + "\n".join(busy)


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui-photos")
    originals = [photos.save(photos.scene(i), root / "photos" / f"img_{i:02d}.jpg", quality=90)
                 for i in range(PHOTOS)]
    edits = photos.edited_copies(photos.scene(3), root / "edits")
    broken = root / "broken"
    photos.truncated(broken / "half.jpg", photos.scene(900))
    (broken / "notes.jpg").write_text("not a photo\n" * 20)
    return {"dir": root / "photos", "originals": originals, "edits": edits, "broken": broken}


@pytest.fixture(scope="module")
def indexed_library(tmp_path_factory, default_model_dir, photo_set):
    path = tmp_path_factory.mktemp("gui-library") / "library"
    with Library(path) as library:
        library.install_model(default_model_dir)
        report = Indexer(library, workers=0).run([photo_set["dir"]])
    assert report.added == PHOTOS
    return path


@pytest.fixture
def make_window(qtbot, tmp_path, default_model_dir):
    windows = []

    def make(library_path, **kwargs):
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        kwargs.setdefault("wizard_options", {"model_provider": lambda: default_model_dir,
                                             "indexer_options": {"workers": 1}})
        window = MainWindow(library_path, settings=settings, warm_up=False, **kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


# ------------------------------------------------------------------ acting on files (test_file_actions, test_duplicates_view)


def build_acting_library(tmp_path, default_model_dir):
    """Six scenes (640 x 480); scene 0 also resized, recompressed and as a PNG; scene 3 twice
    (a byte copy); indexed."""
    root = tmp_path / "photos"
    files = {}
    for i in range(6):
        image = photos.scene(700 + i)
        files[f"scene{i}"] = str(photos.save(image, root / f"scene{i}.jpg", quality=92))
        if i == 0:
            for edit in ("resized", "q60", "png"):
                files[edit] = str(photos.copy_edit(image, edit, root / "edits" / "scene0"))
    shutil.copyfile(files["scene3"], root / "backup-scene3.jpg")
    files["backup"] = str(root / "backup-scene3.jpg")
    library = tmp_path / "library"
    with Library(library) as lib:
        lib.install_model(default_model_dir)
        assert Indexer(lib, workers=0).run([root]).added == len(files)
    return library, files


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """A freedesktop trash under tmp_path (send2trash reads XDG_DATA_HOME when imported)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / "data"))
    (tmp_path / "home").mkdir()
    import send2trash.plat_other

    importlib.reload(send2trash.plat_other)
    yield tmp_path / "home" / "data" / "Trash"
    monkeypatch.undo()
    importlib.reload(send2trash.plat_other)


@pytest.fixture
def acting_library(tmp_path, default_model_dir, trash_home):
    """(library, {name: path}, trash folder): build_acting_library's, with the trash under tmp_path."""
    library, files = build_acting_library(tmp_path, default_model_dir)
    return library, files, trash_home
