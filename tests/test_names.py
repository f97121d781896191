"""File and folder names that are not valid UTF-8 (old archives): indexed, searched, labelled and printed losslessly."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from engine.index import Indexer
from engine.labels import export_csv_file, import_csv
from engine.library import Library
from engine.paths import display_path
from tests import photos

# Latin-1 names, as a camera or an old Windows copy left them: not valid UTF-8.
FILE = b"\xe9t\xe9.jpg"
FOLDER = b"d\xe9j\xe0"
SIBLING = b"d\xe9j\xe0-vu"   # shares the folder's name as a prefix: a range scan must stop before it
NEIGHBOUR = b"d\xe9j\xe1"    # differs in the last (invalid) byte


def _name(raw: bytes) -> str:
    """How Python names such a file: the undecodable bytes as lone surrogates (PEP 383)."""
    return os.fsdecode(raw)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("names") / "photos"
    root.mkdir()
    try:
        photos.save(photos.scene(800, (320, 240)), root / _name(FILE), quality=90)
    except (OSError, UnicodeEncodeError):  # a file system that only takes UTF-8 names (macOS)
        pytest.skip("this file system refuses names that are not UTF-8")
    for i in range(3):
        photos.save(photos.scene(801 + i, (320, 240)), root / f"p{i}.jpg", quality=90)
    photos.save(photos.scene(810, (320, 240)), root / _name(FOLDER) / "x.jpg", quality=90)
    photos.save(photos.scene(811, (320, 240)), root / _name(FOLDER) / _name(b"y\xff.jpg"), quality=90)
    photos.save(photos.scene(812, (320, 240)), root / _name(SIBLING) / "z.jpg", quality=90)
    photos.save(photos.scene(813, (320, 240)), root / _name(NEIGHBOUR) / "w.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def library(tree, tmp_path_factory, default_model_dir):
    lib = Library(tmp_path_factory.mktemp("names-lib") / "library")
    lib.install_model(default_model_dir)
    report = Indexer(lib, workers=0).run([tree])
    assert (report.added, report.skipped) == (8, 0), report.skipped_files
    yield lib
    lib.close()


def test_every_name_is_indexed_and_found_unchanged_next_time(library, tree):
    store = library.store
    for path in (tree / _name(FILE), tree / _name(FOLDER) / "x.jpg", tree / _name(FOLDER) / _name(b"y\xff.jpg")):
        row = store.image_by_path(str(path))
        assert row is not None and row.status == "ok"
    again = Indexer(library, workers=0).run([tree])
    assert (again.unchanged, again.added, again.removed) == (8, 0, 0)


def test_a_non_utf8_query_path_finds_itself_under_its_real_name(library, tree):
    query = str(tree / _name(FILE))
    hits = library.search_file(query)
    assert hits[0].path == query and hits[0].hamming == 0
    assert os.fsencode(hits[0].path).endswith(b"/" + FILE)
    assert os.path.isfile(hits[0].path)


def test_a_non_utf8_folder_filters_and_scans_exactly_its_photos(library, tree):
    folder = str(tree / _name(FOLDER))
    inside = {os.path.join(folder, "x.jpg"), os.path.join(folder, _name(b"y\xff.jpg"))}
    assert set(library.store.paths_under(folder)) == inside
    words, feature = library.encode_file(tree / "p0.jpg")
    hits = library.search_vector(words, feature, folder=folder)
    assert {h.path for h in hits} == inside


def test_forgetting_a_non_utf8_folder_leaves_its_neighbours(library, tree, tmp_path):
    # On a copy of the catalog: the module's library stays whole for the other tests.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(library.path, copy)
    with Library(copy) as lib:
        assert lib.store.forget_paths([str(tree / _name(FOLDER))]) == 2
        left = set(lib.store.paths_under(str(tree)))
        assert str(tree / _name(SIBLING) / "z.jpg") in left and str(tree / _name(NEIGHBOUR) / "w.jpg") in left
        assert len(left) == 6


def test_labels_csv_round_trips_names_that_are_not_utf8(library, tree, tmp_path):
    a, b = tree / _name(FILE), tree / _name(FOLDER) / _name(b"y\xff.jpg")
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_bytes(b"a,b,label\n" + os.fsencode(a) + b"," + os.fsencode(b) + b",similar\n")
    report = import_csv(library.store, csv_file)
    assert report.problems == [] and report.added == 1
    out = tmp_path / "out.csv"
    assert export_csv_file(library.store, out) == 1
    assert out.read_bytes() == csv_file.read_bytes()


def test_display_path_shows_a_replacement_character_only_where_bytes_are_invalid():
    assert display_path(_name(b"/photos/d\xe9j\xe0/caf\xc3\xa9.jpg")) == "/photos/d\ufffdj\ufffd/café.jpg"
    assert display_path("/plain/path.jpg") == "/plain/path.jpg"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, default_model_dir):
    cache = tmp_path_factory.mktemp("names-cache")
    (cache / "models").mkdir()
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    return dict(os.environ, LOOKALIKE_CACHE_DIR=str(cache),
                LOOKALIKE_LIBRARY=str(tmp_path_factory.mktemp("names-cli") / "library"))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, timeout=300)


def test_cli_indexes_searches_and_prints_such_names_losslessly(cli_env, tree):
    index = _cli(cli_env, "index", "--json", "--workers", "1", os.fsencode(tree))
    assert index.returncode == 0, index.stderr.decode(errors="replace")
    assert json.loads(index.stdout)["added"] == 8
    query = os.fsencode(tree) + b"/" + FILE
    found = _cli(cli_env, "search", "--json", "-k", "3", query)
    assert found.returncode == 0, found.stderr.decode(errors="replace")
    result = json.loads(found.stdout)
    # JSON text cannot hold bytes: the path is Python's surrogate-escaped name, and path_bytes the exact bytes.
    assert os.fsencode(result["query"]) == query
    top = result["results"][0]
    assert os.fsencode(top["path"]) == query and base64.b64decode(top["path_bytes"]) == query
    for hit in result["results"]:  # path_bytes only where the name is not UTF-8
        assert ("path_bytes" in hit) == (not _is_utf8(hit["path"]))
    # Plain text output writes the name's own bytes, as ls and find do.
    text = _cli(cli_env, "search", "-k", "1", query)
    assert text.returncode == 0 and query in text.stdout
    status = _cli(cli_env, "status")
    assert status.returncode == 0 and b"Traceback" not in status.stderr


def test_a_library_folder_whose_own_name_is_not_utf8_works(tree, tmp_path, default_model_dir):
    folder = tmp_path / _name(b"biblioth\xe8que")
    with Library(folder) as lib:
        lib.install_model(default_model_dir)
        report = Indexer(lib, workers=1).run([tree / _name(FOLDER)])  # a decoder process opens the catalog too
        assert (report.added, report.skipped) == (2, 0)
        hits = lib.search_file(tree / _name(FOLDER) / "x.jpg")
        assert hits[0].path == str(tree / _name(FOLDER) / "x.jpg")
