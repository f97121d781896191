"""No version becomes active before its arrays cover every photo, and no array falling short ever costs catalog rows."""

import json
import shutil

import numpy as np
import pytest

from app.cli import main
from engine import arrays, reencode
from engine.errors import LibraryDamaged
from engine.index import Indexer
from engine.library import Library
from tests import photos

PHOTOS = 6
TWIN_BACKBONE = "0123456789abcdef"


def _twin(default_model_dir, folder):
    """The default network under another backbone id: what a full-mode training installs."""
    shutil.copytree(default_model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(backbone_id=TWIN_BACKBONE, name="full-trained")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def full_mode_library(tmp_path, default_model_dir):
    """A library whose active version came from another backbone than the default model's,
    with photos indexed under it (so the default backbone's features cover none of them) and
    labelled pairs."""
    root = tmp_path / "photos"
    for i in range(PHOTOS):
        photos.save(photos.scene(40 + i, (320, 240)), root / f"p{i}.jpg", quality=90)
    lib_dir = tmp_path / "library"
    with Library(lib_dir) as lib:
        lib.install_model(_twin(default_model_dir, tmp_path / "twin"))
        Indexer(lib, workers=0).run([root])
        hashes = sorted(lib.store.images_for_slots(lib.store.live_slots()).values())
        lib.store.add_label(hashes[0][0], hashes[1][0], 1, source="pairs")
        lib.store.add_label(hashes[2][0], hashes[3][0], -1, source="pairs")
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "efficientnet-lite0-lsh-64").symlink_to(default_model_dir)
    return lib_dir, root, cache


def _check_whole(lib_dir, root, *, active_backbone):
    with Library(lib_dir, create=False) as lib:
        assert lib.store.counts()["images"] == PHOTOS
        assert lib.store.label_count() == 2
        model = lib.active_model()
        assert model.backbone_id == active_backbone
        assert reencode.is_complete(lib.store, model)
        for i in (0, PHOTOS - 1):
            hits = lib.search_file(root / f"p{i}.jpg")
            assert hits[0].path == str(root / f"p{i}.jpg") and hits[0].hamming == 0
            assert len(hits) == PHOTOS


def test_model_build_over_a_full_mode_version_keeps_every_photo_and_label(full_mode_library, monkeypatch, capsys):
    lib_dir, root, cache = full_mode_library
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(cache))
    default_backbone = json.loads((cache / "models" / "efficientnet-lite0-lsh-64" / "manifest.json").read_text())[
        "backbone_id"]
    assert main(["model", "build", "--library", str(lib_dir)]) == 0
    assert "is active" in capsys.readouterr().err
    _check_whole(lib_dir, root, active_backbone=default_backbone)
    assert main(["status", "--library", str(lib_dir)]) == 0
    assert f"{PHOTOS} indexed" in capsys.readouterr().out
    # and back: the previous version is complete too
    assert main(["model", "rollback", "--library", str(lib_dir)]) == 0
    _check_whole(lib_dir, root, active_backbone=TWIN_BACKBONE)


def test_installing_a_version_of_a_new_backbone_as_active_encodes_the_library_first(full_mode_library, default_model_dir):
    lib_dir, root, _ = full_mode_library
    seen = []
    with Library(lib_dir, create=False) as lib:
        row = lib.install_model(default_model_dir, activate=True, workers=0,
                                progress=lambda state: seen.append((state.done, state.total)))
        assert row.active and seen[-1] == (PHOTOS, PHOTOS)
    _check_whole(lib_dir, root, active_backbone=row.backbone_id)


def test_the_store_refuses_to_activate_a_version_its_arrays_do_not_cover(full_mode_library, default_model_dir):
    lib_dir, _, _ = full_mode_library
    with Library(lib_dir, create=False) as lib:
        row = lib.store.add_model(default_model_dir, activate=False)
        with pytest.raises(RuntimeError, match="covers 0 of 6"):
            lib.store.activate(row.id)
        with pytest.raises(RuntimeError, match="covers 0 of 6"):
            lib.store.add_model(default_model_dir, activate=True)
        assert lib.active_model().backbone_id == TWIN_BACKBONE


def test_an_active_array_found_short_loses_no_rows_and_is_encoded_again(full_mode_library):
    lib_dir, root, _ = full_mode_library
    with Library(lib_dir, create=False) as lib:
        model = lib.active_model()
        features_path = lib.store.features_path(model.backbone_id)
        codes_path = lib.store.codes_path(model.id)
        indexed = np.array(lib.features())
    # Damage (or lost pages): both arrays shorter than the committed slots.
    arrays.truncate_rows(features_path, model.feature_dim * 2, 2)
    arrays.truncate_rows(codes_path, model.words * 8, 2)
    with Library(lib_dir, create=False) as lib:
        assert lib.store.counts()["images"] == PHOTOS  # no catalog row dropped
        # Meanwhile search says so rather than answer from part of the library.
        with pytest.raises(LibraryDamaged, match="lookalike repair"):
            lib.search_file(root / "p0.jpg")
        # An index run encodes the missing ones again before it appends anything.
        report = Indexer(lib, workers=0).run([root])
        assert report.unchanged == PHOTOS
        assert reencode.is_complete(lib.store, lib.active_model())
        np.testing.assert_array_equal(np.array(lib.features()), indexed)
    _check_whole(lib_dir, root, active_backbone=TWIN_BACKBONE)
