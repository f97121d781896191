"""One bad file never stops a run: huge files are not read, memory running out or a decoder process
dying costs that file alone, and no decoder process outlives a killed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest

from engine.errors import DecodeError
from engine.imageio import MAX_FILE_BYTES, REASON_PREFIXES, read_file
from engine.index import Indexer
from engine.library import Library
from engine.store import Store
from engine.workers import TEST_CRASH_ENV
from tests import photos


@pytest.fixture
def library(tmp_path, default_model_dir):
    lib = Library(tmp_path / "library")
    lib.install_model(default_model_dir)
    yield lib
    lib.close()


def _sparse(path, size: int):
    """A file of ``size`` bytes that takes no disk space (a hole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def test_a_huge_file_is_skipped_with_its_size_without_being_read(library, tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        photos.save(photos.scene(900 + i, (320, 240)), root / f"p{i}.jpg")
    big = _sparse(root / "disk-image.jpg", 2 * 1024**3)
    with pytest.raises(DecodeError) as caught:
        read_file(big)
    assert caught.value.reason == "file too large (2.15 GB; limit 1.07 GB)"
    assert caught.value.reason.startswith(REASON_PREFIXES)
    report = Indexer(library, workers=0).run([root])
    assert (report.added, report.skipped) == (3, 1)
    assert report.skipped_files == [(str(big), "file too large (2.15 GB; limit 1.07 GB)")]
    assert MAX_FILE_BYTES >= 900_000_000  # a 150-megapixel 16-bit TIFF still gets in


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limit and /proc: Linux")
def test_running_out_of_memory_on_one_file_is_a_skip_not_a_crash(tmp_path):
    """A decoder under a memory limit reads a file that does not fit: a skip, as it would be under a
    container's memory limit (the issue: 0 of 7 indexed, exit 1)."""
    with Store.open(tmp_path / "lib") as store:
        catalog, thumbs = store.root / "catalog.sqlite3", store.thumbs_dir()
    big = _sparse(tmp_path / "photos" / "big.jpg", 600_000_000)  # under the size cap
    script = f"""
import resource
from engine import index
index._worker_init({str(catalog)!r}, 224, "center-crop", 0, {str(thumbs)!r}, ignore_sigint=False)
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 200_000_000, resource.getrlimit(resource.RLIMIT_AS)[1]))
print(repr(index._process_file({str(big)!r})))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "('skip', 'out of memory', None)"


def _decoder_processes() -> list[psutil.Process]:
    """This test process's decoder workers (spawned children, not the resource tracker)."""
    found = []
    for child in psutil.Process().children():
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in command:
            found.append(child)
    return found


@pytest.mark.slow
def test_a_decoder_killed_from_outside_mid_run_is_replaced_and_nothing_is_lost(library, tmp_path):
    """The out-of-memory killer picks a decoder while it works: the pool is restarted, the files in
    flight are decoded again, every photo gets in."""
    root = tmp_path / "photos"
    for i in range(16):
        photos.save(photos.scene(920 + i, (1600, 1200)), root / f"p{i:02d}.png")
    killed = []

    def kill_one_decoder(progress):
        if not killed and 0 < progress.done < progress.total:
            victims = _decoder_processes()
            if victims:
                os.kill(victims[0].pid, signal.SIGKILL)
                killed.append(progress.done)

    report = Indexer(library, workers=2, progress=kill_one_decoder).run([root])
    assert killed, "the run ended before a decoder could be killed"
    assert (report.added, report.skipped, report.cancelled) == (16, 0, False)
    assert library.status()["images"] == 16


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, default_model_dir):
    cache = tmp_path_factory.mktemp("faults-cache")
    (cache / "models").mkdir()
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    return dict(os.environ, LOOKALIKE_CACHE_DIR=str(cache))


def test_a_file_that_kills_its_decoder_is_skipped_and_the_run_goes_on(cli_env, tmp_path):
    """A file whose decoder dies each time it is read (a decoder fault, a bomb the OOM killer
    stops): skipped with a reason, exit 0, everything else indexed."""
    root = tmp_path / "photos"
    for i in range(6):
        photos.save(photos.scene(940 + i, (320, 240)), root / f"p{i}.jpg")
    photos.save(photos.scene(950, (320, 240)), root / "crash-me.jpg")
    env = dict(cli_env, **{TEST_CRASH_ENV: "crash-me"})
    proc = subprocess.run([sys.executable, "-m", "app.cli", "index", "--json", "--workers", "2",
                           "--library", str(tmp_path / "library"), str(root)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["added"], report["skipped"]) == (6, 1)
    ((path, reason),) = report["skipped_files"]
    assert path == str(root / "crash-me.jpg")
    assert reason == "decoder crashed (killed by SIGKILL, often for lack of memory)"
    assert reason.startswith(REASON_PREFIXES)


def test_reencoding_survives_a_decoder_that_dies_on_an_original(library, tmp_path, default_model_dir,
                                                                 monkeypatch):
    from engine.reencode import encode_missing

    root = tmp_path / "photos"
    for i in range(5):
        photos.save(photos.scene(960 + i, (320, 240)), root / f"p{i}.jpg")
    photos.save(photos.scene(970, (320, 240)), root / "crash-me.jpg")
    Indexer(library, workers=0).run([root])
    twin = tmp_path / "twin"
    shutil.copytree(default_model_dir, twin)
    manifest = json.loads((twin / "manifest.json").read_text())
    manifest.update(backbone_id="0123456789abcdef", name="twin")
    (twin / "manifest.json").write_text(json.dumps(manifest))
    model = library.install_model(twin, activate=False)
    monkeypatch.setenv(TEST_CRASH_ENV, "crash-me")
    monkeypatch.setattr("engine.reencode.SMALL_JOB", 0)  # a pool even for these few photos
    state = encode_missing(library.store, model, workers=1)
    assert (state.done, state.from_thumbnail, state.unreadable) == (6, 1, 0)


def _committed(library_dir) -> int:
    try:
        conn = sqlite3.connect(f"file:{library_dir}/catalog.sqlite3?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'next_slot'").fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, TypeError):
        return 0


@pytest.mark.slow
def test_kill_9_of_a_run_leaves_no_decoder_or_resource_tracker_behind(tmp_path, default_model_dir, cli_env):
    """The issue: each killed `index` left 2 decoders and a resource tracker (46 MB each) under init."""
    root = tmp_path / "photos"
    for i in range(60):
        photos.save(photos.scene(1000 + i, (640, 480)), root / f"p{i:02d}.jpg")
    twin = tmp_path / "twin"
    shutil.copytree(default_model_dir, twin)
    manifest = json.loads((twin / "manifest.json").read_text())
    manifest.update(backbone_id="fedcba9876543210", name="twin")
    (twin / "manifest.json").write_text(json.dumps(manifest))
    library_dir = tmp_path / "library"
    with Library(library_dir) as lib:
        lib.install_model(default_model_dir)
    commands = {
        "index": ["index", "-q", "--workers", "2", "--batch-size", "4", str(root)],
        "re-encode": ["model", "activate", "2"],
    }
    for what, command in commands.items():
        if what == "re-encode":  # the whole folder indexed, then a version with a new backbone
            with Library(library_dir) as lib:
                Indexer(lib, workers=2).run([root])
                lib.install_model(twin, activate=False)
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *command, "--library", str(library_dir)],
                                env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None:
            children = parent.children(recursive=True)
            workers = [c for c in children if "spawn_main" in " ".join(_cmdline(c))]
            if len(workers) >= 2 and (what != "index" or _committed(library_dir) >= 4):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"{what} ended before it could be killed"
        children = parent.children(recursive=True)
        assert len(children) >= 3, f"{what}: expected 2 decoders and a resource tracker, saw {children}"
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"{what}: left behind after kill -9: {[(p.pid, _cmdline(p)) for p in alive]}"


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []
