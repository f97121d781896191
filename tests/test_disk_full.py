"""A full disk is one line and exit 3, leaves no scratch behind, and loses nothing: the next run completes."""

import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from app.cli import EXIT_ENVIRONMENT, main
from engine.index import Indexer
from engine.library import Library
from engine.repair import check_library
from tests import photos

PHOTOS = 16
ROOMY = 64 * 1024  # KiB


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i in range(PHOTOS):
        photos.save(photos.scene(900 + i, (320, 240)), root / f"p{i:02d}.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photo_root, default_model_dir):
    """The same photos indexed on a roomy disk: what a resumed run must end with."""
    with Library(tmp_path_factory.mktemp("reference") / "library") as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([photo_root])
        return _encodings(lib)


@pytest.fixture
def cache(tmp_path, default_model_dir):
    folder = tmp_path / "cache"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "efficientnet-lite0-lsh-64").symlink_to(default_model_dir)
    return folder


class SmallDisk:
    """A tmpfs of a chosen size (a real file system that fills up), resizable."""

    def __init__(self, path):
        self.path = path

    def mount(self, kib: int) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(self.path)], check=True,
                       capture_output=True)

    def resize(self, kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(self.path)], check=True, capture_output=True)

    def used_kib(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "disk")
    disk.path.mkdir()
    try:
        disk.mount(ROOMY)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("mounting a tmpfs needs root; the injected tests below cover the same code paths")
    yield disk
    subprocess.run(["umount", "-l", str(disk.path)], check=False, capture_output=True)


def _encodings(lib) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    codes, features = lib.codes(), lib.features()
    paths = lib.store.paths_for_slots(lib.store.live_slots())
    return {path: (np.array(codes[slot]), np.array(features[slot], dtype=np.float32)) for slot, path in paths.items()}


def _assert_same(library_dir, reference) -> None:
    with Library(library_dir, create=False) as lib:
        found = check_library(lib.store)
        assert found.sound and found.unverified == 0, found.problems()
        resumed = _encodings(lib)
    assert resumed.keys() == reference.keys() and len(resumed) == PHOTOS
    for path, (code, feature) in reference.items():
        np.testing.assert_allclose(resumed[path][1], feature, atol=2e-3)
        assert np.bitwise_count(resumed[path][0] ^ code).sum() <= 1


def _no_scratch(library_dir) -> None:
    leftovers = [p for p in library_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".work-")]
    assert leftovers == []


def _index(capsys, library_dir, root) -> tuple[int, str]:
    status = main(["index", "-q", "--workers", "0", "--batch-size", "4", "--library", str(library_dir), str(root)])
    return status, capsys.readouterr().err.strip()


def _one_line_disk_full(status, err) -> None:
    assert status == EXIT_ENVIRONMENT, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "disk is full" in err


@pytest.mark.slow
def test_indexing_onto_a_disk_that_fills_up_stops_in_one_line_and_resumes(small_disk, photo_root, reference,
                                                                          default_model_dir, capsys):
    library_dir = small_disk.path / "library"
    with Library(library_dir) as lib:
        lib.install_model(default_model_dir)
    small_disk.resize(small_disk.used_kib() + 300)  # room for a few photos, not all
    # In a process of its own: what the person sees on stderr, decoder processes included.
    proc = subprocess.run([sys.executable, "-m", "app.cli", "index", "-q", "--workers", "1", "--batch-size", "4",
                           "--library", str(library_dir), str(photo_root)], capture_output=True, text=True)
    _one_line_disk_full(proc.returncode, proc.stderr.strip())
    _no_scratch(library_dir)
    with Library(library_dir, create=False) as lib:
        assert 0 < lib.store.next_slot < PHOTOS  # it did stop part way
        assert check_library(lib.store).sound
    small_disk.resize(ROOMY)
    status, err = _index(capsys, library_dir, photo_root)
    assert status == 0, err
    _assert_same(library_dir, reference)


def test_a_model_that_does_not_fit_leaves_no_half_copy(small_disk, cache, monkeypatch, capsys):
    library_dir = small_disk.path / "library"
    small_disk.resize(8 * 1024)  # smaller than the model
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(cache))
    status = main(["model", "build", "--library", str(library_dir)])
    _one_line_disk_full(status, capsys.readouterr().err.strip())
    assert list((library_dir / "models").iterdir()) == []
    _no_scratch(library_dir)
    small_disk.resize(ROOMY)
    assert main(["model", "build", "--library", str(library_dir)]) == 0


# The same, on any machine: the real code paths, with ENOSPC raised by the write calls themselves.

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_from_an_array_write_is_one_line_and_the_next_run_completes(tmp_path, photo_root, reference,
                                                                           default_model_dir, monkeypatch, capsys):
    library_dir = tmp_path / "library"
    with Library(library_dir) as lib:
        lib.install_model(default_model_dir)
    real_pwrite = os.pwrite
    writes = []

    def pwrite_until_full(fd, data, offset):
        writes.append(offset)
        if len(writes) > 4:  # two batches of four photos (codes, features), then the disk is full
            _enospc()
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite_until_full)
    _one_line_disk_full(*_index(capsys, library_dir, photo_root))
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    _no_scratch(library_dir)
    with Library(library_dir, create=False) as lib:
        assert lib.store.next_slot == 8
    status, err = _index(capsys, library_dir, photo_root)
    assert status == 0, err
    _assert_same(library_dir, reference)


def test_enospc_while_copying_a_model_removes_the_half_copy(tmp_path, cache, monkeypatch, capsys):
    library_dir = tmp_path / "library"
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(cache))
    monkeypatch.setattr(shutil, "copyfileobj", _enospc)
    status = main(["model", "build", "--library", str(library_dir)])
    _one_line_disk_full(status, capsys.readouterr().err.strip())
    assert list((library_dir / "models").iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(cache))
    assert main(["model", "build", "--library", str(library_dir)]) == 0
    assert (library_dir / "models" / "0001" / "model.onnx").is_file()
