"""The catalog and arrays: schema versions, crash repair, labels, slots."""

import sqlite3

import numpy as np
import pytest

from engine import arrays
from engine.errors import StoreTooNew, UserError
from engine.schema import SCHEMA_VERSION
from engine.store import NewImage, Store


def test_new_store_has_current_schema_and_wal(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        assert store.next_slot == 0
        assert store.counts() == {"images": 0, "skipped": 0, "labels": 0, "slots": 0}
    conn = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"images", "labels", "models", "roots", "dead_slots", "meta"} <= tables


def test_a_newer_store_is_refused_with_a_clear_message(tmp_path):
    Store.open(tmp_path / "lib").close()
    conn = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreTooNew, match="newer Lookalike"):
        Store.open(tmp_path / "lib")


def test_opening_a_missing_library_without_create_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no Lookalike library"):
        Store.open(tmp_path / "nothing", create=False)


def test_migrations_from_an_empty_file_are_stepwise(tmp_path):
    (tmp_path / "lib").mkdir()
    sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3").close()  # version 0: empty file
    with Store.open(tmp_path / "lib") as store:
        assert store.next_slot == 0


def _fake_model(tmp_path, bits=64, dim=8, backbone="bb01"):
    import json

    folder = tmp_path / f"model-{bits}-{dim}-{backbone}"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not needed by the store")
    (folder / "manifest.json").write_text(json.dumps({
        "format": 1, "name": "fake", "backbone": "fake", "backbone_id": backbone, "input_size": 32,
        "resize": "center-crop", "bits": bits, "feature_dim": dim, "head": {"kind": "lsh"},
    }))
    return folder


def _commit(store, model, paths, run_id=1):
    first = store.next_slot
    n = len(paths)
    arrays.write_rows(store.codes_path(model.id), first, np.arange(first, first + n, dtype=np.uint64)[:, None])
    arrays.write_rows(store.features_path(model.backbone_id), first,
                      np.full((n, model.feature_dim), 0.5, dtype=np.float16))
    items = [NewImage(p, None, 10, 20, f"h{p}", slot=first + i) for i, p in enumerate(paths)]
    store.commit_batch(items, run_id, first + n)


def test_rows_written_but_never_committed_are_dropped_on_open(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        model = store.add_model(_fake_model(tmp_path), activate=True)
        _commit(store, model, ["/a.jpg", "/b.jpg"])
        # A crash between the array append and the catalog commit:
        arrays.write_rows(store.codes_path(model.id), 2, np.zeros((5, 1), dtype=np.uint64))
        arrays.write_rows(store.features_path(model.backbone_id), 2, np.zeros((5, 8), dtype=np.float16))
        codes_path = store.codes_path(model.id)
    assert arrays.row_count(codes_path, 8) == 7
    with Store.open(tmp_path / "lib") as store:
        assert store.next_slot == 2
        assert arrays.row_count(store.codes_path(model.id), 8) == 2
        assert arrays.row_count(store.features_path("bb01"), 16) == 2


def test_repair_waits_while_another_writer_holds_the_lock(tmp_path):
    with Store.open(tmp_path / "lib") as writer:
        model = writer.add_model(_fake_model(tmp_path), activate=True)
        _commit(writer, model, ["/a.jpg"])
        with writer.writing():
            # The writer's batch in flight, not yet committed:
            arrays.write_rows(writer.codes_path(model.id), 1, np.zeros((3, 1), dtype=np.uint64))
            Store.open(tmp_path / "lib").close()  # a reader opening meanwhile
            assert arrays.row_count(writer.codes_path(model.id), 8) == 4  # untouched


def test_orphan_arrays_of_a_crashed_model_change_are_deleted(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        store.add_model(_fake_model(tmp_path), activate=True)
        orphan = store.codes_path(99)
        orphan.write_bytes(b"\0" * 64)
        (orphan.parent / "0003.u64.tmp").write_bytes(b"\0" * 8)
    Store.open(tmp_path / "lib").close()
    assert not orphan.exists()
    assert not (orphan.parent / "0003.u64.tmp").exists()


def test_a_scratch_folder_left_by_a_killed_job_is_swept_but_one_in_use_is_not(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        abandoned = tmp_path / "lib" / ".work-killed"
        (abandoned / "model").mkdir(parents=True)
        (abandoned / "model" / "model.onnx").write_bytes(b"half written")
        with store.work_dir() as busy:
            (busy / "model").mkdir()
            Store.open(tmp_path / "lib").close()  # another process opening meanwhile
            assert busy.is_dir()  # its owner still holds it
            assert not abandoned.exists()
        assert not busy.exists()


def test_paths_and_slots_under_a_folder_stop_at_its_boundary(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        model = store.add_model(_fake_model(tmp_path), activate=True)
        _commit(store, model, ["/p/a.jpg", "/p/sub/b.jpg", "/p2/c.jpg", "/p.jpg"])
        assert sorted(store.paths_under("/p")) == ["/p/a.jpg", "/p/sub/b.jpg"]
        assert sorted(store.slots_under("/p/").tolist()) == sorted(
            store.image_by_path(p).slot for p in ["/p/a.jpg", "/p/sub/b.jpg"])
        assert store.forget_paths(["/p/sub", "/p.jpg"]) == 2
        assert sorted(store.paths_under("/")) == ["/p/a.jpg", "/p2/c.jpg"]


def test_replacing_a_file_kills_its_old_slot(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        model = store.add_model(_fake_model(tmp_path), activate=True)
        _commit(store, model, ["/a.jpg", "/b.jpg"])
        _commit(store, model, ["/a.jpg"])  # /a.jpg changed: encoded again at slot 2
        assert store.image_by_path("/a.jpg").slot == 2
        assert store.live_mask().tolist() == [False, True, True]
        assert store.paths_for_slots([0, 1, 2]) == {1: "/b.jpg", 2: "/a.jpg"}


def test_sweep_forgets_unseen_files_only_under_walked_roots(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        model = store.add_model(_fake_model(tmp_path), activate=True)
        root = store.add_root("/photos")
        other = store.add_root("/nas")
        first = store.next_slot
        arrays.write_rows(store.codes_path(model.id), 0, np.zeros((3, 1), dtype=np.uint64))
        arrays.write_rows(store.features_path("bb01"), 0, np.zeros((3, 8), dtype=np.float16))
        store.commit_batch([
            NewImage("/photos/a.jpg", root, 1, 1, "ha", slot=first),
            NewImage("/photos/b.jpg", root, 1, 1, "hb", slot=first + 1),
            NewImage("/nas/c.jpg", other, 1, 1, "hc", slot=first + 2),
        ], run_id=1, next_slot=3)
        store.mark_seen([store.image_by_path("/photos/a.jpg").id], run_id=2)
        assert store.sweep([root], run_id=2) == 1
        assert store.image_by_path("/photos/b.jpg") is None
        assert store.image_by_path("/nas/c.jpg") is not None
        assert store.live_mask().tolist() == [True, False, True]


def test_labels_are_canonical_pairs_and_survive_reopening(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        store.add_label("bbb", "aaa", 1, source="test", path_a="/b.jpg", path_b="/a.jpg")
        store.add_label("aaa", "bbb", -1, source="feedback")  # relabelled: replaces
        with pytest.raises(UserError):
            store.add_label("aaa", "aaa", 1, source="test")
        with pytest.raises(ValueError):
            store.add_label("aaa", "ccc", 0, source="test")
    with Store.open(tmp_path / "lib") as store:
        (row,) = store.labels()
        assert row[:4] == ("aaa", "bbb", -1, "feedback")


def test_skipped_files_keep_their_reason(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        store.commit_batch([NewImage("/x/bad.jpg", None, 0, 1, None, reason="empty file")], run_id=1, next_slot=0)
        assert store.skipped() == [("/x/bad.jpg", "empty file")]
        assert store.skip_reasons() == [("empty file", 1)]
        assert store.counts()["skipped"] == 1


def test_a_version_1_store_migrates_and_keeps_labels_and_models(tmp_path):
    # Build a store as version 1 wrote it, then open it with today's code.
    from engine.schema import MIGRATIONS, split_sql as _split_sql

    (tmp_path / "lib").mkdir()
    conn = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3")
    for statement in _split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO labels (hash_a, hash_b, label, source, created_at) VALUES ('a', 'b', 1, 'gui', 'x')")
    conn.execute("INSERT INTO models (id, name, backbone_id, bits, feature_dim, manifest, created_at, active) "
                 "VALUES (1, 'm', 'bb', 64, 8, '{}', 't', 1)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store.open(tmp_path / "lib") as store:
        assert store.labels()[0][:4] == ("a", "b", 1, "gui")
        assert store.active_model().id == 1
        assert store.previous_model() is None


def test_a_version_2_store_with_text_paths_migrates_to_byte_paths(tmp_path):
    """Schema 3 keeps paths as the file system's bytes; text paths written before still match."""
    from engine.schema import MIGRATIONS, split_sql as _split_sql

    (tmp_path / "lib").mkdir()
    conn = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3")
    for step in MIGRATIONS[:2]:
        for statement in _split_sql(step):
            conn.execute(statement)
    conn.execute("INSERT INTO roots (id, path, added_at) VALUES (1, '/photos', 't')")
    conn.execute("INSERT INTO images (path, dir, root_id, size, mtime_ns, content_hash, status, slot, indexed_at) "
                 "VALUES ('/photos/caf\u00e9/a.jpg', '/photos/caf\u00e9', 1, 1, 1, 'ha', 'ok', 0, 't')")
    conn.execute("INSERT INTO labels (hash_a, hash_b, label, source, path_a, path_b, created_at) "
                 "VALUES ('ha', 'hb', 1, 'gui', '/photos/caf\u00e9/a.jpg', NULL, 'x')")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'next_slot'")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store.open(tmp_path / "lib") as store:
        assert store.roots() == [(1, "/photos")]
        assert store.image_by_path("/photos/caf\u00e9/a.jpg").slot == 0
        assert list(store.images_in_dir("/photos/caf\u00e9")) == ["/photos/caf\u00e9/a.jpg"]
        assert store.paths_under("/photos") == ["/photos/caf\u00e9/a.jpg"]
        assert store.labels()[0][4:6] == ("/photos/caf\u00e9/a.jpg", None)
    conn = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3")
    assert conn.execute("SELECT typeof(path), path FROM images").fetchone() == ("blob", "/photos/café/a.jpg".encode())


def test_previous_model_follows_activation_history(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        first = store.add_model(_fake_model(tmp_path), activate=True)
        second = store.add_model(_fake_model(tmp_path, backbone="bb02"), activate=True)
        assert store.previous_model().id == first.id
        store.activate(first.id)
        assert store.previous_model().id == second.id


def test_opening_a_new_library_from_many_processes_at_once_migrates_it_once(tmp_path):
    # The GUI's threads and a CLI may all open a library that does not exist yet.
    import concurrent.futures as cf
    import multiprocessing

    with cf.ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_open_and_count, [str(tmp_path / "lib")] * 8))
    assert results == [0] * 8


def _open_and_count(path: str) -> int:
    with Store.open(path) as store:
        return store.next_slot


def _add_versions(store, tmp_path, backbones, *, activate=True):
    """One version per backbone id, each activated in turn (v1 first) unless not ``activate``."""
    import shutil

    rows = []
    for n, backbone in enumerate(backbones):
        (tmp_path / f"v{n}").mkdir(parents=True)
        folder = _fake_model(tmp_path / f"v{n}", backbone=backbone)
        rows.append(store.add_model(folder, activate=activate))
        shutil.rmtree(folder)
    return rows


def test_roll_back_twice_walks_the_activation_history(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        v1, v2, v3 = _add_versions(store, tmp_path, ["bb01", "bb01", "bb01"])
        assert store.previous_model().id == v2.id
        assert store.roll_back().id == v2.id
        assert store.previous_model().id == v1.id  # not back to v3
        assert store.roll_back().id == v1.id
        assert store.active_model().id == v1.id and store.previous_model() is None
        with pytest.raises(UserError, match="no earlier model"):
            store.roll_back()
        assert store.activation_history() == [v1.id]


def test_a_plain_activation_after_a_roll_back_starts_a_new_branch(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        v1, v2, v3 = _add_versions(store, tmp_path, ["bb01", "bb01", "bb01"])
        store.roll_back()               # v3 -> v2; v3 is rolled back from
        store.activate(v3.id)           # chosen again by hand: on the history anew
        assert store.activation_history() == [v1.id, v2.id, v3.id]
        store.roll_back()
        (v4,) = _add_versions(store, tmp_path / "more", ["bb01"])  # trained and activated from v2
        assert store.activation_history() == [v1.id, v2.id, v4.id]
        assert [store.roll_back().id, store.roll_back().id] == [v2.id, v1.id]
        store.activate(v1.id)           # already active: no new entry
        assert store.activation_history() == [v1.id]


def test_a_version_2_store_migrates_and_its_history_rolls_back(tmp_path):
    from engine.schema import MIGRATIONS, split_sql as _split_sql

    (tmp_path / "lib").mkdir()
    conn = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite3")
    for step in MIGRATIONS[:2]:
        for statement in _split_sql(step):
            conn.execute(statement)
    for model_id in (1, 2, 3):
        conn.execute("INSERT INTO models (id, name, backbone_id, bits, feature_dim, manifest, created_at, active) "
                     "VALUES (?, 'm', 'bb', 64, 8, '{}', 't', ?)", (model_id, int(model_id == 3)))
    conn.executemany("INSERT INTO activations (model_id, at) VALUES (?, 't')", [(1,), (2,), (3,)])
    conn.execute("INSERT INTO labels (hash_a, hash_b, label, source, created_at) VALUES ('a', 'b', 1, 'gui', 'x')")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store.open(tmp_path / "lib") as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.activation_history() == [1, 2, 3]
        assert [store.roll_back().id, store.roll_back().id] == [2, 1]
        assert store.labels()[0][:4] == ("a", "b", 1, "gui")


def test_deleting_a_version_removes_its_files_keeps_labels_and_the_history_consistent(tmp_path):
    from engine.library import Library

    with Store.open(tmp_path / "lib") as store:
        v1, v2, v3, v4 = _add_versions(store, tmp_path, ["bb01", "bb02", "bb01", "bb03"])
        _commit(store, v4, ["/a.jpg", "/b.jpg"])
        for version in (v1, v2, v3):  # every version codes both photos, with checksums
            arrays.write_rows(store.codes_path(version.id), 0, np.zeros((2, 1), dtype=np.uint64))
            arrays.write_rows(store.features_path(version.backbone_id), 0, np.zeros((2, 8), dtype=np.float16))
            store.adopt_rows(store.arrays_of(version).codes, 2)
        store.adopt_rows(store.features_file("bb02", 8), 2)
        store.add_label("ha", "hb", 1, source="test")
    with Library(tmp_path / "lib", create=False) as library:
        store = library.store
        with pytest.raises(UserError, match="active"):
            library.delete_model(v4.id)
        removed = library.delete_model(v3.id)  # shares its backbone with v1: the features stay
        assert set(removed) == {store.model_dir(v3.id), store.codes_path(v3.id)}
        assert not store.model_dir(v3.id).exists() and not store.codes_path(v3.id).exists()
        assert store.features_path("bb01").exists()
        library.delete_model(v2.id)  # its backbone's only version: the features go too
        assert not store.features_path("bb02").exists()
        assert store.chunk_sums("codes/0002.u64") == {} and store.chunk_sums("features/bb02.f16") == {}
        assert store.chunk_sums("codes/0001.u64")  # the others' checksums stay
        assert [m.id for m in store.models()] == [v1.id, v4.id]
        assert store.activation_history() == [v1.id, v4.id]
        assert store.roll_back().id == v1.id  # never onto a deleted version
        assert store.label("ha", "hb").label == 1 and store.label_count() == 1
        assert store.model_dir(v4.id).exists() and store.codes_path(v4.id).exists()
        with pytest.raises(UserError, match="no model version"):
            library.delete_model(v3.id)
        # A deleted version's number is never given to a new one.
        (v5,) = _add_versions(store, tmp_path / "more", ["bb01"], activate=False)
        assert v5.id == v4.id + 1
        library.delete_model(v4.id)
        (v6,) = _add_versions(store, tmp_path / "again", ["bb01"], activate=False)
        assert v6.id == v5.id + 1


def test_deleting_a_version_waits_for_no_one_holding_the_writer_lock(tmp_path):
    from engine.library import Library

    with Store.open(tmp_path / "lib") as store:
        v1, v2 = _add_versions(store, tmp_path, ["bb01", "bb01"])
    with Store.open(tmp_path / "lib") as indexer, Library(tmp_path / "lib", create=False) as library:
        assert indexer.try_writer_lock()  # another writer, e.g. an index run
        with pytest.raises(UserError, match="another Lookalike process"):
            library.delete_model(v1.id)
        assert library.store.model_dir(v1.id).exists()
    with Library(tmp_path / "lib", create=False) as library:
        library.delete_model(v1.id)


def test_a_version_folder_left_by_a_crash_is_removed_on_open(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        (v1,) = _add_versions(store, tmp_path, ["bb01"])
        stray = store.model_dir(v1.id + 1)
        stray.mkdir()
        (stray / "model.onnx").write_bytes(b"half written")
    with Store.open(tmp_path / "lib") as store:
        assert not stray.exists() and store.model_dir(v1.id).exists()


def test_a_pair_is_keyed_by_its_hashes_in_order_whichever_way_it_is_given():
    from engine.pairs import pair_key, pair_key_with

    assert pair_key("b" * 32, "a" * 32) == pair_key("a" * 32, "b" * 32) == ("a" * 32, "b" * 32)
    assert pair_key_with("b" * 32, "a" * 32, "/b.jpg", "/a.jpg") == ("a" * 32, "b" * 32, "/a.jpg", "/b.jpg")


def test_a_resumed_encoding_keeps_no_code_row_beyond_its_feature_row(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        model = store.add_model(_fake_model(tmp_path), activate=False)
        model_arrays = store.arrays_of(model)
        model_arrays.append(0, features=np.zeros((3, 8), np.float16), codes=np.zeros((5, 1), np.uint64))
        assert (model_arrays.features.rows(), model_arrays.codes.rows(), model_arrays.coverage()) == (3, 5, 3)
        assert model_arrays.cut_to_resume(need=2) == (2, 2)
        assert (model_arrays.features.rows(), model_arrays.codes.rows()) == (2, 2)
        assert model_arrays.covers(2) and not model_arrays.covers(3)
