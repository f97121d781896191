"""Labelling driven offscreen on real photos: the pair view's keys and undo, the labels dialog, feedback on results."""

from __future__ import annotations

import os
import shutil

import pytest
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from app.labeling import DISSIMILAR, FEEDBACK_SOURCE, PAIR_SOURCE, SIMILAR
from engine.labels import import_csv
from engine.store import Store
from engine.suggest import RECENT_SEARCH, UNCERTAIN


@pytest.fixture
def library(tmp_path, indexed_library):
    """A copy of the indexed library, so labels written here stay out of other tests."""
    path = tmp_path / "library"
    shutil.copytree(indexed_library, path)
    return path


def _labels(path) -> dict[tuple[str, str], tuple[int, str]]:
    with Store.open(path, create=False) as store:
        return {row.key: (row.label, row.source) for row in store.label_rows()}


def _hash_of(path, photo) -> str:
    with Store.open(path, create=False) as store:
        return store.image_by_path(str(photo)).content_hash


def _open_pair_view(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)  # shortcuts go to the active window
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # Labels > Label pairs…
    view = window.labeling.view
    assert view is not None and window.labeling.dock.isVisible()
    qtbot.waitUntil(view.hasFocus, timeout=5_000)
    return view


def _search(window, qtbot, query, results: int) -> None:
    """Search and wait for the results and for the labelling side to know their query."""
    window.search(query)
    qtbot.waitUntil(lambda: window.model.rowCount() == results and window.labeling.shown_query is query,
                    timeout=20_000)


def test_pair_view_labels_with_the_keyboard_and_undo_takes_a_label_back(make_window, qtbot, library):
    window = make_window(library)
    view = _open_pair_view(window, qtbot)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    assert not view.is_empty_state()
    first = view.current.pair
    assert first.reason == UNCERTAIN and "unsure" in view.reason.text()
    assert view.side_a.name.text() == os.path.basename(first.path_a)
    assert view.side_b.name.text() == os.path.basename(first.path_b)
    qtbot.waitUntil(lambda: not view.side_a.image.pixmap().isNull() and not view.side_b.image.pixmap().isNull(),
                    timeout=10_000)
    assert "(S)" in view.similar_button.text() and "(D)" in view.dissimilar_button.text()
    assert "(Space)" in view.skip_button.text() and "Z" in view.undo_button.text()
    assert not view.undo_button.isEnabled()

    qtbot.keyClick(view, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: _labels(library).get(first.key) == (SIMILAR, PAIR_SOURCE), timeout=10_000)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    second = view.current.pair
    assert second.key != first.key
    qtbot.waitUntil(lambda: view.counter.text() == "1 labelled this session, 1 in the library", timeout=10_000)

    qtbot.keyClick(view, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: _labels(library).get(second.key) == (DISSIMILAR, PAIR_SOURCE), timeout=10_000)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    third = view.current.pair

    qtbot.keyClick(view, Qt.Key.Key_Space)  # skip: nothing written
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    assert view.current.pair.key not in (first.key, second.key, third.key)
    qtbot.waitUntil(lambda: view.counter.text() == "2 labelled this session, 2 in the library", timeout=10_000)
    assert set(_labels(library)) == {first.key, second.key}

    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the dissimilar label
    assert view.current.pair == second  # shown again, to label anew
    qtbot.waitUntil(lambda: set(_labels(library)) == {first.key}, timeout=10_000)
    qtbot.waitUntil(lambda: view.counter.text() == "1 labelled this session, 1 in the library", timeout=10_000)
    qtbot.keyClick(view, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: _labels(library).get(second.key) == (SIMILAR, PAIR_SOURCE), timeout=10_000)


def test_undo_puts_back_a_label_the_pair_had_before(make_window, qtbot, library):
    window = make_window(library)
    view = _open_pair_view(window, qtbot)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    pair = view.current.pair
    # the same pair was labelled meanwhile from a result's menu
    with Store.open(library) as store:
        store.add_label(pair.hash_a, pair.hash_b, DISSIMILAR, source=FEEDBACK_SOURCE, path_a=pair.path_a,
                        path_b=pair.path_b)
        before = store.label(pair.hash_a, pair.hash_b)
    qtbot.mouseClick(view.similar_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _labels(library).get(pair.key) == (SIMILAR, PAIR_SOURCE), timeout=10_000)
    qtbot.mouseClick(view.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _labels(library).get(pair.key) == (DISSIMILAR, FEEDBACK_SOURCE), timeout=10_000)
    with Store.open(library) as store:
        assert store.label(pair.hash_a, pair.hash_b) == before  # its date too


def test_the_pair_view_runs_out_of_pairs_and_can_look_again(make_window, qtbot, library):
    window = make_window(library)
    view = _open_pair_view(window, qtbot)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    shown = set()
    for _ in range(200):
        if view.current is None:
            qtbot.waitUntil(lambda: view.current is not None or view.is_empty_state() and view.retry_button.isVisible(),
                            timeout=20_000)
            if view.current is None:
                break
        shown.add(view.current.pair.key)
        qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.is_empty_state() and "No more pairs" in view.message.text()
    assert len(shown) > 20  # 16 photos: more than one batch came and went
    assert not view.similar_button.isEnabled() and not view.skip_action.isEnabled()
    qtbot.keyClick(view, Qt.Key.Key_S)  # nothing to label: nothing happens
    assert _labels(library) == {}
    qtbot.mouseClick(view.retry_button, Qt.MouseButton.LeftButton)  # skipped pairs may come back
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)


def test_empty_state_without_a_library(make_window, qtbot, tmp_path):
    window = make_window(tmp_path / "nowhere")
    view = window.labeling.open_pair_view()
    qtbot.waitUntil(lambda: view.is_empty_state() and "no library" in view.message.text(), timeout=10_000)
    assert not view.similar_button.isEnabled()
    assert "0 labelled this session, 0 in the library" == view.counter.text()
    assert not (tmp_path / "nowhere").exists()  # looking never creates a library


def test_recent_searches_are_suggested(make_window, qtbot, library, photo_set):
    window = make_window(library)
    window.k_spin.setValue(8)
    query = photo_set["originals"][7]
    _search(window, qtbot, str(query), 8)
    assert window.labeling.recent_searches()[0][0] == str(query)
    view = _open_pair_view(window, qtbot)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    pending = [view.current, *view.queued()]
    recent = [item for item in pending if item.pair.reason == RECENT_SEARCH]
    assert recent and all(item.pair.path_a == str(query) for item in recent)
    results = {window.model.item(row).path for row in range(8)}
    assert all(item.pair.path_b in results and item.pair.path_b != str(query) for item in recent)
    while view.current.pair.reason != RECENT_SEARCH:
        qtbot.keyClick(view, Qt.Key.Key_Space)
    assert f"From your search for {query.name}" in view.reason.text()


def test_labels_dialog_lists_deletes_and_exports(make_window, qtbot, library, photo_set, tmp_path, monkeypatch):
    originals = photo_set["originals"]
    with Store.open(library) as store:
        hashes = [store.image_by_path(str(p)).content_hash for p in originals[:4]]
        store.add_label(hashes[0], hashes[1], SIMILAR, source=PAIR_SOURCE, path_a=str(originals[0]),
                        path_b=str(originals[1]))
        store.add_label(hashes[0], hashes[2], DISSIMILAR, source=FEEDBACK_SOURCE, path_a=str(originals[0]),
                        path_b=str(originals[2]))
        store.add_label(hashes[2], hashes[3], SIMILAR, source="import", path_a=str(originals[2]),
                        path_b=str(originals[3]))
    window = make_window(library)
    window.labeling.labels_action.trigger()
    dialog = window.labeling.dialog
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 3 and dialog.loaded, timeout=10_000)
    rows = {dialog.model.entry(r).row.source: r for r in range(3)}
    feedback = dialog.model.index(rows[FEEDBACK_SOURCE], 0)
    texts = [dialog.model.index(rows[FEEDBACK_SOURCE], c).data() for c in range(5)]
    assert texts[:4] == [str(originals[0]), str(originals[2]), "Dissimilar", FEEDBACK_SOURCE] or \
        texts[:4] == [str(originals[2]), str(originals[0]), "Dissimilar", FEEDBACK_SOURCE]
    qtbot.waitUntil(lambda: dialog.model.data(feedback, Qt.ItemDataRole.DecorationRole) is not None, timeout=10_000)
    assert "3 labels: 2 similar, 1 dissimilar" in dialog.status.text()

    # Delete the feedback label: the key, asked first
    proxy_row = dialog.proxy.mapFromSource(feedback).row()
    dialog.table.selectRow(proxy_row)
    assert dialog.selected_keys() == [dialog.model.entry(rows[FEEDBACK_SOURCE]).row.key]
    doomed = dialog.selected_keys()[0]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    dialog.table.setFocus()
    asked = []
    delete = dialog.service.delete
    monkeypatch.setattr(dialog.service, "delete", lambda keys: asked.append(list(keys)) or delete(keys))
    qtbot.keyClick(dialog.table, Qt.Key.Key_Delete)  # and the person says no
    assert asked == []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(dialog.service.deleted, timeout=10_000):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Delete)
    assert asked == [[doomed]]
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 2 and dialog.loaded, timeout=10_000)
    assert doomed not in _labels(library) and len(_labels(library)) == 2

    # Export, then read the file back into an empty library of the same photos
    out = tmp_path / "exported.csv"
    dialog.export_to(out)
    qtbot.waitUntil(lambda: "Exported 2 labels" in dialog.status.text(), timeout=10_000)
    kept = _labels(library)
    with Store.open(library) as store:
        for a, b in kept:
            store.delete_label(a, b)
        report = import_csv(store, out)
        assert report.problems == [] and report.added == 2
    assert {key: value[0] for key, value in _labels(library).items()} == {key: value[0] for key, value in kept.items()}

    # The dialog follows labels written elsewhere in the window
    qtbot.waitUntil(lambda: dialog.loaded, timeout=10_000)
    view = _open_pair_view(window, qtbot)
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    qtbot.keyClick(view, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 3, timeout=10_000)
    # ... and catches up on those written while it was closed
    dialog.close()
    qtbot.waitUntil(lambda: view.current is not None, timeout=20_000)
    view.mark_dissimilar()
    qtbot.waitUntil(lambda: len(_labels(library)) == 4, timeout=10_000)
    assert window.labeling.open_labels_dialog() is dialog
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 4, timeout=10_000)


def test_feedback_from_a_results_menu_writes_feedback_labels(make_window, qtbot, library, photo_set):
    window = make_window(library)
    window.k_spin.setValue(5)
    query = photo_set["originals"][7]
    _search(window, qtbot, str(query), 5)
    model = window.model

    def actions(row):
        return {a.text(): a for a in window.result_menu(model.index(row)).actions() if a.text()}

    assert model.item(0).path == str(query)
    assert not actions(0)["Mark similar to the query"].isEnabled()  # the query itself
    assert "query photo itself" in actions(0)["Mark similar to the query"].toolTip()

    similar, dissimilar = model.item(2).path, model.item(3).path
    actions(2)["Mark similar to the query"].trigger()
    actions(3)["Mark dissimilar to the query"].trigger()
    query_hash = _hash_of(library, query)
    key_similar = tuple(sorted((query_hash, _hash_of(library, similar))))
    key_dissimilar = tuple(sorted((query_hash, _hash_of(library, dissimilar))))
    qtbot.waitUntil(lambda: _labels(library) == {key_similar: (SIMILAR, FEEDBACK_SOURCE),
                                                 key_dissimilar: (DISSIMILAR, FEEDBACK_SOURCE)}, timeout=10_000)
    qtbot.waitUntil(lambda: "dissimilar to the query" in window.statusBar().currentMessage(), timeout=10_000)
    # (the marks refined the results on show: the dissimilar one left them)
    qtbot.waitUntil(lambda: model.row_of(dissimilar) == -1, timeout=20_000)

    # A query from outside the library is labelled by its content, for when it gets indexed
    outside = photo_set["edits"]["resized"]
    _search(window, qtbot, str(outside), 5)
    assert model.item(0).path == str(photo_set["originals"][3])
    actions(0)["Mark similar to the query"].trigger()
    qtbot.waitUntil(lambda: "once that photo is indexed" in window.statusBar().currentMessage(), timeout=10_000)
    from engine.imageio import content_hash

    key_outside = tuple(sorted((content_hash(outside.read_bytes()), _hash_of(library, photo_set["originals"][3]))))
    assert _labels(library)[key_outside] == (SIMILAR, FEEDBACK_SOURCE)

    # Pasted pixels are no file to label: marking refines the results, the actions say no label is stored
    mime = QMimeData()
    mime.setImageData(QImage(str(photo_set["originals"][5])))
    assert window.accept_mime(mime)
    qtbot.waitUntil(lambda: isinstance(window.labeling.shown_query, QImage), timeout=20_000)
    assert model.item(0).path == str(photo_set["originals"][5])
    pasted = actions(1)
    assert pasted["Mark dissimilar to the query"].isEnabled()
    assert "pasted image" in pasted["Mark dissimilar to the query"].toolTip()
    assert "stores no label" in pasted["Mark dissimilar to the query"].toolTip()
    gone = model.item(1).path
    pasted["Mark dissimilar to the query"].trigger()
    qtbot.waitUntil(lambda: model.rowCount() == 5 and model.row_of(gone) == -1, timeout=20_000)
    assert window.refine_label.text() == "Refined by 1 dissimilar"
    assert len(_labels(library)) == 3
