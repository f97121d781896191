"""Encoding a library again with another backbone: same pixels, resumable after a cancel, thumbnails as fallback."""

import json
import shutil
import threading

import numpy as np
import pytest

from engine import arrays, reencode
from engine.errors import Cancelled
from engine.index import Indexer
from engine.library import Library
from tests import photos

PHOTOS = 10


@pytest.fixture
def library_and_twin(tmp_path, default_model_dir):
    """An indexed library, and a copy of its model installed under another backbone id.

    The twin runs the same network, so encoding the photos again must reproduce the indexed
    features exactly: any difference is a difference in decoding or bookkeeping.
    """
    root = tmp_path / "photos"
    for i in range(PHOTOS):
        photos.save(photos.scene(i), root / f"p{i:02d}.jpg", quality=90)
    twin = tmp_path / "twin"
    shutil.copytree(default_model_dir, twin)
    manifest = json.loads((twin / "manifest.json").read_text())
    manifest.update(backbone_id="0123456789abcdef", name="twin")
    (twin / "manifest.json").write_text(json.dumps(manifest))
    lib = Library(tmp_path / "library")
    lib.install_model(default_model_dir)
    Indexer(lib, workers=0).run([root])
    row = lib.install_model(twin, activate=False)
    yield lib, row, root
    lib.close()


def _rows(lib, model):
    n = lib.store.next_slot
    return (arrays.read_rows(lib.store.features_path(model.backbone_id), np.float16, model.feature_dim, n),
            arrays.read_rows(lib.store.codes_path(model.id), np.uint64, model.words, n))


def test_encoding_again_reproduces_the_indexed_features_and_codes(library_and_twin):
    lib, twin, _ = library_and_twin
    original = lib.active_model()
    assert not reencode.is_complete(lib.store, twin)
    state = reencode.encode_missing(lib.store, twin, workers=0)
    assert state.done == PHOTOS and state.unreadable == 0 and state.from_thumbnail == 0
    assert reencode.is_complete(lib.store, twin)
    want_features, want_codes = _rows(lib, original)
    got_features, got_codes = _rows(lib, twin)
    np.testing.assert_array_equal(got_features, want_features)
    np.testing.assert_array_equal(got_codes, want_codes)


def test_a_cancelled_encoding_keeps_its_rows_and_activation_finishes_it(library_and_twin, monkeypatch):
    lib, twin, _ = library_and_twin
    monkeypatch.setattr(reencode, "CHUNK", 4)
    cancel = threading.Event()
    seen = []

    def stop_after_first_chunk(state):
        seen.append(state.done)
        cancel.set()

    with pytest.raises(Cancelled, match="run again to continue"):
        reencode.encode_missing(lib.store, twin, workers=0, progress=stop_after_first_chunk, cancel=cancel)
    assert seen == [4]
    assert arrays.row_count(lib.store.features_path(twin.backbone_id), twin.feature_dim * 2) == 4
    assert lib.active_model().id != twin.id  # the old model still answers searches

    done = []
    row = lib.activate(twin.id, progress=lambda state: done.append(state.done), workers=0)
    assert row.active and done[-1] == PHOTOS - 4
    np.testing.assert_array_equal(_rows(lib, twin)[0], _rows(lib, lib.store.model(1))[0])


def test_a_changed_or_missing_original_is_encoded_from_its_thumbnail(library_and_twin):
    lib, twin, root = library_and_twin
    (root / "p00.jpg").unlink()
    photos.save(photos.scene(99), root / "p01.jpg", quality=90)  # changed since it was indexed
    state = reencode.encode_missing(lib.store, twin, workers=0)
    assert state.from_thumbnail == 2 and state.unreadable == 0
    features, _ = _rows(lib, twin)
    indexed, _ = _rows(lib, lib.store.model(1))
    slot = lib.store.image_by_path(str(root / "p01.jpg")).slot
    # The thumbnail is a smaller JPEG of the same photo: close to the indexed feature, not equal.
    cosine = float(np.dot(features[slot].astype(np.float32), indexed[slot].astype(np.float32)))
    assert 0.8 < cosine < 1.0
    others = [s for s in range(PHOTOS) if s not in (slot, lib.store.image_by_path(str(root / "p00.jpg")).slot)]
    np.testing.assert_array_equal(features[others], indexed[others])
