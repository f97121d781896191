"""Trash, move, copy and undo through the CLI's main(), on real files, with the freedesktop trash in a tmp dir."""

import importlib
import io
import os
import shutil

import pytest

from app.cli import main
from engine.library import Library
from tests import photos


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory, default_model_dir):
    cache = tmp_path_factory.mktemp("cache")
    (cache / "models").mkdir()
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    return cache


@pytest.fixture
def setup(tmp_path, model_cache, monkeypatch):
    """A library of five photos (one with a byte copy) and a freedesktop trash under tmp_path."""
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / "data"))
    (tmp_path / "home").mkdir()
    import send2trash.plat_other

    importlib.reload(send2trash.plat_other)  # it reads XDG_DATA_HOME when imported
    root = tmp_path / "photos"
    for i in range(5):
        photos.save(photos.scene(900 + i), root / f"p{i}.jpg", quality=90)
    shutil.copyfile(root / "p0.jpg", root / "p0-copy.jpg")
    library = tmp_path / "library"
    assert main(["index", "--library", str(library), "-q", "--workers", "0", str(root)]) == 0
    yield library, root, tmp_path / "home" / "data" / "Trash"
    importlib.reload(send2trash.plat_other)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _catalogued(library) -> set[str]:
    with Library(library, create=False) as lib:
        return {os.path.basename(p) for p in lib.store.paths_under(str(library.parent / "photos"))}


def test_trash_never_touches_a_file_without_confirmation(setup, monkeypatch, capsys):
    library, root, trash = setup
    target = root / "p1.jpg"
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal: refused even with "y" waiting
    assert main(["trash", "--library", str(library), str(target)]) == 2
    assert "without asking" in capsys.readouterr().err and target.exists()
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))  # a terminal, and the person says no
    assert main(["trash", "--library", str(library), str(target)]) == 0
    err = capsys.readouterr().err
    assert f"Move 1 photo ({os.path.getsize(target) / 1e3:.1f} KB) to the trash?" in err and "Nothing was moved" in err
    assert target.exists() and not trash.exists() and "p1.jpg" in _catalogued(library)
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main(["trash", "--library", str(library), str(target)]) == 0
    assert not target.exists() and (trash / "files" / "p1.jpg").exists()
    assert "p1.jpg" not in _catalogued(library)  # the library follows at once


def test_undo_restores_a_trashed_photo_and_the_catalog(setup, capsys):
    library, root, trash = setup
    data = (root / "p2.jpg").read_bytes()
    assert main(["trash", "--library", str(library), "--yes", str(root / "p2.jpg")]) == 0
    info = (trash / "info" / "p2.jpg.trashinfo").read_text()
    assert f"Path={root / 'p2.jpg'}" in info  # the freedesktop trash's restore information
    assert main(["undo", "--library", str(library)]) == 0
    assert (root / "p2.jpg").read_bytes() == data and not (trash / "files" / "p2.jpg").exists()
    assert "p2.jpg" in _catalogued(library)
    assert main(["undo", "--library", str(library)]) == 2  # nothing left to undo
    assert "nothing to undo" in capsys.readouterr().err


def test_move_follows_in_the_library_keeps_labels_and_undoes(setup):
    library, root, _ = setup
    with Library(library, create=False) as lib:
        a = lib.store.image_by_path(str(root / "p3.jpg")).content_hash
        b = lib.store.image_by_path(str(root / "p4.jpg")).content_hash
        with lib.store.writing():
            lib.store.add_label(a, b, 1, source="test", path_a=str(root / "p3.jpg"), path_b=str(root / "p4.jpg"))
    (root / "album").mkdir()
    assert main(["move", "--library", str(library), str(root / "p3.jpg"), "--to", str(root / "album")]) == 0
    assert (root / "album" / "p3.jpg").exists() and not (root / "p3.jpg").exists()
    with Library(library, create=False) as lib:
        assert lib.store.image_by_path(str(root / "p3.jpg")) is None
        moved = lib.store.image_by_path(str(root / "album" / "p3.jpg"))
        assert moved is not None and moved.content_hash == a
        (label,) = lib.store.label_rows()
        assert label.label == 1 and str(root / "album" / "p3.jpg") in (label.current_a, label.current_b)
    assert main(["undo", "--library", str(library)]) == 0
    assert (root / "p3.jpg").exists() and not (root / "album" / "p3.jpg").exists()
    with Library(library, create=False) as lib:
        assert lib.store.image_by_path(str(root / "p3.jpg")) is not None
        assert lib.store.image_by_path(str(root / "album" / "p3.jpg")) is None
        assert len(lib.store.label_rows()) == 1


def test_duplicates_trash_others_asks_then_undo_brings_them_back(setup, monkeypatch, capsys):
    library, root, trash = setup
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["duplicates", "--library", str(library), "--strictness", "exact", "--trash-others"]) == 2
    assert (root / "p0-copy.jpg").exists() and not trash.exists()
    capsys.readouterr()
    assert main(["duplicates", "--library", str(library), "--strictness", "exact", "--trash-others", "--yes"]) == 0
    assert (root / "p0.jpg").exists() and not (root / "p0-copy.jpg").exists()
    assert "Moved 1 of 1 photo" in capsys.readouterr().err
    assert "p0-copy.jpg" not in _catalogued(library)
    assert main(["undo", "--library", str(library)]) == 0
    assert (root / "p0-copy.jpg").read_bytes() == (root / "p0.jpg").read_bytes()
    assert "p0-copy.jpg" in _catalogued(library)


def test_copy_into_a_folder_and_undo_sends_the_copy_to_the_trash(setup):
    library, root, trash = setup
    outside = library.parent / "export"
    outside.mkdir()
    assert main(["move", "--library", str(library), "--copy", str(root / "p1.jpg"), "--to", str(outside)]) == 0
    assert (root / "p1.jpg").exists() and (outside / "p1.jpg").exists()
    assert main(["undo", "--library", str(library)]) == 0
    assert not (outside / "p1.jpg").exists() and (trash / "files" / "p1.jpg").exists()
    assert (root / "p1.jpg").exists()


def test_a_busy_library_refuses_before_any_file_moves(setup, capsys):
    library, root, trash = setup
    with Library(library, create=False) as other:  # another process indexing, say
        with other.store.writing():
            assert main(["trash", "--library", str(library), "--yes", str(root / "p1.jpg")]) == 2
            assert main(["move", "--library", str(library), str(root / "p1.jpg"), "--to", str(library.parent)]) == 2
    assert "another Lookalike process" in capsys.readouterr().err
    assert (root / "p1.jpg").exists() and not trash.exists()


def test_two_photos_of_one_name_come_back_to_their_own_places(setup):
    library, root, trash = setup
    (root / "other").mkdir()
    shutil.copyfile(root / "p3.jpg", root / "other" / "p1.jpg")  # same name, different folder and content
    first, second = (root / "p1.jpg").read_bytes(), (root / "other" / "p1.jpg").read_bytes()
    assert main(["trash", "--library", str(library), "--yes", str(root / "p1.jpg"), str(root / "other" / "p1.jpg")]) == 0
    assert sorted(p.name for p in (trash / "files").iterdir()) == ["p1 1.jpg", "p1.jpg"]
    assert main(["undo", "--library", str(library)]) == 0
    assert (root / "p1.jpg").read_bytes() == first and (root / "other" / "p1.jpg").read_bytes() == second
    assert not any((trash / "files").iterdir()) and not any((trash / "info").iterdir())


def test_undo_leaves_a_taken_place_alone_and_can_be_run_again(setup, capsys):
    library, root, _ = setup
    (root / "album").mkdir()
    assert main(["move", "--library", str(library), str(root / "p4.jpg"), "--to", str(root / "album")]) == 0
    (root / "p4.jpg").write_bytes(b"a new file where the photo was")
    assert main(["undo", "--library", str(library)]) == 1
    assert "exists again" in capsys.readouterr().err
    assert (root / "album" / "p4.jpg").exists() and (root / "p4.jpg").read_bytes().startswith(b"a new file")
    (root / "p4.jpg").unlink()
    assert main(["undo", "--library", str(library)]) == 0  # the same move, now that its place is free
    assert (root / "p4.jpg").exists() and not (root / "album" / "p4.jpg").exists()
