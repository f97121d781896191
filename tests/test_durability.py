"""Durability order: everything a catalog commit points at is on disk (file and folder entry) before the commit."""

import json
import os

import pytest

from engine.atomic import atomic_path, write_json_atomic
from engine.index import Indexer
from engine.library import Library
from tests import photos


class Journal:
    """What reached the disk, in order: fsync of a file or folder, a rename, a catalog statement."""

    def __init__(self, monkeypatch):
        self.events: list[tuple[str, str]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd):
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            return real_fsync(fd)

        def replace(src, dst, **kwargs):
            self.events.append(("rename", f"{os.fspath(src)} -> {os.fspath(dst)}"))
            return real_replace(src, dst, **kwargs)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def watch(self, store) -> None:
        store._conn.set_trace_callback(lambda sql: self.events.append(("sql", " ".join(sql.split()))))

    def index(self, kind: str, what: str, start: int = 0) -> int:
        for n in range(start, len(self.events)):
            if self.events[n][0] == kind and what in self.events[n][1]:
                return n
        raise AssertionError(f"no {kind} {what!r} in {self.events[start:]}")

    def commit_after(self, sql: str) -> int:
        return self.index("sql", "COMMIT", self.index("sql", sql))


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads fd paths from /proc")


def test_a_model_version_is_on_disk_before_the_commit_that_adds_it(tmp_path, default_model_dir, monkeypatch):
    with Library(tmp_path / "library") as lib:
        journal = Journal(monkeypatch)
        journal.watch(lib.store)
        row = lib.install_model(default_model_dir)
        models = str(lib.store.root / "models")
        commit = journal.commit_after("INSERT INTO models")
        for synced in (f"{models}/0001.tmp/model.onnx", f"{models}/0001.tmp/manifest.json", f"{models}/0001.tmp"):
            assert journal.index("fsync", synced) < commit, synced
        renamed = journal.index("rename", f"{models}/0001.tmp -> {models}/0001")
        assert renamed < journal.index("fsync", models, renamed) < commit  # the rename itself, synced
        codes = str(lib.store.codes_path(row.id))
        assert journal.index("fsync", str(lib.store.root / "codes")) < commit  # the new code file's entry
        assert codes and row.active


def test_an_atomic_write_syncs_the_file_then_the_folder_after_the_rename(tmp_path, monkeypatch):
    journal = Journal(monkeypatch)
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"a": 1})
    renamed = journal.index("rename", f"-> {target}")
    assert journal.index("fsync", str(tmp_path) + "/manifest.json.") < renamed  # the temporary file's data
    assert journal.index("fsync", str(tmp_path), renamed) > renamed
    assert json.loads(target.read_text()) == {"a": 1}


def test_a_write_by_file_name_is_synced_then_renamed_and_a_failed_one_leaves_the_file_alone(tmp_path, monkeypatch):
    target = tmp_path / "cache.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["cache.npy"]

    journal = Journal(monkeypatch)
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npy")  # np.save adds no suffix of its own
        tmp.write_bytes(b"new")
    renamed = journal.index("rename", f"-> {target}")
    assert journal.index("fsync", str(tmp)) < renamed < journal.index("fsync", str(tmp_path), renamed)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["cache.npy"]


def test_each_batch_syncs_its_rows_before_the_commit_that_counts_them(tmp_path, default_model_dir, monkeypatch):
    root = tmp_path / "photos"
    for i in range(5):
        photos.save(photos.scene(300 + i, (160, 120)), root / f"p{i}.jpg")
    with Library(tmp_path / "library") as lib:
        lib.install_model(default_model_dir)
        assert lib.store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a commit is on disk
        journal = Journal(monkeypatch)
        journal.watch(lib.store)
        Indexer(lib, workers=0, batch_size=2).run([root])
        model = lib.active_model()
        codes, features = str(lib.store.codes_path(model.id)), str(lib.store.features_path(model.backbone_id))
        start = 0
        for _ in range(3):  # batches of 2, 2, 1
            commit = journal.commit_after("INSERT OR REPLACE INTO meta")
            sums = journal.index("sql", "INSERT OR REPLACE INTO array_chunks", start)
            assert journal.index("fsync", codes, start) < sums < commit
            # features before codes (ModelArrays.append): a code row on disk always has its feature row
            assert journal.index("fsync", features, start) < journal.index("fsync", codes, start)
            start = commit + 1
            journal.events = journal.events[start:]
            start = 0


def test_labels_export_to_a_file_is_all_or_nothing_and_synced(tmp_path, monkeypatch, capsys):
    from app.cli import main
    from engine.store import Store

    with Store.open(tmp_path / "library") as store:
        store.add_label("a" * 32, "b" * 32, 1, source="pairs", path_a="/x/a.jpg", path_b="/x/b.jpg")
    journal = Journal(monkeypatch)
    out = tmp_path / "labels.csv"
    assert main(["labels", "export", str(out), "--library", str(tmp_path / "library")]) == 0
    renamed = journal.index("rename", f"-> {out}")
    assert journal.index("fsync", str(tmp_path) + "/labels.csv.") < renamed < journal.index("fsync", str(tmp_path), renamed)
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith("/x/a.jpg,/x/b.jpg,")
    assert not list(tmp_path.glob("*.tmp"))
