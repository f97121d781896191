"""Tests of the trainer's data loading, retrieval splits and pair-to-group conversion (trainer.data)."""

import gzip
import io
import struct

import numpy as np
import pytest
from PIL import Image

from engine.errors import EnvironmentProblem, UserError
from engine.imageio import decode_image
from trainer.data import (
    FASHION_MNIST_DIR,
    DatasetMissing,
    Split,
    fashion_mnist_dir,
    groups_from_pairs,
    load_class_folders,
    load_digits_images,
    load_fashion_mnist,
    pairs_to_index,
    read_idx,
    retrieval_split,
    to_rgb_pixels,
)


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


# ---------------------------------------------------------------------------- IDX


def test_read_idx_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(images, 0x08))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 0x08)))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, images)
        got[0, 0, 0] = 7  # writable, not a view of the file's bytes


def test_read_idx_big_endian_ints_come_back_native(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "v").write_bytes(idx_bytes(values, 0x0C))
    got = read_idx(tmp_path / "v")
    assert got.dtype == np.dtype("=i4")
    np.testing.assert_array_equal(got, [1, -2, 70000])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "data type"),
        (b"\x00\x00\x08\x00", "no dimensions"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 2), "cut short"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab", "need 3 bytes"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"ab", "need 1 bytes"),
        (b"\x00\x00", "magic"),
        (gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"ab")[:-6], "gzip"),
    ],
    ids=["magic", "type", "no-dims", "short-header", "short-data", "long-data", "tiny", "cut-gzip"],
)
def test_read_idx_rejects_malformed_files(tmp_path, data, message):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        read_idx(path)


# ---------------------------------------------------------------------------- datasets


def test_fashion_mnist_loads_all_70000_train_then_test():
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({FASHION_MNIST_DIR} missing)")
    images, labels = load_fashion_mnist(FASHION_MNIST_DIR)
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (70000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [7000] * 10)
    np.testing.assert_array_equal(np.bincount(labels[:60000]), [6000] * 10)
    assert labels[0] == 9 and labels[60000] == 9  # the first image of each file is an ankle boot
    assert images.max() == 255


def test_fashion_mnist_missing_names_the_package_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_FASHION_MNIST", str(tmp_path))
    assert fashion_mnist_dir() == tmp_path
    with pytest.raises(DatasetMissing, match="apt-get install dataset-fashion-mnist") as e:
        load_fashion_mnist()
    assert "LOOKALIKE_FASHION_MNIST" in str(e.value)
    assert isinstance(e.value, EnvironmentProblem)


def test_fashion_mnist_from_a_small_fake_copy(tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 5), ("t10k", 3)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        (tmp_path / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x, 0x08)))
        (tmp_path / f"{part}-labels-idx1-ubyte").write_bytes(idx_bytes(y, 0x08))  # plain works too
    images, labels = load_fashion_mnist(tmp_path)
    assert images.shape == (8, 28, 28) and labels.shape == (8,)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8), 0x08))
    with pytest.raises(DatasetMissing, match="3 labels"):
        load_fashion_mnist(tmp_path)


def test_digits_images():
    images, labels = load_digits_images()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 255
    assert set(np.unique(labels)) == set(range(10))


# ---------------------------------------------------------------------------- pixels


def test_to_rgb_pixels_shape_dtype_and_determinism():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    a = to_rgb_pixels(gray, 56)
    assert a.shape == (5, 56, 56, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, to_rgb_pixels(gray, 56))
    np.testing.assert_array_equal(a[..., 0], a[..., 2])  # gray stays gray
    b = to_rgb_pixels(gray, 56, resample="bilinear")
    assert b.shape == a.shape and not np.array_equal(a, b)
    same = to_rgb_pixels(gray, 28)
    np.testing.assert_array_equal(same[..., 1], gray)
    assert to_rgb_pixels(np.zeros((0, 8, 8), np.uint8), 16).shape == (0, 16, 16, 3)
    with pytest.raises(ValueError):
        to_rgb_pixels(gray.astype(np.float32), 56)


def test_to_rgb_pixels_equals_what_the_engine_decodes_from_a_png():
    gray = np.random.default_rng(2).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    ours = to_rgb_pixels(gray, 64)
    for img, mine in zip(gray, ours):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        engine = decode_image(buf.getvalue(), size=64, resize="center-crop", thumb_size=0).pixels
        np.testing.assert_array_equal(mine, engine)


# ---------------------------------------------------------------------------- class folders


def test_load_class_folders(tmp_path):
    def png(path, value):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (value, value, value)).save(path)

    png(tmp_path / "cats" / "b.png", 10)
    png(tmp_path / "cats" / "a.PNG", 20)
    png(tmp_path / "cats" / "deeper" / "c.png", 30)
    png(tmp_path / "dogs" / "x.png", 40)
    png(tmp_path / "loose.png", 50)  # not in a class folder: ignored
    png(tmp_path / ".hidden" / "h.png", 60)
    png(tmp_path / "dogs" / ".thumbs" / "t.png", 70)
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()  # no images: not a class

    paths, labels, names = load_class_folders(tmp_path)
    assert names == ["cats", "dogs"]
    rel = [str(p).replace(str(tmp_path) + "/", "") for p in paths]
    assert rel == ["cats/a.PNG", "cats/b.png", "cats/deeper/c.png", "dogs/x.png"]
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [0, 0, 0, 1])
    assert all(isinstance(p, str) for p in paths)
    with Image.open(paths[0]) as im:
        assert im.size == (8, 8)


def test_load_class_folders_needs_two_classes(tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "only" / "a.png")
    with pytest.raises(UserError, match="at least two"):
        load_class_folders(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        load_class_folders(tmp_path / "missing")


# ---------------------------------------------------------------------------- splits


def balanced_labels(per_class=60, classes=5, seed=0):
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(classes), per_class))


def test_retrieval_split_invariants():
    labels = balanced_labels()
    s = retrieval_split(labels, queries_per_class=10, train_size=100, seed=3)
    assert isinstance(s, Split)
    assert len(np.intersect1d(s.query, s.database)) == 0
    assert len(s.query) + len(s.database) == len(labels)  # no database subsampling: everything used
    np.testing.assert_array_equal(np.bincount(labels[s.query]), [10] * 5)
    np.testing.assert_array_equal(np.bincount(labels[s.train]), [20] * 5)
    assert np.isin(s.train, s.database).all()
    for a in (s.query, s.database, s.train):
        assert a.dtype == np.int64 and (np.diff(a) > 0).all()


def test_retrieval_split_is_deterministic_per_seed():
    labels = balanced_labels()
    a = retrieval_split(labels, queries_per_class=10, train_size=100, seed=1)
    b = retrieval_split(labels, queries_per_class=10, train_size=100, seed=1)
    c = retrieval_split(labels, queries_per_class=10, train_size=100, seed=2)
    for x, y in zip((a.query, a.database, a.train), (b.query, b.database, b.train)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.query, c.query)


def test_retrieval_split_database_subsample_and_uneven_classes():
    labels = np.concatenate([np.zeros(100, int), np.ones(50, int), np.full(30, 2)])
    s = retrieval_split(labels, queries_per_class=5, database_size=33, train_size=11, seed=0)
    # database 95/45/25 of 165 -> 33 proportionally: 19/9/5
    np.testing.assert_array_equal(np.bincount(labels[s.database]), [19, 9, 5])
    assert len(s.train) == 11 and np.isin(s.train, s.database).all()
    assert len(np.intersect1d(s.query, s.database)) == 0
    everything = retrieval_split(labels, queries_per_class=5, train_size=None)
    np.testing.assert_array_equal(everything.train, everything.database)


def test_retrieval_split_rejects_impossible_requests():
    labels = balanced_labels(per_class=10)
    with pytest.raises(ValueError, match="more than 10"):
        retrieval_split(labels, queries_per_class=10)
    with pytest.raises(ValueError, match="train_size"):
        retrieval_split(labels, queries_per_class=2, train_size=41)
    with pytest.raises(ValueError, match="one class per item"):
        retrieval_split(np.eye(3), queries_per_class=0)


# ---------------------------------------------------------------------------- pairs


def same_group(groups, a, b):
    return groups[a] == groups[b]


def test_similar_chains_join():
    g = groups_from_pairs([("a", "b", 1), ("b", "c", 1), ("x", "y", 1)])
    assert same_group(g, "a", "c") and same_group(g, "x", "y") and not same_group(g, "a", "x")
    assert g == {"a": 0, "b": 0, "c": 0, "x": 1, "y": 1}


def test_dissimilar_label_splits_a_chain():
    g = groups_from_pairs([("a", "b", 1), ("b", "c", 1), ("a", "c", -1)])
    assert not same_group(g, "a", "c")
    assert same_group(g, "a", "b")  # a tie for b goes to the earlier seed
    assert sorted(set(g.values())) == [0, 1]


def test_long_chain_splits_near_the_middle_and_far_items_stay_together():
    chain = ["n0", "n1", "n2", "n3", "n4", "n5"]
    pairs = [(chain[i], chain[i + 1], 1) for i in range(5)] + [("n0", "n5", -1)]
    g = groups_from_pairs(pairs)
    assert [g[x] for x in chain] == [0, 0, 0, 1, 1, 1]


def test_seeds_merge_when_nothing_keeps_them_apart():
    # a ~ b ~ c ~ d, a !~ c, a !~ d: seeds a, c, d; c and d may (and should) share a group
    g = groups_from_pairs([("a", "b", 1), ("b", "c", 1), ("c", "d", 1), ("a", "c", -1), ("a", "d", -1)])
    assert same_group(g, "c", "d") and same_group(g, "a", "b") and not same_group(g, "a", "c")


def test_no_group_holds_a_dissimilar_pair_on_random_labels():
    rng = np.random.default_rng(0)
    items = [f"i{k:02d}" for k in range(30)]
    pairs = [
        (items[a], items[b], 1 if rng.random() < 0.6 else -1)
        for a, b in rng.integers(0, 30, (60, 2))
        if a != b
    ]
    g = groups_from_pairs(pairs)
    latest = {}
    for a, b, s in pairs:
        latest[frozenset((a, b))] = s
    for pair, s in latest.items():
        a, b = sorted(pair)
        if s < 0:
            assert g[a] != g[b]
    assert sorted(set(g.values())) == list(range(len(set(g.values()))))
    assert groups_from_pairs(pairs) == g
    # with one label per pair, the order of the pairs does not matter
    deduped = [(*sorted(p), s) for p, s in latest.items()]
    shuffled = [deduped[k] for k in rng.permutation(len(deduped))]
    assert groups_from_pairs(shuffled) == groups_from_pairs(deduped)


def test_dissimilar_only_items_are_singletons_and_ids_are_deterministic():
    g = groups_from_pairs([("q", "r", -1), ("a", "b", 1), ("r", "s", -1)])
    assert g == {"a": 0, "b": 0, "q": 1, "r": 2, "s": 3}
    assert groups_from_pairs([("r", "s", -1), ("b", "a", 1), ("q", "r", -1)]) == g


def test_last_label_of_a_pair_wins_and_extra_fields_are_ignored():
    rows = [("a", "b", 1, "manual", "/x/a.jpg"), ("b", "a", -1, "manual", "/x/b.jpg")]
    g = groups_from_pairs(rows)
    assert g["a"] != g["b"]
    assert groups_from_pairs([("a", "a", -1)]) == {}


def test_pairs_to_index():
    keys = ["h0", "h1", "h2", "h3"]
    pairs = [("h2", "h0", 1), ("h1", "h3", -1), ("h1", "zz", 1), ("h3", "h3", 1), ("h0", "h2", -1)]
    i, j, s = pairs_to_index(pairs, keys)
    assert i.dtype == j.dtype == s.dtype == np.int64
    np.testing.assert_array_equal(i, [0, 1])
    np.testing.assert_array_equal(j, [2, 3])
    np.testing.assert_array_equal(s, [0, 0])  # (h0, h2) relabelled dissimilar
    empty = pairs_to_index([], keys)
    assert all(len(a) == 0 for a in empty)
