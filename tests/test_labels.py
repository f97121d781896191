"""Labelled pairs: CSV import is all or nothing with line numbers; export round-trips; labels survive moves."""

import io
import shutil

import pytest

from engine.errors import UserError
from engine.index import Indexer
from engine.labels import export_csv, import_class_folders, import_csv
from engine.library import Library
from tests import photos


@pytest.fixture
def indexed(tmp_path, default_model_dir):
    root = tmp_path / "photos"
    for i in range(5):
        photos.save(photos.scene(700 + i, (320, 240)), root / f"p{i}.jpg")
    lib = Library(tmp_path / "lib")
    lib.install_model(default_model_dir)
    Indexer(lib, workers=0).run([root])
    yield lib, root
    lib.close()


def test_import_accepts_words_numbers_and_paths_relative_to_the_csv(indexed):
    lib, root = indexed
    (root / "pairs.csv").write_text(
        "a,b,label\n"
        f"{root}/p0.jpg,{root}/p1.jpg,similar\n"
        "p1.jpg,p2.jpg,-1\n"
        "\n"
        "p3.jpg,p4.jpg,1\n"
    )
    report = import_csv(lib.store, root / "pairs.csv")
    assert report.problems == [] and report.added == 3
    assert sorted(row[2] for row in lib.store.labels()) == [-1, 1, 1]


def test_a_bad_row_imports_nothing_and_names_its_line(indexed):
    lib, root = indexed
    (root / "pairs.csv").write_text(
        "a,b,label\n"
        "p0.jpg,p1.jpg,similar\n"
        "p0.jpg,missing.jpg,similar\n"
        "p0.jpg,p2.jpg,maybe\n"
        "p0.jpg,p0.jpg,similar\n"
        "p0.jpg,p1.jpg\n"
    )
    report = import_csv(lib.store, root / "pairs.csv")
    assert report.added == 0 and lib.store.labels() == []
    text = "\n".join(report.problems)
    assert "line 3: missing.jpg is not an indexed photo" in text
    assert "line 4: label 'maybe'" in text
    assert "line 5:" in text and "same photo" in text
    assert "line 6: expected 3 fields" in text


def test_a_file_without_the_header_is_refused(indexed):
    lib, root = indexed
    (root / "pairs.csv").write_text("p0.jpg,p1.jpg,similar\n")
    with pytest.raises(UserError, match=":1: the first line must be the header"):
        import_csv(lib.store, root / "pairs.csv")


def test_labels_follow_a_moved_photo_and_export_round_trips(indexed, tmp_path):
    lib, root = indexed
    (root / "pairs.csv").write_text("a,b,label\np0.jpg,p1.jpg,similar\np2.jpg,p3.jpg,dissimilar\n")
    import_csv(lib.store, root / "pairs.csv")
    (root / "sub").mkdir()
    shutil.move(root / "p0.jpg", root / "sub" / "moved.jpg")
    Indexer(lib, workers=0).run([root])
    out = io.StringIO()
    assert export_csv(lib.store, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "a,b,label"
    assert any(str(root / "sub" / "moved.jpg") in line and line.endswith("similar") for line in lines)
    # Re-import of the export into a fresh library with the same photos is clean.
    (tmp_path / "export.csv").write_text(out.getvalue())
    report = import_csv(lib.store, tmp_path / "export.csv")
    assert report.problems == [] and len(lib.store.labels()) == 2


def test_class_folders_become_similar_and_dissimilar_pairs(tmp_path, default_model_dir):
    root = tmp_path / "kinds"
    for kind, base in (("cats", 800), ("boats", 820), ("maps", 840)):
        for i in range(4):
            photos.save(photos.scene(base + i, (200, 150)), root / kind / ("deeper" if i == 3 else "") / f"{i}.jpg")
    photos.truncated(root / "maps" / "broken.jpg", photos.scene(860))
    (root / ".hidden").mkdir()
    photos.save(photos.scene(870), root / ".hidden" / "x.jpg")
    with Library(tmp_path / "lib") as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([root])
        report = import_class_folders(lib.store, root, per_photo=2, seed=1)
        assert report.problems == ["maps: 1 photo(s) not indexed, left out"]
        rows = lib.store.labels()
        assert len(rows) == report.added and report.added >= 12  # every photo has partners of both kinds
        kind_of = {}
        for kind in ("cats", "boats", "maps"):
            for path in (root / kind).rglob("*.jpg"):
                row = lib.store.image_by_path(str(path))
                if row is not None and row.status == "ok":
                    kind_of[row.content_hash] = kind
        assert len(kind_of) == 12
        for hash_a, hash_b, label, *_ in rows:
            assert label == (1 if kind_of[hash_a] == kind_of[hash_b] else -1)
        assert {label for _, _, label, *_ in rows} == {1, -1}
        assert {h for row in rows for h in row[:2]} == set(kind_of)  # nothing from the hidden folder
        with pytest.raises(UserError, match="at least two subfolders"):
            import_class_folders(lib.store, root / "cats")
