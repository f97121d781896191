"""Searching as a person refines it: the re-rank space a version names, examples, several photos, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engine import models
from engine.codes import codes_from_logits
from engine.index import Indexer
from engine.library import Library, Query
from engine.search import COPY_COSINE, CodeSpace, SearchParams
from tests import photos

PHOTOS = 24  # plus a copy of s05 and large.jpg


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, default_model_dir):
    """A library of distinct scenes, a byte-identical copy of one, and a photo it does not hold."""
    base = tmp_path_factory.mktemp("refine")
    root = base / "photos"
    for i in range(PHOTOS):
        photos.save(photos.scene(600 + i, (320, 240)), root / f"s{i:02d}.jpg", quality=90)
    (root / "copy-of-s05.jpg").write_bytes((root / "s05.jpg").read_bytes())
    photos.save(photos.scene(650), root / "large.jpg", quality=92)  # 640 x 480: its edited copies are checked
    outside = photos.save(photos.scene(690, (320, 240)), base / "outside" / "new.jpg", quality=90)
    with Library(base / "library") as library:
        library.install_model(default_model_dir)
        Indexer(library, workers=0).run([root])
    return base / "library", root, outside


@pytest.fixture
def library(scenes, tmp_path):
    """A private copy of the indexed library (versions added here stay here)."""
    import shutil

    path = tmp_path / "library"
    shutil.copytree(scenes[0], path)
    with Library(path, create=False) as lib:
        yield lib


def _install_code_version(library: Library, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A version whose head is not the zero-label one and whose manifest says it re-ranks by code."""
    active = library.active_model()
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((active.feature_dim, active.bits)).astype(np.float32)
    bias = np.zeros(active.bits, np.float32)
    with library.store.work_dir() as tmp:
        models.write_with_head(library.store.model_dir(active.id), tmp / "model", weight, bias,
                               {"name": "test-code", "rerank": "code", "head": {"kind": "test", "mode": "head"}})
        library.install_model(tmp / "model", activate=True)
    return weight, bias


def _order(hits) -> list[str]:
    return [h.path for h in hits]


def test_a_version_without_a_rerank_field_ranks_by_features(library, scenes):
    _, root, _ = scenes
    assert "rerank" not in library.active_model().manifest
    query = root / "s03.jpg"
    auto = library.search_file(query, SearchParams(k=PHOTOS))
    assert _order(auto) == _order(library.search_file(query, SearchParams(k=PHOTOS, rerank="features")))
    assert [h.score for h in auto] == sorted((h.score for h in auto), reverse=True)


def test_a_version_that_says_code_ranks_in_its_heads_space(library, scenes):
    _, root, _ = scenes
    weight, bias = _install_code_version(library)
    features = np.asarray(library.features(), np.float32)
    codes = library.codes()
    paths = library.store.paths_for_slots(library.store.live_slots())
    differs = 0
    for name in ("s03.jpg", "s11.jpg", "s17.jpg"):
        hits = library.search_file(root / name, SearchParams(k=PHOTOS + 2))
        slot = library.store.image_by_path(str(root / name)).slot
        # brute force: copies of the query first, then agreement of the stored bits with tanh(f W + b)
        t = np.tanh(features[slot] @ weight + bias)
        bits = np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little")[:, :weight.shape[1]]
        agreement = ((2.0 * bits - 1) @ t) / np.abs(t).sum()
        cosine = features @ features[slot]
        key = np.where(cosine >= COPY_COSINE, 2 + cosine, agreement)
        hamming = np.array([sum(int(a ^ b).bit_count() for a, b in zip(row, codes[slot])) for row in codes])
        slots = np.array(sorted(paths))
        want = slots[np.lexsort((slots, hamming[slots], -cosine[slots], -key[slots]))]
        assert _order(hits) == [paths[int(s)] for s in want]
        assert hits[0].path == str(root / name)
        by_features = library.search_file(root / name, SearchParams(k=PHOTOS + 2, rerank="features"))
        differs += _order(by_features) != _order(hits)
    assert differs  # the expert's --rerank features really is another ranking


def test_the_head_is_read_from_npy_files_and_a_damaged_one_falls_back_to_the_model_file(library):
    weight, bias = _install_code_version(library, seed=1)
    model = library.active_model()
    directory = library.store.model_dir(model.id)
    stored = models.load_head_arrays(directory, model.feature_dim, model.bits)
    np.testing.assert_array_equal(stored[0], weight)
    np.testing.assert_array_equal(stored[1], bias)
    # a library folder is untrusted: wrong shapes, pickles and garbage are refused, not loaded
    np.save(directory / "head_weight.npy", np.zeros((3, 3), np.float32))
    assert models.load_head_arrays(directory, model.feature_dim, model.bits) is None
    np.save(directory / "head_weight.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    assert models.load_head_arrays(directory, model.feature_dim, model.bits) is None
    (directory / "head_weight.npy").write_bytes(b"not an array")
    assert models.load_head_arrays(directory, model.feature_dim, model.bits) is None
    elsewhere = directory.parent / "weight-elsewhere.npy"
    np.save(elsewhere, weight)
    (directory / "head_weight.npy").unlink()
    (directory / "head_weight.npy").symlink_to(elsewhere)  # right content, but a link: refused
    assert models.load_head_arrays(directory, model.feature_dim, model.bits) is None
    with Library(library.path, create=False) as fresh:
        np.testing.assert_array_equal(fresh.head()[0], weight)  # from model.onnx


def test_a_search_in_the_code_space_imports_neither_onnx_nor_onnxruntime(library, scenes):
    _install_code_version(library)
    code = (
        "import sys, app.cli\n"
        f"rc = app.cli.main(['search', '--library', {str(library.path)!r}, '--json', {str(scenes[1] / 's02.jpg')!r}])\n"
        "assert rc == 0\n"
        "print('onnx' in sys.modules, 'onnxruntime' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.strip().splitlines()[-1] == "False False"
    assert json.loads(proc.stdout)["results"][0]["path"] == str(scenes[1] / "s02.jpg")


def test_an_edited_copy_still_comes_first_when_the_version_ranks_by_code(library, scenes, tmp_path):
    """A copy (feature cosine >= COPY_COSINE: resized, recompressed, rotated; a 4% crop of these
    procedural scenes often falls below) comes first whatever the head, here a random one."""
    _, root, _ = scenes
    _install_code_version(library)
    original = np.asarray(library.features()[library.store.image_by_path(str(root / "large.jpg")).slot], np.float32)
    copies = 0
    for edit, path in photos.edited_copies(photos.scene(650), tmp_path / "edits").items():
        if float(library.example_from_file(path).feature @ original) >= COPY_COSINE:
            copies += 1
            assert library.search_file(path, SearchParams(k=3))[0].path == str(root / "large.jpg"), edit
    assert copies >= 3


def test_an_indexed_photo_is_searched_from_its_stored_arrays_and_by_content(library, scenes, tmp_path):
    _, root, _ = scenes
    moved = tmp_path / "renamed.jpg"
    moved.write_bytes((root / "s07.jpg").read_bytes())
    example = library.example_from_file(moved)
    slot = library.store.image_by_path(str(root / "s07.jpg")).slot
    assert slot in example.slots and library._encoder is None  # no ONNX session was needed
    np.testing.assert_array_equal(example.feature, np.asarray(library.features()[slot], np.float32))
    pair = library.example_from_file(root / "s05.jpg").slots
    assert len(pair) == 2  # the photo and its byte-identical copy


def test_unlike_photos_and_their_copies_never_appear(library, scenes):
    _, root, _ = scenes
    unlike = library.example_from_file(root / "s05.jpg")
    query = Query((library.example_from_file(root / "s04.jpg"),), unlike=(unlike,))
    for rerank in ("auto", "features", "none"):
        hits = library.search_query(query, SearchParams(k=100, rerank=rerank))
        found = {h.path for h in hits}
        assert str(root / "s05.jpg") not in found and str(root / "copy-of-s05.jpg") not in found
        assert len(hits) == PHOTOS + 2 - 2


def test_like_and_unlike_move_the_query(library, scenes):
    _, root, _ = scenes
    query = Query((library.example_from_file(root / "s00.jpg"),))
    plain = library.search_query(query, SearchParams(k=PHOTOS))
    target = plain[-1].path  # the photo least like the query
    liked = library.search_query(query.refined(like=[library.example_from_file(target)]), SearchParams(k=PHOTOS))
    assert [h.path for h in liked].index(target) < [h.path for h in plain].index(target)
    # marked again on the other side, the photo leaves the results
    refined = query.refined(like=[library.example_from_file(target)])
    refined = refined.refined(unlike=[library.example_from_slot(library.store.image_by_path(target).slot)])
    assert not refined.like and len(refined.unlike) == 1
    assert target not in {h.path for h in library.search_query(refined, SearchParams(k=PHOTOS))}


def test_a_photo_that_is_not_indexed_works_as_an_example(library, scenes):
    _, root, outside = scenes
    example = library.example_from_file(outside)
    assert example.slots == () and example.feature.shape == (library.active_model().feature_dim,)
    hits = library.search_query(Query((library.example_from_file(root / "s01.jpg"),), like=(example,)),
                                SearchParams(k=5))
    assert len(hits) == 5


def test_several_photos_are_one_query_through_their_mean(library, scenes):
    _, root, _ = scenes
    a, b = (library.example_from_file(root / name) for name in ("s08.jpg", "s09.jpg"))
    hits = library.search_query(Query((a, b)), SearchParams(k=PHOTOS + 2))
    mean = (a.feature + b.feature) / np.linalg.norm(a.feature + b.feature)
    features = np.asarray(library.features(), np.float32)
    scores = {h.path: float(features[h.slot] @ mean) for h in hits}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    np.testing.assert_allclose([h.score for h in hits], [scores[h.path] for h in hits], atol=2e-3)
    assert {hits[0].path, hits[1].path} == {str(root / "s08.jpg"), str(root / "s09.jpg")}
    # ranked by Hamming only, the query is the sign of their mean code in the head's space
    none = library.search_query(Query((a, b)), SearchParams(k=3, rerank="none"))
    w, bias = library.head()
    head = CodeSpace(w, bias)
    refined = codes_from_logits(((head.embed(a.feature) + head.embed(b.feature)) / 2)[None])[0]
    assert none[0].hamming == min(sum(int(x ^ y).bit_count() for x, y in zip(row, refined))
                                  for row in library.codes()[library.store.live_slots()])


def test_a_query_needs_a_photo(library):
    from engine.errors import UserError

    with pytest.raises(UserError):
        library.search_query(Query(()))


# ------------------------------------------------------------------ the command line


def _cli(library_path, *args):
    env = dict(os.environ, LOOKALIKE_LIBRARY=str(library_path))
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_like_unlike_together_and_rerank(scenes):
    lib, root, outside = scenes
    q1, q2 = str(root / "s02.jpg"), str(root / "s03.jpg")
    proc = _cli(lib, "search", "--json", "-k", "30", "--like", str(outside), "--unlike", str(root / "s05.jpg"), q1, q2)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["query"] for line in lines] == [q1, q2]  # one line per query, as without examples
    for line in lines:
        assert line["like"] == [str(outside)] and line["unlike"] == [str(root / "s05.jpg")]
        paths = [r["path"] for r in line["results"]]
        assert str(root / "s05.jpg") not in paths and str(root / "copy-of-s05.jpg") not in paths
    together = _cli(lib, "search", "--json", "-k", "5", "--together", q1, q2)
    assert together.returncode == 0, together.stderr
    (line,) = [json.loads(text) for text in together.stdout.splitlines()]
    assert line["query"] == [q1, q2] and {r["path"] for r in line["results"][:2]} == {q1, q2}
    none = _cli(lib, "search", "--json", "-k", "8", "--rerank", "none", q1).stdout
    assert none == _cli(lib, "search", "--json", "-k", "8", "--no-rerank", q1).stdout
    hamming = [r["hamming"] for r in json.loads(none)["results"]]
    assert hamming == sorted(hamming)
    code = _cli(lib, "search", "--json", "-k", "8", "--rerank", "code", q1)
    assert code.returncode == 0 and json.loads(code.stdout)["results"][0]["path"] == q1
    missing = _cli(lib, "search", "--like", str(root / "nope.jpg"), q1)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        f"lookalike: --like {root / 'nope.jpg'}: no such file"]
