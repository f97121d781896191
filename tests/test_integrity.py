"""Damage is found, said in one line, and mended: array checksums, the catalog's own check, `lookalike repair`."""

import json
import shutil
import sqlite3

import numpy as np
import pytest

from app.cli import EXIT_ENVIRONMENT, main
from engine import arrays
from engine.index import Indexer
from engine.library import Library
from engine.repair import check_library
from tests import photos

PHOTOS = 8


@pytest.fixture(scope="module")
def template(tmp_path_factory, default_model_dir):
    base = tmp_path_factory.mktemp("template")
    root = base / "photos"
    for i in range(PHOTOS):
        photos.save(photos.scene(80 + i, (200, 150)), root / f"p{i}.jpg", quality=90)
    with Library(base / "library") as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([root])
        lib.store.add_label(*sorted(d for d, _ in lib.store.images_for_slots([0, 1]).values()), 1, source="pairs")
    return base


@pytest.fixture
def library(template, tmp_path):
    """A copy of the template library; its photos are the template's (never changed)."""
    shutil.copytree(template / "library", tmp_path / "library")
    return tmp_path / "library", template / "photos"


def _arrays(library_dir):
    with Library(library_dir, create=False) as lib:
        model = lib.active_model()
        return (lib.store.codes_path(model.id), lib.store.features_path(model.backbone_id),
                np.array(lib.codes()), np.array(lib.features()))


def _run(capsys, *args) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip()


def _one_line(err: str, *words: str) -> None:
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def _search_top(capsys, library_dir, query) -> list[dict]:
    status, out, err = _run(capsys, "search", "--json", "-k", "5", "--library", str(library_dir), str(query))
    assert status == 0, err
    return json.loads(out)["results"]


def test_flipped_bits_in_the_codes_are_found_said_and_repaired(library, capsys):
    library_dir, root = library
    codes_path, _, codes, _ = _arrays(library_dir)
    data = bytearray(codes_path.read_bytes())
    data[3 * 8: 4 * 8] = bytes(b ^ 0xFF for b in data[3 * 8: 4 * 8])  # photo 3's code, every bit flipped
    codes_path.write_bytes(bytes(data))

    query = root / "p3.jpg"
    status, _, err = _run(capsys, "search", "--library", str(library_dir), str(query))
    assert status == EXIT_ENVIRONMENT
    _one_line(err, "codes", "damaged", "lookalike repair")
    status, _, err = _run(capsys, "status", "--library", str(library_dir))
    assert status == EXIT_ENVIRONMENT
    _one_line(err, "damaged", "lookalike repair")

    status, _, err = _run(capsys, "repair", "--library", str(library_dir))
    assert status == 0, err
    assert "code rows recomputed" in err
    top = _search_top(capsys, library_dir, query)
    assert top[0]["path"] == str(query) and top[0]["hamming"] <= 2 and len(top) == 5
    repaired = _arrays(library_dir)[2]
    # Codes recomputed from the float16 features may differ from the encoder's in a bit whose
    # logit is near zero; never in more than a few.
    assert np.bitwise_count(repaired ^ codes).sum(axis=1).max() <= 2
    assert main(["repair", "--check", "--library", str(library_dir)]) == 0


def test_a_feature_row_made_huge_is_not_a_match_but_damage(library, capsys):
    library_dir, root = library
    _, features_path, _, features = _arrays(library_dir)
    data = bytearray(features_path.read_bytes())
    row = 5 * features.shape[1] * 2
    data[row + 1] ^= 0x40  # an exponent bit of the first value: about 3e4 times larger
    features_path.write_bytes(bytes(data))

    status, _, err = _run(capsys, "search", "--library", str(library_dir), str(root / "p5.jpg"))
    assert status == EXIT_ENVIRONMENT
    _one_line(err, "features", "damaged", "lookalike repair")

    status, _, err = _run(capsys, "repair", "--library", str(library_dir))
    assert status == 0, err
    assert f"{PHOTOS} photos encoded again" in err  # the damaged chunk: every photo of this small library
    # Encoded again from the same originals: the same features, bit for bit.
    np.testing.assert_array_equal(_arrays(library_dir)[3], features)
    assert _search_top(capsys, library_dir, root / "p5.jpg")[0]["path"] == str(root / "p5.jpg")


def test_a_subtle_flip_in_the_features_is_found_by_repair_check(library, capsys):
    library_dir, _ = library
    _, features_path, _, features = _arrays(library_dir)
    data = bytearray(features_path.read_bytes())
    data[2 * features.shape[1] * 2 + 10] ^= 0x01  # the lowest mantissa bit of one value
    features_path.write_bytes(bytes(data))
    status, out, err = _run(capsys, "repair", "--check", "--library", str(library_dir))
    assert status == EXIT_ENVIRONMENT
    assert "features/" in out and "damaged" in out
    _one_line(err, "damaged", "lookalike repair")
    assert main(["repair", "--library", str(library_dir)]) == 0
    np.testing.assert_array_equal(_arrays(library_dir)[3], features)


def test_a_damaged_catalog_page_is_one_line_everywhere_and_repair_check_shows_it(library, capsys):
    library_dir, root = library
    catalog = library_dir / "catalog.sqlite3"
    conn = sqlite3.connect(catalog)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root_page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
    conn.close()
    data = bytearray(catalog.read_bytes())
    start = (root_page - 1) * page_size
    data[start:start + page_size] = np.random.default_rng(0).integers(0, 256, page_size, dtype=np.uint8).tobytes()
    catalog.write_bytes(bytes(data))

    for args in (["status"], ["index", str(root)], ["search", str(root / "p0.jpg")], ["model", "list"]):
        status, _, err = _run(capsys, *args, "--library", str(library_dir))
        if args == ["model", "list"]:  # reads only the models table: still works
            assert status == 0, err
            continue
        assert status == EXIT_ENVIRONMENT, (args, err)
        _one_line(err, "catalog", "damaged", "repair --check")
    status, out, err = _run(capsys, "repair", "--check", "--library", str(library_dir))
    assert status == EXIT_ENVIRONMENT
    assert out.startswith("catalog: ")
    _one_line(err, "catalog is damaged", "backup", "labels export")


def test_a_library_from_before_checksums_keeps_working_and_repair_gives_them(library, capsys):
    library_dir, root = library
    conn = sqlite3.connect(library_dir / "catalog.sqlite3")
    with conn:  # as schema 2 left it: no checksums
        conn.execute("DROP TABLE array_chunks")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    with Library(library_dir, create=False) as lib:  # migrates; codes get checksums on this write-open
        found = check_library(lib.store)
        assert found.sound
        model = lib.active_model()
        assert found.unverified == PHOTOS  # the features: too big to read at every open
        assert lib.search_file(root / "p1.jpg")[0].path == str(root / "p1.jpg")
    status, _, err = _run(capsys, "repair", "--library", str(library_dir))
    assert status == 0 and f"{PHOTOS} rows given a checksum" in err, err
    with Library(library_dir, create=False) as lib:
        found = check_library(lib.store, catalog=True)
        assert found.sound and found.unverified == 0 and found.catalog == ["ok"]
        assert lib.store.label_count() == 1
        assert model.id == lib.active_model().id


def test_checksums_follow_appends_and_reencoding(library, capsys, default_model_dir, tmp_path):
    library_dir, _ = library
    root = tmp_path / "more"
    for i in range(3):
        photos.save(photos.scene(180 + i, (200, 150)), root / f"new{i}.jpg")
    with Library(library_dir, create=False) as lib:
        Indexer(lib, workers=0).run([root])
        (root / "new0.jpg").unlink()
        Indexer(lib, workers=0).run([root])
        twin = tmp_path / "twin"
        shutil.copytree(default_model_dir, twin)
        manifest = json.loads((twin / "manifest.json").read_text())
        (twin / "manifest.json").write_text(json.dumps({**manifest, "backbone_id": "00ff00ff00ff00ff"}))
        lib.install_model(twin, activate=True, workers=0)
        lib.refit_head("lsh")
        found = check_library(lib.store)
        assert found.sound and found.unverified == 0, found.problems()
        assert len({a.array for a in found.arrays}) == 5  # 3 code arrays, 2 feature arrays
        assert all(a.recorded == lib.store.next_slot for a in found.arrays)


def test_arrays_that_span_several_chunks_are_checked_and_mended_chunk_by_chunk(tmp_path, monkeypatch):
    # Small chunks so a few photos span several: the same code paths as 1,024-row chunks.
    monkeypatch.setattr(arrays, "CHUNK_ROWS", 3)
    from engine.store import NewImage, Store
    from tests.test_store import _fake_model

    with Store.open(tmp_path / "lib") as store:
        model = store.add_model(_fake_model(tmp_path), activate=True)
        for batch in (["/a", "/b"], ["/c", "/d", "/e"], ["/f"], ["/g", "/h"]):
            first = store.next_slot
            codes = np.arange(first, first + len(batch), dtype=np.uint64)[:, None]
            features = np.full((len(batch), model.feature_dim), 0.5, dtype=np.float16)
            sums = store.append_rows(store.arrays_of(model), first, features=features, codes=codes)
            items = [NewImage(p, None, 1, 1, f"h{p}", slot=first + i) for i, p in enumerate(batch)]
            store.commit_batch(items, 1, first + len(batch), sums)
        codes_file = store.arrays_of(model).codes
        path = codes_file.path
        sums = store.chunk_sums(codes_file.key)
        assert [rows for rows, _ in sums.values()] == [3, 3, 2]
        assert store.verify_array(codes_file).damaged == []
        data = bytearray(path.read_bytes())
        data[4 * 8] ^= 1  # row 4: chunk 1
        path.write_bytes(bytes(data))
        assert store.verify_array(codes_file).damaged == [(3, 6)]
        assert store.verify_array(codes_file, 6).damaged == []  # from row 6 on: chunk 2 only
