"""Duplicate groups: the multi-index self-join against brute force, complete-link groups, keep-best rules."""

import numpy as np
import pytest

from engine import duplicates as D
from tests import photos


def _codes_with_copies(n: int, words: int, radius: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, (n, words), dtype=np.uint64, endpoint=True)
    for row in range(n // 10):  # a tenth of the rows are near copies of another row
        copy = codes[rng.integers(n // 10, n)].copy()
        for bit in rng.choice(64 * words, rng.integers(0, radius + 3), replace=False):
            copy[bit // 64] ^= np.uint64(1 << int(bit % 64))
        codes[row] = copy
    return codes


def _brute_pairs(codes, radius, live):
    dist = sum(np.bitwise_count(codes[:, None, w] ^ codes[None, :, w]).astype(int) for w in range(codes.shape[1]))
    i, j = np.nonzero(np.triu(dist <= radius, 1) & live[:, None] & live[None, :])
    return set(zip(i.tolist(), j.tolist())), dist


@pytest.mark.parametrize("words, radius", [(1, 8), (1, 3), (2, 10), (4, 12)])
def test_self_join_finds_exactly_the_pairs_within_the_radius(words, radius):
    codes = _codes_with_copies(2000, words, radius, seed=words * 100 + radius)
    live = np.random.default_rng(1).random(2000) > 0.05
    index = D.MultiIndex(codes, radius, live)
    i, j, d = index.pairs(threads=2)
    expected, dist = _brute_pairs(codes, radius, live)
    assert len(expected) > 100
    assert len(i) == len(expected)  # each pair once
    assert set(zip(i.tolist(), j.tolist())) == expected
    assert (d == dist[i, j]).all()
    rows, found = index.within(codes[7])
    assert rows.tolist() == sorted(np.flatnonzero((dist[7] <= radius) & live).tolist(),
                                   key=lambda r: (dist[7, r], r))


def test_plan_keeps_the_pigeonhole_bound():
    for bits, radius in [(64, 8), (64, 12), (128, 16), (256, 40)]:
        plan = D.plan(1_000_000, bits, radius)
        assert sum(length for _, length in plan.tables) == bits
        assert len(plan.tables) * (plan.probe_radius + 1) > radius  # some substring is within s
        assert max(length for _, length in plan.tables) <= D.MAX_KEY_BITS


def test_complete_link_does_not_chain():
    # A~B and B~C are strong, but A and C are far apart: A and C never share a group.
    a = np.array([1.0, 0.0, 0.0])
    c = np.array([0.6, 0.8, 0.0])
    b = (a + c) / np.linalg.norm(a + c)
    features = np.stack([a, b, c]).astype(np.float32)
    i, j = np.array([0, 1]), np.array([1, 2])
    score = D.pair_cosines(features, i, j)
    assert (score > 0.89).all() and float(a @ c) < 0.7
    groups = D.complete_link_groups(features, i, j, score, group_cosine=0.8)
    together = [set(g.tolist()) for g, _ in groups if len(g) > 1]
    assert len(together) == 1 and not {0, 2} <= together[0]
    merged = D.complete_link_groups(features, i, j, score, group_cosine=0.5)
    assert sorted(merged[0][0].tolist()) == [0, 1, 2] and merged[0][1] == pytest.approx(float(a @ c), abs=1e-5)


def test_keep_rules_choose_by_resolution_file_size_and_age(tmp_path):
    image = photos.scene(5)
    big = photos.save(image, tmp_path / "big.jpg", quality=70)
    small = photos.save(image.resize((320, 240)), tmp_path / "small.png")  # fewer pixels, bigger file
    old = photos.save(image.resize((320, 240)), tmp_path / "old.jpg", quality=50)
    import os
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    members = [D.member(str(p)) for p in (small, big, old)]
    assert os.path.getsize(small) > os.path.getsize(big)
    assert D.KEEP_RULES["largest"].choose(members).path == str(big)
    assert D.KEEP_RULES["biggest-file"].choose(members).path == str(small)
    assert D.KEEP_RULES["oldest"].choose(members).path == str(old)


def test_oldest_is_by_date_taken_first_then_the_file(tmp_path):
    """A camera original (EXIF date taken) is older than the copies a chat app or an editor
    wrote, even when its file was touched later; among photos with no date, the older file."""
    import os

    from PIL import Image

    image = photos.scene(8)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2019:05:01 09:15:30"
    original = photos.save(image, tmp_path / "IMG_0001.jpg", quality=90, exif=exif.tobytes())
    later = Image.Exif()
    later.get_ifd(0x8769)[0x9003] = "2021:01:01 00:00:00"
    edited = photos.save(image, tmp_path / "edited.jpg", quality=90, exif=later.tobytes())
    sent = photos.save(image, tmp_path / "from-chat.jpg", quality=60)  # no EXIF, the oldest file
    os.utime(sent, ns=(1_000_000_000, 1_000_000_000))
    members = [D.member(str(p)) for p in (sent, edited, original)]
    assert [m.taken_at for m in members] == [None, "2021-01-01T00:00:00", "2019-05-01T09:15:30"]
    assert D.KEEP_RULES["oldest"].choose(members).path == str(original)
    assert D.KEEP_RULES["oldest"].choose(members[:1] + [D.member(str(photos.save(image, tmp_path / "new.jpg")))]).path \
        == str(sent)


def test_a_preferred_format_or_folder_comes_before_the_rule(tmp_path):
    image = photos.scene(6)
    big = photos.save(image, tmp_path / "big.jpg", quality=90)
    png = photos.save(image.resize((320, 240)), tmp_path / "small.png")
    kept = photos.save(image.resize((160, 120)), tmp_path / "keep" / "tiny.jpg", quality=60)
    members = [D.member(str(p)) for p in (big, png, kept)]
    largest = D.KEEP_RULES["largest"]
    assert D.preferring(largest) is largest
    assert D.preferring(largest, formats=["PNG"]).choose(members).path == str(png)
    assert D.preferring(largest, folders=[str(tmp_path / "keep")]).choose(members).path == str(kept)
    both = D.preferring(largest, formats=[".jpg"], folders=[str(tmp_path / "keep")])
    assert both.choose(members).path == str(kept) and "then largest resolution" in both.description
    # a folder's name as a prefix of another's is not that folder
    assert D.preferring(largest, folders=[str(tmp_path / "ke")]).choose(members).path == str(big)


def test_a_cancelled_join_raises_cancelled_and_reports_progress_until_then():
    import threading

    from engine.errors import Cancelled

    codes = _codes_with_copies(100_000, 1, 8, seed=3)
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append((done, total))
        cancel.set()  # Ctrl-C after the first chunk

    with pytest.raises(Cancelled):
        D.MultiIndex(codes, 8).pairs(progress=progress, cancel=cancel, threads=1)
    assert seen and seen[0][0] < seen[0][1]


def test_short_codes_are_cut_over_their_own_bits():
    # 48-bit codes in one word: the 16 high bits are zero everywhere, and no table may cover them
    codes = _codes_with_copies(3000, 1, 6, seed=9) & np.uint64((1 << 48) - 1)
    index = D.MultiIndex(codes, 6, bits=48)
    assert sum(length for _, length in index.plan.tables) == 48
    i, j, _ = index.pairs(threads=1)
    expected, _ = _brute_pairs(codes, 6, np.ones(3000, bool))
    assert set(zip(i.tolist(), j.tolist())) == expected
