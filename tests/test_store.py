"""The catalog and arrays: schema versions, crash repair, labels, slots."""

import sqlite3

import numpy as np
import pytest

from engine import arrays
from engine.errors import StoreTooNew, UserError
from engine.store import SCHEMA_VERSION, NewImage, Store


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
    from engine.store import MIGRATIONS, _split_sql

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
    from engine.store import MIGRATIONS, _split_sql

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
