"""The indexing wizard as a new user meets it: removing and nesting folders, the estimate, its size, its types."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.index import Indexer
from engine.library import Library
from tests import photos


@pytest.fixture
def options(default_model_dir):
    return {"model_provider": lambda: default_model_dir, "indexer_options": {"workers": 1}, "watch_debounce": 0.3}


def _folder(root, first_seed: int, count: int = 2):
    for i in range(count):
        photos.save(photos.scene(first_seed + i, (320, 240)), root / f"f{first_seed + i}.jpg", quality=90)
    return root


@pytest.fixture
def two_roots(tmp_path, default_model_dir):
    """A library of two folders, two photos each, and a label between the photos of the second."""
    keep, drop = _folder(tmp_path / "keep", 800), _folder(tmp_path / "drop", 810)
    with Library(tmp_path / "library") as library:
        library.install_model(default_model_dir)
        Indexer(library, workers=0).run([keep, drop])
        a, b = (library.store.image_by_path(str(drop / f"f{810 + i}.jpg")).content_hash for i in range(2))
        library.store.add_label(a, b, 1, source="test")
    return tmp_path / "library", keep, drop


def _answer_message_box(button: QMessageBox.StandardButton, seen: list[str]) -> None:
    """Press ``button`` in the next modal message box, keeping its text."""
    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(f"{box.text()}\n{box.informativeText()}")
        box.button(button).click()

    QTimer.singleShot(0, answer)


def _select(page, folder) -> None:
    page.list.clearSelection()
    page.list.item(page.folders().index(str(folder))).setSelected(True)


def _to_summary(wizard, qtbot):
    wizard.next()
    qtbot.waitUntil(wizard.options_page.isComplete, timeout=10_000)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.summary_page.count is not None, timeout=10_000)
    return wizard.summary_page


def test_removing_a_folder_forgets_its_photos_but_not_their_labels_after_a_confirmation(
        make_window, qtbot, two_roots, options):
    path, keep, drop = two_roots
    window = make_window(path, wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    page = wizard.folders_page
    qtbot.waitUntil(lambda: sorted(page.folders()) == [str(drop), str(keep)], timeout=10_000)

    seen: list[str] = []
    _select(page, drop)
    _answer_message_box(QMessageBox.StandardButton.No, seen)
    page.remove_selected()
    assert str(drop) in page.folders()  # "No" keeps it
    _answer_message_box(QMessageBox.StandardButton.Yes, seen)
    page.remove_selected()
    assert page.folders() == [str(keep)]
    assert len(seen) == 2 and str(drop) in seen[1] and "2 photos" in seen[1] and "label" in seen[1]

    summary = _to_summary(wizard, qtbot)
    assert "Forgetting: " + str(drop) in summary.options_label.text()
    wizard.next()  # Index
    qtbot.waitUntil(wizard.progress_page.isComplete, timeout=60_000)
    assert wizard.progress_page.error is None
    assert wizard.progress_page.report.removed == 2
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)
    with Library(path, readonly=True) as library:
        assert [root["path"] for root in library.roots()] == [str(keep)]
        assert library.status()["images"] == 2
        assert library.store.counts()["labels"] == 1  # labels are keyed by content: they stay

    window.open_wizard()  # it does not come back
    wizard = window.wizard
    qtbot.waitUntil(lambda: wizard.info is not None, timeout=10_000)
    assert wizard.folders_page.folders() == [str(keep)]
    wizard.reject()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)


def test_removing_every_folder_forgets_them_all(make_window, qtbot, two_roots, options):
    path, keep, drop = two_roots
    window = make_window(path, wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    page = wizard.folders_page
    qtbot.waitUntil(lambda: len(page.folders()) == 2, timeout=10_000)
    page.list.selectAll()
    seen: list[str] = []
    _answer_message_box(QMessageBox.StandardButton.Yes, seen)
    page.remove_selected()  # one question for both
    assert len(seen) == 1 and str(keep) in seen[0] and str(drop) in seen[0] and "4 photos" in seen[0]
    assert page.folders() == [] and page.isComplete()
    summary = _to_summary(wizard, qtbot)
    assert "Nothing to index" in summary.label.text()
    wizard.next()
    qtbot.waitUntil(wizard.progress_page.isComplete, timeout=60_000)
    assert wizard.progress_page.report.removed == 4
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)
    with Library(path, readonly=True) as library:
        assert library.roots() == [] and library.status()["images"] == 0
        assert library.store.counts()["labels"] == 1


def test_removing_a_folder_not_yet_indexed_asks_nothing(make_window, qtbot, tmp_path, options):
    window = make_window(tmp_path / "library", wizard_options=options)
    window.open_wizard()
    page = window.wizard.folders_page
    qtbot.waitUntil(lambda: window.wizard.info is not None, timeout=10_000)
    page.add_folder(_folder(tmp_path / "new", 820))
    _select(page, tmp_path / "new")
    page.remove_selected()  # no message box: this would block the test if one opened
    assert page.folders() == []
    window.wizard.reject()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)


def test_nested_folders_are_merged_in_the_list_and_counted_once(make_window, qtbot, tmp_path, options):
    root = _folder(tmp_path / "photos", 830)
    inner = _folder(root / "Edited", 840)
    window = make_window(tmp_path / "library", wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    page = wizard.folders_page
    page.add_folder(inner)
    page.add_folder(root)  # holds the first: they become one
    assert page.folders() == [str(root)]
    assert "Edited" in page.note.text() and "one folder" in page.note.text()
    page.add_folder(inner)  # inside one listed: not added again
    assert page.folders() == [str(root)]
    assert "inside" in page.note.text()
    summary = _to_summary(wizard, qtbot)
    assert summary.count == 4
    wizard.next()
    qtbot.waitUntil(wizard.progress_page.isComplete, timeout=60_000)
    report = wizard.progress_page.report
    assert (report.found, report.added, report.reused) == (4, 4, 0)
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)
def test_the_estimate_counts_the_model_build_and_not_the_unchanged_photos(make_window, qtbot, tmp_path, options,
                                                                          monkeypatch):
    import engine.default_model
    from app.index_wizard import MODEL_BUILD_ESTIMATE

    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "empty-cache"))  # no default model built yet
    folder = _folder(tmp_path / "photos", 850, count=3)
    window = make_window(tmp_path / "library", wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    wizard.folders_page.add_folder(folder)
    summary = _to_summary(wizard, qtbot)
    # the package ships the default model (resources/models): nothing to build, nothing estimated
    assert engine.default_model.shipped_default_model() is not None
    assert summary.estimate < MODEL_BUILD_ESTIMATE and "preparing the model" not in summary.label.text()
    # a checkout whose shipped model is not built yet builds it with torch on first use
    monkeypatch.setattr(engine.default_model, "shipped_default_model", lambda: None)
    wizard.back()
    summary = _to_summary(wizard, qtbot)
    assert summary.count == 3 and summary.to_read == 3
    assert summary.estimate >= MODEL_BUILD_ESTIMATE
    assert "preparing the model" in summary.label.text()
    wizard.next()
    qtbot.waitUntil(wizard.progress_page.isComplete, timeout=60_000)
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)

    window.open_wizard()  # the same folder again, nothing changed: next to nothing to do
    wizard = window.wizard
    qtbot.waitUntil(lambda: wizard.folders_page.folders() == [str(folder)], timeout=10_000)
    summary = _to_summary(wizard, qtbot)
    assert summary.count == 3 and summary.to_read == 0
    assert summary.estimate < 10
    assert "preparing the model" not in summary.label.text() and "all 3 unchanged" in summary.label.text()
    photos.save(photos.scene(860, (320, 240)), folder / "new.jpg")
    wizard.back()
    summary = _to_summary(wizard, qtbot)
    assert summary.count == 4 and summary.to_read == 1
    wizard.reject()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)


def test_the_wizard_keeps_one_size_and_its_examples_fit(make_window, qtbot, tmp_path, photo_set, options):
    window = make_window(tmp_path / "library", wizard_options=options)
    window.open_wizard()
    wizard = window.wizard
    wizard.folders_page.add_folder(photo_set["dir"])
    wizard.folders_page.add_folder(photo_set["broken"])  # the last page lists skipped files
    qtbot.waitUntil(lambda: wizard.info is not None, timeout=10_000)
    QApplication.processEvents()
    sizes = [wizard.size()]
    wizard.next()
    qtbot.waitUntil(wizard.options_page.isComplete, timeout=10_000)
    QApplication.processEvents()
    sizes.append(wizard.size())
    edit = wizard.options_page.exclusion_edit
    assert edit.fontMetrics().horizontalAdvance(edit.placeholderText()) < edit.contentsRect().width() - 8
    hint = wizard.options_page.exclusion_hint
    assert hint.wordWrap() and "Screenshots/*" in hint.text()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.summary_page.count is not None, timeout=10_000)
    QApplication.processEvents()
    sizes.append(wizard.size())
    wizard.next()
    qtbot.waitUntil(wizard.progress_page.isComplete, timeout=60_000)
    QApplication.processEvents()
    assert wizard.progress_page.skipped.isVisible()
    sizes.append(wizard.size())
    assert len(set((s.width(), s.height()) for s in sizes)) == 1, sizes
    wizard.accept()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)


def test_file_types_follow_what_the_engine_decodes_raw_included(make_window, qtbot, tmp_path, monkeypatch):
    import engine.imageio
    from engine.index import suffix_families

    # a build whose decoders read three RAW types, JPEG XL and a type of no family (".qoi")
    others = engine.imageio.IMAGE_SUFFIXES - set(engine.imageio.RAW_SUFFIXES) - {".jxl"}
    decodable = others | {".nef", ".dng", ".cr3", ".jxl", ".qoi"}
    monkeypatch.setattr(engine.imageio, "IMAGE_SUFFIXES", frozenset(decodable))
    families = suffix_families()
    assert families["Camera RAW"] == (".cr3", ".dng", ".nef") and families["JPEG XL"] == (".jxl",)
    assert families["QOI"] == (".qoi",)
    assert {s for suffixes in families.values() for s in suffixes} == decodable  # every type is offered

    window = make_window(tmp_path / "library")
    window.open_wizard()
    page = window.wizard.options_page
    assert "Camera RAW" in page.type_boxes and ".nef" in page.type_boxes["Camera RAW"].toolTip()
    window.wizard.reject()
    qtbot.waitUntil(lambda: window.wizard is None, timeout=5_000)
