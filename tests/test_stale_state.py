"""State that must not go stale or stick: moved roots, missing files, passing skips, killed runs,
read-only libraries and a busy library."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from engine.errors import UserError
from engine.index import Indexer
from engine.library import Library
from engine.search import SearchParams
from engine.store import Store
from engine.workers import TEST_CRASH_ENV
from tests import photos


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, default_model_dir):
    cache = tmp_path_factory.mktemp("stale-cache")
    (cache / "models").mkdir()
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    return dict(os.environ, LOOKALIKE_CACHE_DIR=str(cache))


def _cli(env, *args, check=False):
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"lookalike {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def two_roots(tmp_path, default_model_dir):
    """A library of two folders, 'home' (8 photos) and 'usb' (4), both indexed."""
    home, usb = tmp_path / "home", tmp_path / "usb"
    for i in range(8):
        photos.save(photos.scene(1100 + i, (320, 240)), home / f"h{i}.jpg")
    for i in range(4):
        photos.save(photos.scene(1120 + i, (320, 240)), usb / f"u{i}.jpg")
    library_dir = tmp_path / "library"
    with Library(library_dir) as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([home, usb])
    return library_dir, home, usb


def test_results_never_show_a_file_that_is_gone_and_k_still_come_back(two_roots, tmp_path):
    library_dir, home, usb = two_roots
    usb.rename(tmp_path / "usb-unplugged")  # the drive is away: its root is not reachable
    (home / "h3.jpg").unlink()  # and one photo was deleted since the last index run
    with Library(library_dir) as lib:
        hits = lib.search_file(tmp_path / "usb-unplugged" / "u0.jpg", SearchParams(k=7))
        assert len(hits) == 7 and all(os.path.exists(h.path) for h in hits)
        assert {h.path for h in hits} == {str(home / f"h{i}.jpg") for i in range(8) if i != 3}
        radius = lib.search_file(home / "h0.jpg", SearchParams(k=20, radius=64))
        assert radius and all(os.path.exists(h.path) for h in radius)


def test_roots_are_listed_with_their_state_and_one_is_forgotten_with_its_photos_not_its_labels(
        two_roots, tmp_path, cli_env):
    library_dir, home, usb = two_roots
    with Library(library_dir) as lib:
        a, b = lib.store.image_by_path(str(home / "h0.jpg")), lib.store.image_by_path(str(usb / "u0.jpg"))
        lib.store.add_label(a.content_hash, b.content_hash, 1, source="test")
    usb.rename(tmp_path / "usb-unplugged")
    library = ["--library", str(library_dir)]
    listed = json.loads(_cli(cli_env, "roots", "--json", *library, check=True).stdout)
    assert listed == [{"path": str(home), "reachable": True, "photos": 8, "skipped": 0},
                      {"path": str(usb), "reachable": False, "photos": 4, "skipped": 0}]
    text = _cli(cli_env, "roots", *library, check=True).stdout
    assert f"{usb}  4 photos, 0 skipped  (not reachable" in text
    unknown = _cli(cli_env, "roots", "forget", str(tmp_path / "nowhere"), *library)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    forgot = _cli(cli_env, "roots", *library, "forget", str(usb) + "/")
    assert forgot.returncode == 0, forgot.stderr
    assert "4 photos" in forgot.stderr
    assert [r["path"] for r in json.loads(_cli(cli_env, "roots", "--json", *library).stdout)] == [str(home)]
    with Library(library_dir) as lib:
        assert lib.status()["images"] == 8 and lib.store.label_count() == 1


def test_a_skip_for_a_reason_that_passes_is_tried_again_next_run(tmp_path, default_model_dir, monkeypatch):
    """Skipped when its decoder died (as under memory pressure): the file did not change, yet the
    next run tries it again and indexes it."""
    root = tmp_path / "photos"
    for i in range(3):
        photos.save(photos.scene(1140 + i, (320, 240)), root / f"p{i}.jpg")
    photos.save(photos.scene(1150, (320, 240)), root / "crash-me.jpg")
    with Library(tmp_path / "library") as lib:
        lib.install_model(default_model_dir)
        monkeypatch.setenv(TEST_CRASH_ENV, "crash-me")
        first = Indexer(lib, workers=1).run([root])
        assert (first.added, first.skipped) == (3, 1)
        assert first.skipped_files[0][1].startswith("decoder crashed")
        monkeypatch.delenv(TEST_CRASH_ENV)
        second = Indexer(lib, workers=0).run([root])
        assert (second.added, second.skipped, second.unchanged) == (1, 0, 3)
        third = Indexer(lib, workers=0).run([root])  # a lasting reason stays put
        assert third.unchanged == 4


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that permissions stop")
def test_a_file_skipped_for_permission_is_indexed_once_readable(tmp_path, default_model_dir):
    root = tmp_path / "photos"
    photo = photos.save(photos.scene(1160, (320, 240)), root / "locked.jpg")
    photo.chmod(0)
    with Library(tmp_path / "library") as lib:
        lib.install_model(default_model_dir)
        assert Indexer(lib, workers=0).run([root]).skipped_files == [(str(photo), "permission denied")]
        photo.chmod(0o644)
        assert Indexer(lib, workers=0).run([root]).added == 1


def test_status_says_interrupted_for_a_run_whose_process_is_gone(tmp_path):
    with Store.open(tmp_path / "lib") as store:
        with store.writing():
            store.start_run()
            assert store.last_run()["status"] == "running"  # this Store's own run
            with Store.open(tmp_path / "lib") as other:  # another process, while the run goes on
                assert other.last_run()["status"] == "running"
    # The process ended without finishing its run (kill -9): the lock is free, the run is over.
    with Store.open(tmp_path / "lib") as store:
        assert store.last_run()["status"] == "interrupted"


def test_train_refuses_a_busy_library_before_any_work(tmp_path, default_model_dir):
    from trainer.fit import HeadConfig
    from trainer.library_train import train_library

    root = tmp_path / "photos"
    for i in range(8):
        photos.save(photos.scene(1170 + i, (320, 240)), root / f"p{i}.jpg")
    with Library(tmp_path / "library") as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([root])
        hashes = [lib.store.image_by_path(str(root / f"p{i}.jpg")).content_hash for i in range(8)]
        for i in range(7):  # enough labels that training would start
            lib.store.add_label(hashes[i], hashes[i + 1], 1 if i % 2 == 0 else -1, source="test")
            lib.store.add_label(hashes[i], hashes[(i + 3) % 8], 1, source="test")
        events = []
        with Store.open(tmp_path / "library") as indexer:  # another process indexing
            indexer.writer_lock()
            with pytest.raises(UserError, match="another Lookalike process"):
                train_library(lib, HeadConfig(bits=64, steps=5), progress=events.append)
        assert events == []  # not one labelled photo read, not one step trained


# ------------------------------------------------------------------ read-only libraries


def _read_only_command(library_dir, command: list[str]) -> list[str]:
    """``command`` run where ``library_dir`` cannot be written: a read-only bind mount (root,
    whom permissions do not stop) or a folder without write permission (anyone else)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to mount the library read-only")
    return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(library_dir), *command]


@pytest.fixture
def read_only(two_roots):
    library_dir = two_roots[0]
    modes = {}
    if os.geteuid() != 0:
        for path in [library_dir, *library_dir.rglob("*")]:
            modes[path] = path.stat().st_mode
            path.chmod(modes[path] & ~0o222)
    yield two_roots
    for path, mode in modes.items():
        path.chmod(mode)


@pytest.mark.parametrize("leftover_wal", [False, True], ids=["closed-cleanly", "writer-killed"])
def test_a_read_only_library_can_be_searched_and_read(read_only, cli_env, leftover_wal):
    library_dir, home, _ = read_only
    if leftover_wal:
        # A writer killed with the catalog open: its last commit is only in catalog.sqlite3-wal.
        script = ("import os, sys\nfrom engine.store import Store\nstore = Store.open(sys.argv[1])\n"
                  "store.add_label('a' * 32, 'b' * 32, 1, source='test')\nos._exit(0)\n")
        if os.geteuid() != 0:
            pytest.skip("the folder is already read-only for this user")
        subprocess.run([sys.executable, "-c", script, str(library_dir)], env=cli_env, check=True)
        assert (library_dir / "catalog.sqlite3-wal").stat().st_size > 0
    python = [sys.executable, "-m", "app.cli"]
    library = ["--library", str(library_dir)]

    def run(*args):
        return subprocess.run(_read_only_command(library_dir, [*python, *args, *library]), env=cli_env,
                              capture_output=True, text=True, timeout=300)

    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["images"] == 12
    assert json.loads(status.stdout)["labels"] == (1 if leftover_wal else 0)
    found = run("search", "--json", "-k", "3", str(home / "h2.jpg"))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["path"] == str(home / "h2.jpg")
    assert run("roots").returncode == 0
    assert run("model", "list").returncode == 0
    refused = run("index")
    assert refused.returncode == 3 and "read-only" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert sorted(p.name for p in library_dir.iterdir() if p.name.startswith("catalog")) == (
        ["catalog.sqlite3", "catalog.sqlite3-shm", "catalog.sqlite3-wal"] if leftover_wal else ["catalog.sqlite3"])
