"""Crash safety: kill -9 an indexing process at any moment; reopening repairs, resuming completes."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from engine import arrays
from engine.library import Library
from engine.repair import check_library
from tests import photos


def _committed(library_dir) -> int:
    try:
        conn = sqlite3.connect(f"file:{library_dir}/catalog.sqlite3?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'next_slot'").fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, TypeError):
        return 0


def _index_cmd(library_dir, root):
    return [sys.executable, "-m", "app.cli", "index", "-q", "--workers", "1", "--batch-size", "4",
            "--library", str(library_dir), str(root)]


def _codes_by_path(library_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with Library(library_dir, create=False) as lib:
        codes = lib.codes()
        features = lib.features()
        live = lib.store.live_slots()
        paths = lib.store.paths_for_slots(live)
        model = lib.active_model()
        # Invariants after any crash: arrays cover exactly the committed slots.
        assert arrays.row_count(lib.store.codes_path(model.id), model.words * 8) == lib.store.next_slot
        assert arrays.row_count(lib.store.features_path(model.backbone_id), model.feature_dim * 2) == lib.store.next_slot
        # ... and their checksums cover exactly those rows, and match.
        found = check_library(lib.store)
        assert found.sound and found.unverified == 0, found.problems()
        return {paths[s]: (np.array(codes[s]), np.array(features[s], dtype=np.float32)) for s in live}


@pytest.mark.slow
def test_kill_9_during_indexing_loses_at_most_the_batch_in_flight(tmp_path, default_model_dir):
    root = tmp_path / "photos"
    for i in range(40):
        photos.save(photos.scene(500 + i, (320, 240)), root / f"p{i:02d}.jpg")
    victim = tmp_path / "victim"
    with Library(victim) as lib:
        lib.install_model(default_model_dir)
    env = dict(os.environ)

    kills = 0
    for target in (4, 12, 24):
        proc = subprocess.Popen(_index_cmd(victim, root), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while _committed(victim) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the indexer and its decoder processes
            kills += 1
        proc.wait()
        before = _committed(victim)
        state = _codes_by_path(victim)  # reopening repairs; invariants hold
        assert len(state) == before
    assert kills >= 2

    done = subprocess.run(_index_cmd(victim, root), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = _codes_by_path(victim)

    clean = tmp_path / "clean"
    with Library(clean) as lib:
        lib.install_model(default_model_dir)
    subprocess.run(_index_cmd(clean, root), env=env, check=True, capture_output=True)
    reference = _codes_by_path(clean)
    assert resumed.keys() == reference.keys() and len(reference) == 40
    for path, (code, feature) in reference.items():
        # Same photo, same model: the same encoding, whatever batch it landed in (batch
        # composition may move float rounding, never a feature by more than float16 noise).
        np.testing.assert_allclose(resumed[path][1], feature, atol=2e-3)
        assert np.bitwise_count(resumed[path][0] ^ code).sum() <= 1
