"""Watching folders: real files created, changed, moved and deleted reach the library in debounced batches."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time

import numpy as np
import pytest

from engine.index import Indexer, indexed_suffixes, is_excluded, set_exclusions, set_indexed_suffixes, walk_images
from engine.library import Library
from engine.search import SearchParams
from engine.watch import FolderWatcher, apply_changes, watcher_for
from tests import photos

DEBOUNCE = 0.3


@pytest.fixture
def library(tmp_path, default_model_dir):
    lib = Library(tmp_path / "library")
    lib.install_model(default_model_dir)
    yield lib
    lib.close()


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "photos"
    for i in range(4):
        photos.save(photos.scene(300 + i, (320, 240)), folder / "album" / f"p{i}.jpg", quality=90)
    return folder


class Batches:
    """Collects a watcher's batches from its thread."""

    def __init__(self):
        self.queue: queue.Queue[list[str]] = queue.Queue()
        self.threads: set[str] = set()

    def __call__(self, paths: list[str]) -> None:
        self.threads.add(threading.current_thread().name)
        self.queue.put(paths)

    def until(self, wanted: set[str], timeout: float = 15.0) -> set[str]:
        """Union of batches until it holds every path in ``wanted``."""
        got: set[str] = set()
        deadline = time.monotonic() + timeout
        while not wanted <= got:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"still waiting for {sorted(wanted - got)}; got {sorted(got)}"
            try:
                got.update(self.queue.get(timeout=remaining))
            except queue.Empty:
                continue
        return got

    def quiet(self, seconds: float) -> list[list[str]]:
        out = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                out.append(self.queue.get(timeout=remaining))
            except queue.Empty:
                break
        return out


def _watch(roots, batches, **kwargs) -> FolderWatcher:
    kwargs.setdefault("debounce", DEBOUNCE)
    watcher = FolderWatcher(roots, batches, **kwargs)
    watcher.start()
    assert watcher.wait_ready(10)
    return watcher


def test_watcher_reports_created_modified_moved_and_deleted_images_only(tmp_path, root):
    batches = Batches()
    library_dir = root / "lib-inside"  # a library kept inside a watched root is ignored
    library_dir.mkdir()
    watcher = _watch([root], batches, exclusions=["private"], ignore=[library_dir])
    try:
        album = root / "album"
        new = photos.save(photos.scene(310, (320, 240)), album / "new.jpg")
        photos.save(photos.scene(311, (320, 240)), album / "p0.jpg")  # modified
        os.rename(album / "p1.jpg", album / "renamed.jpg")
        (album / "p2.jpg").unlink()
        # None of these may show up:
        (album / "notes.txt").write_text("not an image")
        photos.save(photos.scene(312, (320, 240)), root / "private" / "secret.jpg")
        photos.save(photos.scene(313, (320, 240)), album / ".hidden.jpg")
        photos.save(photos.scene(314, (320, 240)), library_dir / "thumb.jpg")
        got = batches.until({str(new), str(album / "p0.jpg"), str(album / "p1.jpg"), str(album / "renamed.jpg"),
                             str(album / "p2.jpg")})
        got.update(p for b in batches.quiet(3 * DEBOUNCE) for p in b)
        assert not any(p.endswith((".txt", "secret.jpg", ".hidden.jpg", "thumb.jpg")) for p in got), got
        assert batches.threads == {"lookalike-watch"}
    finally:
        watcher.stop()
    assert not watcher.is_running()


def test_events_are_debounced_into_one_batch_and_max_delay_bounds_the_wait(root):
    batches = Batches()
    watcher = _watch([root], batches, debounce=0.5, max_delay=30)
    try:
        for i in range(5):  # a burst, each change inside the quiet period of the last
            photos.save(photos.scene(320 + i, (160, 120)), root / "burst" / f"b{i}.jpg")
            time.sleep(0.1)
        wanted = {str(root / "burst" / f"b{i}.jpg") for i in range(5)}
        first = batches.queue.get(timeout=10)
        assert wanted <= set(first), first  # one batch, not one per file
    finally:
        watcher.stop()

    batches = Batches()
    watcher = _watch([root], batches, debounce=5.0, max_delay=0.5)
    try:
        started = time.monotonic()
        watcher.add([str(root / "album" / "p0.jpg")])
        for _ in range(10):  # keep it busy: only max_delay can end the wait
            time.sleep(0.1)
            watcher.add([str(root / "album" / "p1.jpg")])
        batch = batches.queue.get(timeout=10)
        assert time.monotonic() - started < 4.0 and str(root / "album" / "p0.jpg") in batch
    finally:
        watcher.stop()


def test_watched_changes_reach_the_library(library, root, monkeypatch):
    Indexer(library, workers=0).run([root])
    assert library.status()["images"] == 4
    album = root / "album"
    old = library.store.image_by_path(str(album / "p1.jpg"))
    old_code = library.codes()[old.slot].copy()

    batches = Batches()
    watcher = watcher_for(library, batches, debounce=DEBOUNCE)
    watcher.start()
    assert watcher.wait_ready(10)
    try:
        new = photos.save(photos.scene(330, (320, 240)), album / "sub" / "new.jpg")
        photos.save(photos.scene(331, (320, 240)), album / "p0.jpg")  # changed content
        shutil.move(album / "p1.jpg", root / "moved.jpg")
        (album / "p2.jpg").unlink()
        changed = batches.until({str(new), str(album / "p0.jpg"), str(album / "p1.jpg"), str(root / "moved.jpg"),
                                 str(album / "p2.jpg")})
    finally:
        watcher.stop()

    decoded = []
    import engine.imageio

    real_decode = engine.imageio.decode_image

    def counting_decode(*args, **kwargs):
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(engine.imageio, "decode_image", counting_decode)
    report = apply_changes(library, changed, workers=0)
    assert (report.added, report.reused, report.removed, report.cancelled) == (2, 1, 2, False)
    assert len(decoded) == 2  # the move was not decoded again

    store = library.store
    assert store.image_by_path(str(album / "p1.jpg")) is None and store.image_by_path(str(album / "p2.jpg")) is None
    moved = store.image_by_path(str(root / "moved.jpg"))
    np.testing.assert_array_equal(library.codes()[moved.slot], old_code)
    assert library.status()["images"] == 4  # 4 - 1 deleted + 1 new (the move and the change keep the count)
    hits = library.search_file(new, SearchParams(k=1))
    assert hits[0].path == str(new) and hits[0].hamming == 0
    hits = library.search_file(album / "p0.jpg", SearchParams(k=1))
    assert hits[0].path == str(album / "p0.jpg") and hits[0].score > 0.99
    assert str(album / "p2.jpg") not in {h.path for h in library.search_file(album / "p3.jpg", SearchParams(k=50))}

    again = apply_changes(library, changed, workers=0)  # a repeated batch changes nothing
    assert (again.added, again.reused, again.removed, again.unchanged) == (0, 0, 0, 3)


def test_folders_moved_in_and_out_are_walked_and_forgotten(library, root, tmp_path):
    Indexer(library, workers=0).run([root])
    outside = tmp_path / "outside"
    for i in range(2):
        photos.save(photos.scene(340 + i, (320, 240)), outside / "trip" / f"t{i}.jpg")

    batches = Batches()
    watcher = watcher_for(library, batches, debounce=DEBOUNCE)
    watcher.start()
    assert watcher.wait_ready(10)
    try:
        shutil.move(outside / "trip", root / "trip")   # a folder arrives with its photos
        shutil.move(root / "album", outside / "album")  # a folder leaves
        changed = batches.until({str(root / "trip"), str(root / "album")})
    finally:
        watcher.stop()
    report = apply_changes(library, changed, workers=0)
    assert report.added == 2 and report.removed == 4
    paths = set(library.store.paths_for_slots(library.store.live_slots()).values())
    assert paths == {str(root / "trip" / "t0.jpg"), str(root / "trip" / "t1.jpg")}


def test_update_respects_exclusions_types_and_unreachable_roots(library, root, tmp_path):
    Indexer(library, workers=0).run([root])
    set_exclusions(library.store, ["drafts"])
    set_indexed_suffixes(library.store, [".jpg"])
    draft = photos.save(photos.scene(350, (320, 240)), root / "drafts" / "d.jpg")
    png = photos.save(photos.scene(351, (320, 240)), root / "album" / "x.png")
    outside = photos.save(photos.scene(352, (320, 240)), tmp_path / "elsewhere" / "o.jpg")
    report = apply_changes(library, [draft, png, outside, root / "drafts"], workers=0)
    assert report.added == 0 and library.status()["images"] == 4
    assert library.store.image_by_path(str(draft)) is None and library.store.image_by_path(str(png)) is None

    shutil.move(root, tmp_path / "unplugged")  # an unmounted drive: its photos stay
    report = apply_changes(library, [root / "album" / "p0.jpg", root / "album"], workers=0)
    assert report.removed == 0 and library.status()["images"] == 4


def test_file_types_and_exclusions_are_kept_per_library(library, root):
    photos.save(photos.scene(360, (320, 240)), root / "album" / "a.png")
    photos.save(photos.scene(361, (320, 240)), root / "album" / "b.webp")
    photos.save(photos.scene(362, (320, 240)), root / "skip-me" / "c.jpg")
    assert indexed_suffixes(library.store) >= {".jpg", ".png", ".webp"}  # default: every decodable type
    set_indexed_suffixes(library.store, ["JPG", ".png"])
    set_exclusions(library.store, ["skip-me", "tmp*"])
    set_exclusions(library.store, ["skip-me"])  # replaces the list
    assert library.store.exclusions() == ["skip-me"]
    with Library(library.path) as other:  # persisted in the library, not in the object
        assert indexed_suffixes(other.store) == {".jpg", ".png"}
    report = Indexer(library, workers=0).run([root])
    assert report.added == 5  # four JPEGs and the PNG; not the WebP nor the excluded folder
    assert library.store.image_by_path(str(root / "album" / "b.webp")) is None

    set_indexed_suffixes(library.store, [".png"])  # the next full run forgets what is no longer wanted
    report = Indexer(library, workers=0).run([root])
    assert report.removed == 4 and library.status()["images"] == 1
    set_indexed_suffixes(library.store, None)
    assert ".webp" in indexed_suffixes(library.store)
    with pytest.raises(Exception, match="at least one"):
        set_indexed_suffixes(library.store, [])


def test_walk_filters_by_suffix_and_is_excluded_matches_the_walk(root):
    photos.save(photos.scene(370, (160, 120)), root / "album" / "a.png")
    found = {os.path.basename(p) for p, _ in walk_images(str(root), suffixes={".png"})}
    assert found == {"a.png"}
    walked = {p for p, _ in walk_images(str(root / "album"), exclusions=["album/p1.jpg"], base=str(root))}
    assert str(root / "album" / "p1.jpg") not in walked and str(root / "album" / "p0.jpg") in walked
    assert is_excluded(str(root), str(root / "album" / "p1.jpg"), ["album/p1.jpg"])
    assert is_excluded(str(root), str(root / "x" / ".hidden" / "p.jpg"))
    assert is_excluded(str(root), str(root / "@eaDir" / "p.jpg"))  # a default exclusion
    assert not is_excluded(str(root), str(root / "album" / "p0.jpg"), ["album/p1.jpg"])
    assert is_excluded(str(root), "/somewhere/else.jpg") and not is_excluded(str(root), str(root))
