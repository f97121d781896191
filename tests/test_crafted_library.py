"""A library folder is untrusted input: a crafted one is refused in one line, and nothing outside it is ever written."""

import json
import os
import shutil
import sqlite3

import pytest

from app.cli import EXIT_ENVIRONMENT, main
from engine.errors import UnsafeLibrary
from engine.index import Indexer
from engine.library import Library
from tests import photos


@pytest.fixture(scope="module")
def template(tmp_path_factory, default_model_dir):
    """A small indexed library, copied by each test before it is tampered with."""
    base = tmp_path_factory.mktemp("template")
    root = base / "photos"
    for i in range(3):
        photos.save(photos.scene(60 + i, (160, 120)), root / f"p{i}.jpg")
    with Library(base / "library") as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([root])
    return base


@pytest.fixture
def crafted(template, tmp_path):
    shutil.copytree(template / "photos", tmp_path / "photos")
    shutil.copytree(template / "library", tmp_path / "library", symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.bin"
    victim.write_bytes(b"the person's own file" * 100)
    return tmp_path / "library", outside, victim


def _lookalike(capsys, *args) -> tuple[int, str]:
    status = main(list(args))
    err = capsys.readouterr().err.strip()
    return status, err


def _assert_refused(status, err):
    assert status == EXIT_ENVIRONMENT, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("lookalike: ")


def _snapshot(folder):
    return {p: (p.stat().st_size, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_code_array_linked_to_a_file_elsewhere_is_refused_not_truncated(crafted, capsys):
    library, outside, victim = crafted
    codes = library / "codes" / "0001.u64"
    codes.unlink()
    codes.symlink_to(victim)
    before = _snapshot(outside)
    _assert_refused(*_lookalike(capsys, "status", "--library", str(library)))
    _assert_refused(*_lookalike(capsys, "search", "--library", str(library), str(library.parent / "photos" / "p0.jpg")))
    assert _snapshot(outside) == before


@pytest.mark.parametrize("folder", ["codes", "features", "models", "thumbs"])
def test_a_library_folder_linked_elsewhere_is_refused(crafted, capsys, folder):
    library, outside, _ = crafted
    target = outside / folder
    shutil.move(library / folder, target)
    (library / folder).symlink_to(target)
    before = _snapshot(outside)
    _assert_refused(*_lookalike(capsys, "status", "--library", str(library)))
    _assert_refused(*_lookalike(capsys, "index", "--library", str(library), str(library.parent / "photos")))
    assert _snapshot(outside) == before


@pytest.mark.parametrize("backbone_id", ["../../escaped", "ABSOLUTE", "ABC", ""])
def test_a_backbone_id_in_the_catalog_that_is_not_hex_is_refused(crafted, capsys, backbone_id):
    library, outside, _ = crafted
    if backbone_id == "ABSOLUTE":
        backbone_id = str(outside / "escaped")
    conn = sqlite3.connect(library / "catalog.sqlite3")
    with conn:
        conn.execute("UPDATE models SET backbone_id = ?", (backbone_id,))
    conn.close()
    for args in (["model", "activate", "1"], ["index", str(library.parent / "photos")], ["status"]):
        _assert_refused(*_lookalike(capsys, *args, "--library", str(library)))
    assert not (library.parent / "escaped.f16").exists()
    assert list(outside.iterdir()) == [outside / "precious.bin"]


@pytest.mark.parametrize("backbone_id", ["../../escaped", "ABSOLUTE"])
def test_a_model_folder_whose_manifest_names_a_path_is_refused(crafted, default_model_dir, tmp_path, backbone_id):
    library, outside, _ = crafted
    if backbone_id == "ABSOLUTE":
        backbone_id = str(outside / "escaped")
    model = tmp_path / "model"
    shutil.copytree(default_model_dir, model)
    manifest = json.loads((model / "manifest.json").read_text())
    (model / "manifest.json").write_text(json.dumps({**manifest, "backbone_id": backbone_id}))
    with Library(library, create=False) as lib, pytest.raises(UnsafeLibrary, match="backbone_id"):
        lib.install_model(model)
    assert not (library.parent / "escaped.f16").exists()
    assert list(outside.iterdir()) == [outside / "precious.bin"]


def test_a_model_folder_in_the_library_linked_elsewhere_is_refused(crafted, capsys):
    library, outside, _ = crafted
    shutil.move(library / "models" / "0001", outside / "0001")
    (library / "models" / "0001").symlink_to(outside / "0001")
    before = _snapshot(outside)
    _assert_refused(*_lookalike(capsys, "search", "--library", str(library), str(library.parent / "photos" / "p0.jpg")))
    _assert_refused(*_lookalike(capsys, "model", "refit", "--kind", "lsh", "--library", str(library)))
    assert _snapshot(outside) == before


@pytest.mark.parametrize("name", ["writer.lock", "catalog.sqlite3-wal"])
def test_lock_and_journal_files_linked_elsewhere_are_refused(crafted, capsys, name):
    library, outside, _ = crafted
    (library / name).unlink(missing_ok=True)
    (library / name).symlink_to(outside / "created-by-lookalike")
    _assert_refused(*_lookalike(capsys, "status", "--library", str(library)))
    assert not (outside / "created-by-lookalike").exists()


def test_a_scratch_folder_linked_elsewhere_is_unlinked_not_entered(crafted, capsys):
    library, outside, _ = crafted
    (outside / "job").mkdir()
    (library / ".work-planted").symlink_to(outside / "job")
    assert main(["status", "--library", str(library)]) == 0
    assert not (library / ".work-planted").exists()
    assert list((outside / "job").iterdir()) == []


def test_a_thumbnail_folder_linked_elsewhere_gets_no_thumbnails(crafted, capsys):
    library, outside, _ = crafted
    new = library.parent / "photos" / "new.jpg"
    photos.save(photos.scene(99, (160, 120)), new)
    with Library(library, create=False) as lib:
        from engine.imageio import content_hash

        digest = content_hash(new.read_bytes())
        (lib.store.thumbs_dir() / digest[:2]).mkdir(exist_ok=True)
        shutil.rmtree(lib.store.thumbs_dir() / digest[:2])
        (lib.store.thumbs_dir() / digest[:2]).symlink_to(outside)
        report = Indexer(lib, workers=0).run([library.parent / "photos"])
        assert report.added == 1
    assert list(outside.iterdir()) == [outside / "precious.bin"]


def test_a_fifo_in_place_of_an_array_is_refused_without_hanging(crafted, capsys):
    library, _, _ = crafted
    features = next((library / "features").iterdir())
    features.unlink()
    os.mkfifo(features)
    _assert_refused(*_lookalike(capsys, "search", "--library", str(library), str(library.parent / "photos" / "p0.jpg")))


@pytest.mark.parametrize("value", ["many", "-1", str(1 << 40)])
def test_a_count_of_encoded_photos_that_is_not_one_is_refused(crafted, capsys, value):
    library, _, _ = crafted
    conn = sqlite3.connect(library / "catalog.sqlite3")
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'next_slot'", (value,))
    conn.close()
    _assert_refused(*_lookalike(capsys, "status", "--library", str(library)))
    _assert_refused(*_lookalike(capsys, "search", "--library", str(library), str(library.parent / "photos" / "p0.jpg")))
