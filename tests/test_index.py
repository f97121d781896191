"""Indexing real files end to end: diffing, reuse, skips with reasons, cancel and resume, search."""

import os
import shutil
import threading

import numpy as np
import pytest

from engine.index import Indexer, walk_images
from engine.library import Library
from engine.search import SearchParams
from tests import photos


@pytest.fixture
def library(tmp_path, default_model_dir):
    lib = Library(tmp_path / "library")
    lib.install_model(default_model_dir)
    yield lib
    lib.close()


@pytest.fixture
def tree(tmp_path):
    """A small mixed photo folder: formats, sub-folders, broken files, hidden and excluded ones."""
    root = tmp_path / "photos"
    for i in range(6):
        photos.save(photos.scene(i), root / f"trip/img_{i}.jpg", quality=90)
    photos.save(photos.scene(10), root / "png/scene.png")
    photos.save(photos.scene(11), root / "webp/scene.webp")
    photos.save(photos.scene(12), root / "misc/scene.tif")
    photos.save(photos.scene(13).convert("P"), root / "misc/scene.gif")
    photos.save(photos.scene(14), root / "misc/scene.bmp")
    photos.save(photos.scene(15), root / ".hidden/secret.jpg")
    photos.save(photos.scene(16), root / "@eaDir/thumb.jpg")
    broken = photos.broken_files(root / "broken")
    (root / "docs").mkdir()
    (root / "docs/readme.txt").write_text("not a photo and not an image suffix")
    os.symlink(root, root / "trip" / "loop")  # a folder loop
    return root, broken


def _index(library, *paths, **kwargs):
    kwargs.setdefault("workers", 0)
    return Indexer(library, **kwargs).run(list(paths))


def test_walk_skips_hidden_excluded_and_survives_loops(tree):
    root, _ = tree
    found = sorted(os.path.relpath(p, root) for p, _ in walk_images(str(root), exclusions=["misc/*.bmp"]))
    assert "trip/img_0.jpg" in found and "png/scene.png" in found
    assert not any(p.startswith(".hidden") or "@eaDir" in p for p in found)
    assert "misc/scene.bmp" not in found
    assert not any("loop" in p for p in found)
    hidden = [p for p, _ in walk_images(str(root), include_hidden=True)]
    assert any(".hidden" in p for p in hidden)


def test_index_records_every_photo_and_every_skip_with_its_reason(library, tree):
    root, broken = tree
    report = _index(library, root, workers=2)
    assert report.added == 11 and report.skipped == 4 and not report.cancelled
    reasons = dict(library.store.skipped())
    assert set(reasons) == {str(p) for p in broken.values()}
    assert "empty" in reasons[str(broken["empty"])]
    assert "truncated" in reasons[str(broken["truncated"])]
    assert "not an image" in reasons[str(broken["not an image"])]
    status = library.status()
    assert status["images"] == 11 and status["skipped"] == 4
    # Thumbnails are written on the way, keyed by content hash.
    assert len(list((library.path / "thumbs").rglob("*.jpg"))) == 11


def test_originals_are_never_written(library, tree):
    root, _ = tree
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in root.rglob("*") if p.is_file()}
    _index(library, root)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in root.rglob("*") if p.is_file()}
    assert before == after


def test_second_run_changes_nothing(library, tree):
    root, _ = tree
    _index(library, root)
    slots = library.store.next_slot
    report = _index(library, root)
    assert report.added == 0 and report.unchanged == 15 and report.removed == 0
    assert library.store.next_slot == slots


def test_moves_renames_and_copies_keep_their_codes_without_decoding(library, tree, monkeypatch):
    root, _ = tree
    _index(library, root)
    before = {h.path: h for h in library.search_file(root / "trip/img_1.jpg", SearchParams(k=3))}
    old_code = library.codes()[before[str(root / "trip/img_1.jpg")].slot].copy()
    shutil.move(root / "trip/img_1.jpg", root / "png/renamed.jpg")
    shutil.copy(root / "trip/img_2.jpg", root / "trip/copy.jpg")

    import engine.imageio

    def no_decoding(*args, **kwargs):
        raise AssertionError("known content must not be decoded again")

    monkeypatch.setattr(engine.imageio, "decode_image", no_decoding)
    report = _index(library, root)
    assert report.reused == 2 and report.added == 0 and report.removed == 1
    moved = library.store.image_by_path(str(root / "png/renamed.jpg"))
    assert library.store.image_by_path(str(root / "trip/img_1.jpg")) is None
    np.testing.assert_array_equal(library.codes()[moved.slot], old_code)


def test_a_changed_file_is_encoded_again_and_its_old_encoding_dies(library, tree):
    root, _ = tree
    _index(library, root)
    target = root / "trip/img_3.jpg"
    old_slot = library.store.image_by_path(str(target)).slot
    photos.save(photos.scene(99), target, quality=90)
    report = _index(library, root)
    assert report.added == 1
    new_slot = library.store.image_by_path(str(target)).slot
    assert new_slot != old_slot and not library.store.live_mask()[old_slot]
    hits = library.search_file(target, SearchParams(k=1))
    assert hits[0].path == str(target) and hits[0].slot == new_slot


def test_a_photo_that_turns_corrupt_is_skipped_and_leaves_search(library, tree):
    root, _ = tree
    _index(library, root)
    target = root / "trip/img_4.jpg"
    target.write_bytes(b"")
    _index(library, root)
    assert dict(library.store.skipped())[str(target)] == "empty file"
    hits = library.search_file(root / "trip/img_0.jpg", SearchParams(k=50))
    assert str(target) not in {h.path for h in hits}


def test_cancel_keeps_committed_batches_removes_nothing_and_resume_completes(library, tmp_path):
    root = tmp_path / "many"
    for i in range(24):
        photos.save(photos.scene(100 + i, (320, 240)), root / f"p{i:02d}.jpg")
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.done)
        if p.phase == "indexing" and p.done >= 10:
            cancel.set()

    report = Indexer(library, workers=0, batch_size=4, progress=progress, cancel=cancel).run([root])
    assert report.cancelled
    partial = library.status()["images"]
    assert 8 <= partial < 24
    assert library.store.last_run()["status"] == "cancelled"
    report = _index(library, root)
    assert not report.cancelled and report.unchanged == partial and report.added == 24 - partial
    assert library.status()["images"] == 24


def test_removed_files_are_forgotten_after_a_complete_walk(library, tree):
    root, _ = tree
    _index(library, root)
    (root / "trip/img_5.jpg").unlink()
    shutil.rmtree(root / "webp")
    report = _index(library, root)
    assert report.removed == 2
    assert library.status()["images"] == 9


def test_an_unreachable_root_keeps_its_photos(library, tree, tmp_path):
    root, _ = tree
    _index(library, root)
    shutil.move(root, tmp_path / "unplugged")
    _index(library)  # every root; this one is gone (an unplugged drive)
    assert library.status()["images"] == 11


def test_query_of_an_indexed_photo_finds_itself_first(library, tree):
    root, _ = tree
    _index(library, root)
    for name in ("trip/img_0.jpg", "png/scene.png", "misc/scene.gif"):
        hits = library.search_file(root / name, SearchParams(k=5))
        assert hits[0].path == str(root / name)
        assert hits[0].hamming == 0 and hits[0].score > 0.99
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("edit", ["resized", "recompressed", "cropped", "exif-rotated"])
def test_an_edited_copy_ranks_its_original_first(library, tmp_path, edit):
    root = tmp_path / "originals"
    for i in range(30):
        photos.save(photos.scene(200 + i), root / f"o{i:02d}.jpg", quality=92)
    _index(library, root)
    original = photos.scene(217)
    query = photos.edited_copies(original, tmp_path / "edits")[edit]
    hits = library.search_file(query, SearchParams(k=5))
    assert hits[0].path == str(root / "o17.jpg")


def test_indexing_runs_off_the_main_thread(tmp_path, default_model_dir, tree):
    # The GUI indexes in a worker thread: nothing in the indexer may need the main thread.
    root, _ = tree
    errors, reports = [], []

    def work():
        try:
            with Library(tmp_path / "threaded") as lib:
                lib.install_model(default_model_dir)
                reports.append(Indexer(lib, workers=0).run([root]))
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=300)
    assert not errors and reports[0].added == 11


@pytest.fixture
def nested(tmp_path):
    """photos/ with two photos, and photos/Edited/ with one photo and one broken file."""
    root = tmp_path / "photos"
    for i in range(2):
        photos.save(photos.scene(700 + i, (320, 240)), root / f"p{i}.jpg", quality=90)
    photos.save(photos.scene(702, (320, 240)), root / "Edited" / "e0.jpg", quality=90)
    photos.truncated(root / "Edited" / "half.jpg", photos.scene(703, (320, 240)))
    return root, root / "Edited"


def test_a_sub_folder_given_with_its_root_is_merged_and_counted_once(library, nested):
    root, inner = nested
    report = _index(library, root, inner)
    assert (report.found, report.added, report.reused, report.skipped) == (4, 3, 0, 1)
    assert [path for path, _ in report.skipped_files] == [str(inner / "half.jpg")]
    assert report.merged == [(str(inner), str(root))]
    assert [r["path"] for r in library.roots()] == [str(root)]
    assert library.roots()[0]["photos"] == 3


def test_a_root_added_around_an_indexed_one_takes_it_over_without_decoding_again(library, nested):
    root, inner = nested
    assert _index(library, inner).added == 1
    report = _index(library, root)
    assert (report.found, report.added, report.unchanged, report.removed) == (4, 2, 2, 0)
    assert report.merged == [(str(inner), str(root))]
    assert [(r["path"], r["photos"]) for r in library.roots()] == [(str(root), 3)]
    # a sub-folder of a root, indexed again, is walked as part of its root: no second root
    report = _index(library, inner)
    assert (report.found, report.added, report.unchanged) == (4, 0, 4)
    assert [r["path"] for r in library.roots()] == [str(root)]


def test_nested_roots_left_by_an_older_version_are_merged_by_the_next_run(library, nested):
    root, inner = nested
    library.store.add_root(str(root))
    library.store.add_root(str(inner))
    report = _index(library)
    assert report.found == 4 and report.reused == 0
    assert [r["path"] for r in library.roots()] == [str(root)]
