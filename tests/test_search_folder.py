"""Search restricted to a folder: the same ranking as brute force over that folder's photos, still k results."""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.index import Indexer
from engine.library import Library
from engine.search import SearchParams
from tests import photos


@pytest.fixture(scope="module")
def folder_library(tmp_path_factory, default_model_dir):
    base = tmp_path_factory.mktemp("folder-search")
    root = base / "photos"
    for i in range(12):
        photos.save(photos.scene(400 + i, (320, 240)), root / "a" / f"a{i:02d}.jpg", quality=90)
    for i in range(8):
        photos.save(photos.scene(420 + i, (320, 240)), root / "b" / "deep" / f"b{i:02d}.jpg", quality=90)
    # "a-side" shares a's name as a prefix: a path test, not a folder test, would let it in
    for i in range(3):
        photos.save(photos.scene(440 + i, (320, 240)), root / "a-side" / f"s{i}.jpg", quality=90)
    with Library(base / "library") as library:
        library.install_model(default_model_dir)
        Indexer(library, workers=0).run([root])
    return base / "library", root


def _brute_force(library: Library, words, feature, folder: str, k: int):
    """Every live photo under ``folder``, by cosine desc, Hamming asc, slot asc: the exact answer."""
    store = library.store
    paths = store.paths_for_slots(store.live_slots())
    slots = np.array(sorted(s for s, p in paths.items() if p.startswith(folder + os.sep)), dtype=np.int64)
    codes = library.codes()[slots]
    hamming = np.array([sum(int(w ^ q).bit_count() for w, q in zip(row, words)) for row in codes])
    score = library.features()[slots].astype(np.float32) @ np.asarray(feature, np.float32)
    order = np.lexsort((slots, hamming, -score))[:k]
    return [paths[int(s)] for s in slots[order]]


@pytest.mark.parametrize("params", [SearchParams(k=5), SearchParams(k=50), SearchParams(k=5, pool=6),
                                    SearchParams(k=5, radius=64), SearchParams(k=4, rerank=False)])
def test_folder_filter_keeps_only_that_folder_and_ranks_like_brute_force(folder_library, params):
    path, root = folder_library
    with Library(path) as library:
        words, feature = library.encode_file(root / "b" / "deep" / "b03.jpg")
        folder = str(root / "a")
        hits = library.search_vector(words, feature, params, folder=folder)
        assert len(hits) == min(params.k, 12)  # the mask applies before the pool: k still come back
        assert all(h.path.startswith(folder + os.sep) for h in hits)
        if params.rerank:
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            if params.pool is None:  # the pool covers the folder: exact
                assert [h.path for h in hits] == _brute_force(library, words, feature, folder, params.k)
        else:
            assert [h.hamming for h in hits] == sorted(h.hamming for h in hits)


def test_folder_filter_of_a_sub_folder_with_a_trailing_separator_and_no_photos(folder_library, tmp_path):
    path, root = folder_library
    with Library(path) as library:
        words, feature = library.encode_file(root / "a" / "a01.jpg")
        hits = library.search_vector(words, feature, SearchParams(k=20), folder=str(root / "b") + os.sep)
        assert len(hits) == 8 and all("/b/deep/" in h.path.replace(os.sep, "/") for h in hits)
        assert library.search_vector(words, feature, SearchParams(k=20), folder=tmp_path) == []
        unfiltered = library.search_vector(words, feature, SearchParams(k=100))
        assert len(unfiltered) == 23 and unfiltered[0].path == str(root / "a" / "a01.jpg")


def test_folder_filter_sees_catalog_changes_made_by_another_connection(folder_library, default_model_dir):
    path, root = folder_library
    with Library(path) as library:
        words, feature = library.encode_file(root / "a" / "a02.jpg")
        folder = root / "b"
        assert len(library.search_vector(words, feature, SearchParams(k=50), folder=folder)) == 8  # now cached
        extra = photos.save(photos.scene(460, (320, 240)), folder / "new.jpg")
        with Library(path) as writer:  # as the indexing thread does, on its own connection
            Indexer(writer, workers=0).update([extra])
        hits = library.search_vector(words, feature, SearchParams(k=50), folder=folder)
        assert len(hits) == 9 and str(extra) in {h.path for h in hits}
        extra.unlink()
        with Library(path) as writer:
            Indexer(writer, workers=0).update([extra])
        assert len(library.search_vector(words, feature, SearchParams(k=50), folder=folder)) == 8
