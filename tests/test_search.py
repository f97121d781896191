"""engine.search: the fast scans and the re-rank against brute-force numpy references."""

import subprocess
import sys

import numpy as np
import pytest

from engine import search as S
from engine.codes import pack_bits

BITS = (16, 48, 64, 128, 256)
BACKENDS = ("numba", "numpy")


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "numba" and not _has_numba():
        pytest.skip("numba is not installed")
    saved = S._backend
    S.set_backend(request.param)
    yield request.param
    S.set_backend(saved)


def ref_distances(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distances by unpacking every bit (slow, obviously right)."""
    a = np.unpackbits(np.ascontiguousarray(codes).view(np.uint8), axis=1)
    b = np.unpackbits(np.ascontiguousarray(query).reshape(1, -1).view(np.uint8), axis=1)
    return (a != b).sum(axis=1).astype(np.int64)


def ref_select(codes, query, k, tmax=None, live=None, d=None):
    d = ref_distances(codes, query) if d is None else d
    slots = np.arange(len(d))
    keep = np.ones(len(d), bool) if tmax is None else d <= tmax
    if live is not None:
        keep &= live
    slots, d = slots[keep], d[keep]
    order = np.lexsort((slots, d))[: max(k, 0)]
    return slots[order], d[order]


def random_codes(rng, n, bits, density=None):
    density = rng.uniform(0.05, 0.5) if density is None else density
    if n == 0:
        return np.zeros((0, (bits + 63) // 64), np.uint64)
    return pack_bits(rng.random((n, bits)) < density)


def assert_same(got, want):
    slots, dist = got
    assert slots.dtype == np.int64
    assert np.array_equal(slots, want[0])
    assert np.array_equal(dist.astype(np.int64), want[1])


def test_import_does_not_load_numba():
    code = "import sys, engine.search; sys.exit('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("bits", BITS)
def test_hamming_distances(bits):
    rng = np.random.default_rng(bits)
    for n in (0, 1, 70, 40_000):
        codes = random_codes(rng, n, bits)
        q = random_codes(rng, 1, bits)[0]
        d = S.hamming_distances(codes, q)
        assert d.dtype == (np.uint8 if bits <= 192 else np.uint16)
        assert np.array_equal(d.astype(np.int64), ref_distances(codes, q))


@pytest.mark.parametrize("bits", BITS)
def test_topk_matches_reference(backend, bits):
    rng = np.random.default_rng(1000 + bits)
    for n in (0, 1, 5, 63, 64, 65, 1000, 40_000):
        codes = random_codes(rng, n, bits)
        for trial in range(3):
            q = codes[rng.integers(n)] if n and trial == 0 else random_codes(rng, 1, bits)[0]
            live = None if trial < 2 else rng.random(n) < 0.6
            d = ref_distances(codes, q)
            for k in {0, 1, 7, 100, n, n + 5}:
                got = S.hamming_topk(codes, q, k, live=live)
                assert_same(got, ref_select(codes, q, k, live=live, d=d))
                if live is not None:
                    assert live[got[0]].all()


@pytest.mark.parametrize("bits", (64, 256))
def test_ties_go_to_the_lower_slot(backend, bits):
    codes = np.zeros((5000, bits // 64), np.uint64)  # every distance equal
    q = random_codes(np.random.default_rng(3), 1, bits)[0]
    slots, dist = S.hamming_topk(codes, q, 50)
    assert np.array_equal(slots, np.arange(50))
    assert (dist == dist[0]).all()
    live = np.ones(5000, bool)
    live[::2] = False
    slots, _ = S.hamming_topk(codes, q, 50, live=live)
    assert np.array_equal(slots, np.arange(1, 100, 2))


def test_all_dead(backend):
    codes = random_codes(np.random.default_rng(4), 300, 64)
    slots, dist = S.hamming_topk(codes, codes[0], 10, live=np.zeros(300, bool))
    assert len(slots) == len(dist) == 0


@pytest.mark.parametrize("bits", BITS)
def test_within_respects_radius(backend, bits):
    rng = np.random.default_rng(2000 + bits)
    for n in (0, 10, 3000, 40_000):
        codes = random_codes(rng, n, bits, density=0.1)
        q = codes[0] if n else random_codes(rng, 1, bits)[0]
        live = rng.random(n) < 0.8
        d = ref_distances(codes, q)
        for radius in (-1, 0, 1, bits // 10, bits // 4, bits):
            for limit in (None, 0, 5, 1000):
                for lv in (None, live):
                    got = S.hamming_within(codes, q, radius, live=lv, limit=limit)
                    want = ref_select(codes, q, n if limit is None else limit, radius, lv, d)
                    assert_same(got, want)
                    assert (got[1] <= radius).all()


def test_a_low_first_guess_is_caught(backend):
    # the first threshold is guessed from sampled rows: make exactly those rows close
    n = 100_000
    rng = np.random.default_rng(13)
    codes = random_codes(rng, n, 64, density=0.5)
    q = np.zeros(1, np.uint64)
    if backend == "numba":  # samples blocks spread evenly
        stride = n // S._SAMPLE_BLOCKS
        for b in range(S._SAMPLE_BLOCKS):
            codes[b * stride : b * stride + S._BLOCK] = 0
        k = S._SAMPLE_BLOCKS * S._BLOCK + 2000
    else:  # samples a strided subset of the distances
        codes[:: n // 8192] = 0
        k = len(codes[:: n // 8192]) + 2000
    assert_same(S.hamming_topk(codes, q, k), ref_select(codes, q, k))


def test_results_are_sorted_and_unique(backend):
    rng = np.random.default_rng(5)
    codes = random_codes(rng, 50_000, 64, density=0.3)
    slots, dist = S.hamming_topk(codes, codes[7], 3000)
    assert len(np.unique(slots)) == len(slots)
    key = dist.astype(np.int64) * len(codes) + slots
    assert (np.diff(key) > 0).all()


def test_readonly_memmap_codes(backend, tmp_path):
    rng = np.random.default_rng(6)
    codes = random_codes(rng, 20_000, 128)
    path = tmp_path / "codes.u64"
    codes.tofile(path)
    mm = np.memmap(path, dtype=np.uint64, mode="r", shape=codes.shape)
    live = np.memmap(tmp_path / "live", dtype=bool, mode="w+", shape=(20_000,))
    live[:] = rng.random(20_000) < 0.5
    assert_same(S.hamming_topk(mm, codes[3], 40, live=live), ref_select(codes, codes[3], 40, live=np.asarray(live)))


def test_bad_input():
    codes = np.zeros((10, 2), np.uint64)
    with pytest.raises(ValueError):
        S.hamming_topk(codes, np.zeros(1, np.uint64), 3)
    with pytest.raises(ValueError):
        S.hamming_topk(codes.astype(np.int64), np.zeros(2, np.uint64), 3)
    with pytest.raises(ValueError):
        S.hamming_topk(codes, np.zeros(2, np.uint64), 3, live=np.ones(9, bool))
    with pytest.raises(ValueError):
        S.set_backend("gpu")


def unit_features(rng, n, dim):
    f = rng.standard_normal((n, dim)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return f.astype(np.float16)


@pytest.mark.parametrize("dim", (1, 7, 64, 1280))
def test_rerank_matches_float64(backend, dim):
    rng = np.random.default_rng(dim)
    feats = unit_features(rng, 3000, dim)
    feats[0, 0] = np.float16(3e-6)  # a float16 subnormal
    feats[1, 0] = np.float16(-0.0)
    q = rng.standard_normal(dim).astype(np.float32)
    q /= np.linalg.norm(q)
    slots = rng.choice(3000, 503, replace=False)  # not a multiple of the 4-row stride
    slots[:2] = (0, 1)
    got = S.rerank(feats, q, slots)
    want = feats[slots].astype(np.float64) @ q.astype(np.float64)
    assert got.dtype == np.float32 and got.shape == (503,)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    assert len(S.rerank(feats, q, np.zeros(0, np.int64))) == 0
    with pytest.raises(IndexError):
        S.rerank(feats, q, [3000])


def test_rerank_reads_a_memmap(backend, tmp_path):
    rng = np.random.default_rng(8)
    feats = unit_features(rng, 2000, 96)
    np.save(tmp_path / "f.npy", feats)
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    q = feats[5].astype(np.float32)
    slots = np.array([1999, 5, 17, 5])
    want = feats[slots].astype(np.float64) @ q.astype(np.float64)
    np.testing.assert_allclose(S.rerank(mm, q, slots), want, rtol=0, atol=2e-6)


def _database(rng, n=20_000, dim=64, bits=64):
    feats = unit_features(rng, n, dim)
    proj = rng.standard_normal((dim, bits)).astype(np.float32)
    codes = pack_bits(feats.astype(np.float32) @ proj > 0)
    return codes, feats


def test_search_finds_the_query_itself(backend):
    rng = np.random.default_rng(9)
    codes, feats = _database(rng)
    live = rng.random(len(codes)) < 0.9
    for slot in np.flatnonzero(live)[:20]:
        for params in (S.SearchParams(), S.SearchParams(k=5, pool=50), S.SearchParams(radius=12)):
            r = S.search(codes, feats, codes[slot], feats[slot].astype(np.float32), params, live)
            assert r.slots[0] == slot and r.hamming[0] == 0
            assert abs(r.score[0] - 1) < 2e-3
            assert live[r.slots].all()
            assert len(r) == len(r.hamming) == len(r.score) <= params.k
            # best first: score desc, then hamming asc, then slot asc
            key = np.lexsort((r.slots, r.hamming, -r.score))
            assert np.array_equal(key, np.arange(len(r)))
    dead = np.flatnonzero(~live)[0]
    r = S.search(codes, feats, codes[dead], feats[dead].astype(np.float32), live=live)
    assert dead not in r.slots


def test_search_rerank_is_exact_over_the_pool(backend):
    rng = np.random.default_rng(10)
    codes, feats = _database(rng)
    q = 123
    params = S.SearchParams(k=15, pool=400)
    pool, _ = S.hamming_topk(codes, codes[q], 400)
    scores = feats[pool].astype(np.float64) @ feats[q].astype(np.float64)
    r = S.search(codes, feats, codes[q], feats[q].astype(np.float32), params)
    assert set(r.slots) <= set(pool)
    np.testing.assert_allclose(np.sort(r.score)[::-1], np.sort(scores)[::-1][:15], atol=2e-6)


def test_search_without_rerank_is_hamming_order(backend):
    rng = np.random.default_rng(11)
    codes, feats = _database(rng)
    qf = feats[42].astype(np.float32)
    r = S.search(codes, feats, codes[42], qf, S.SearchParams(k=30, rerank=False))
    slots, dist = S.hamming_topk(codes, codes[42], 30)
    assert np.array_equal(r.slots, slots) and np.array_equal(r.hamming, dist)
    np.testing.assert_allclose(r.score, S.rerank(feats, qf, slots), atol=1e-7)
    r = S.search(codes, feats, codes[42], qf, S.SearchParams(k=30, rerank=False, radius=8))
    slots, dist = S.hamming_within(codes, codes[42], 8, limit=30)
    assert np.array_equal(r.slots, slots) and (r.hamming <= 8).all()


def test_search_edge_sizes(backend):
    rng = np.random.default_rng(12)
    codes, feats = _database(rng, n=30)
    q, qf = codes[0], feats[0].astype(np.float32)
    assert len(S.search(codes, feats, q, qf, S.SearchParams(k=100))) == 30
    assert len(S.search(codes, feats, q, qf, S.SearchParams(k=0))) == 0
    assert len(S.search(codes[:0], feats[:0], q, qf)) == 0
    r = S.search(codes, feats, q, qf, S.SearchParams(k=10, radius=0))
    assert (r.hamming == 0).all()


def test_warm_up_switches_auto_to_numba():
    if not _has_numba():
        pytest.skip("numba is not installed")
    saved = S._backend
    try:
        S.set_backend("auto")
        assert S.warm_up() == "numba"
        assert S.backend() == "numba"
        S.set_backend("numpy")
        assert S.backend() == "numpy"
    finally:
        S.set_backend(saved)


def test_default_pool_scales_gently():
    assert S.default_pool(0) == 0
    assert S.default_pool(150) == 150
    assert S.default_pool(10**6) == S.MIN_POOL == 2000
    assert S.default_pool(10**7) == 3953
    assert S.SearchParams().pool is None


def test_without_numba_everything_runs_on_numpy():
    code = """
import sys
sys.modules["numba"] = None  # as if numba were not installed
import numpy as np
from engine import search as S
from engine.errors import EnvironmentProblem
assert S.warm_up() == "numpy" and S.backend() == "numpy"
codes = np.arange(100, dtype=np.uint64).reshape(50, 2)
feats = np.eye(50, 8, dtype=np.float16)
r = S.search(codes, feats, codes[3], feats[3].astype(np.float32))
assert r.slots[0] == 3
S.set_backend("numba")
try:
    S.hamming_topk(codes, codes[3], 5)
except EnvironmentProblem:
    sys.exit(0)
sys.exit(1)
"""
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the fine stage's spaces, refined queries ---------------------------------------------


def _head_database(rng, n=3000, dim=32, bits=24):
    """Unit features, a linear head and the codes it gives them (as an installed version has)."""
    feats = unit_features(rng, n, dim).astype(np.float32)
    weight = rng.standard_normal((dim, bits)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(bits)).astype(np.float32)
    codes = pack_bits(feats @ weight + bias > 0)
    return codes, feats.astype(np.float16), weight, bias


def test_code_space_scores_are_the_asymmetric_agreement():
    weight = np.eye(3, dtype=np.float32)
    space = S.CodeSpace(weight, np.zeros(3, np.float32))
    codes = pack_bits(np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=bool))
    query = np.array([0.5, -0.25, 0.25], np.float32)
    # signs (+,+,+): 0.5 - 0.25 + 0.25 = 0.5; (+,-,-): 0.5 + 0.25 - 0.25 = 0.5; (-,-,-): -0.5; / |q|_1 = 1
    np.testing.assert_allclose(space.scores(codes, None, [0, 1, 2], query), [0.5, 0.5, -0.5], atol=1e-6)
    np.testing.assert_allclose(space.embed(np.array([[0.3, -2.0, 0.0]])), np.tanh([[0.3, -2.0, 0.0]]), atol=1e-6)
    with pytest.raises(ValueError):
        space.scores(codes, None, [0], np.zeros(4, np.float32))


@pytest.mark.parametrize("rerank", ["code", "auto"])
def test_search_in_the_code_space_ranks_by_the_head_not_by_the_features(backend, rerank):
    rng = np.random.default_rng(21)
    codes, feats, weight, bias = _head_database(rng)
    space = S.CodeSpace(weight, bias)
    q = 7
    query = feats[q].astype(np.float32)
    got = S.search(codes, feats, codes[q], query, S.SearchParams(k=40, rerank=rerank), space=space)
    # brute force over every row (the default pool covers 3,000): copies first, then the agreement
    t = np.tanh(query @ weight + bias)
    signs = np.where(np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little")[:, :24] > 0, 1.0, -1.0)
    agreement = (signs @ t) / np.abs(t).sum()
    cosine = feats.astype(np.float32) @ query
    key = np.where(cosine >= S.COPY_COSINE, 2 + cosine, agreement)
    hamming = ref_distances(codes, codes[q])
    want = np.lexsort((np.arange(len(key)), hamming, -cosine, -key))[:40]
    assert np.array_equal(got.slots, want)
    np.testing.assert_allclose(got.score, agreement[want], atol=1e-5)
    by_features = S.search(codes, feats, codes[q], query, S.SearchParams(k=40, rerank="features"), space=space)
    assert not np.array_equal(by_features.slots, got.slots)
    assert np.array_equal(by_features.slots, S.search(codes, feats, codes[q], query, S.SearchParams(k=40)).slots)
    with pytest.raises(ValueError, match="needs the head"):
        S.search(codes, feats, codes[q], query, S.SearchParams(rerank="code"))


def test_a_copy_of_the_query_comes_first_in_the_code_space_even_with_other_bits():
    rng = np.random.default_rng(22)
    codes, feats, weight, bias = _head_database(rng, n=500)
    query = feats[3].astype(np.float32)
    copy = (query + 0.05 * rng.standard_normal(query.shape)).astype(np.float32)
    copy /= np.linalg.norm(copy)
    copy_code = codes[3].copy()
    copy_code[0] ^= np.uint64(0xFF)  # eight of 24 bits flipped: most photos agree with the query more
    codes = np.vstack([codes, copy_code[None]])
    feats = np.vstack([feats, copy.astype(np.float16)[None]])
    space = S.CodeSpace(weight, bias)
    others = np.delete(np.arange(len(codes)), [3, 500])
    assert (space.scores(codes, feats, others, space.embed(query)) > space.scores(codes, feats, [500], space.embed(query))).any()
    live = np.ones(len(codes), bool)
    live[3] = False  # the query photo itself is not in the library: its copy is
    got = S.search(codes, feats, codes[3], query, S.SearchParams(k=5, rerank="code"), live, space=space)
    assert got.slots[0] == 500


def test_rerank_choices():
    assert S.SearchParams().rerank_choice() == "auto"
    assert S.SearchParams(rerank=False).rerank_choice() == "none"
    assert S.SearchParams(rerank="code").rerank_choice() == "code"
    with pytest.raises(ValueError):
        S.SearchParams(rerank="cosine").rerank_choice()


def test_refined_vector_is_rocchio():
    photos = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    like = np.array([[0, 0, 1], [0, 0, 3]], np.float32)
    unlike = np.array([[1, 1, 1]], np.float32)
    np.testing.assert_allclose(S.refined_vector(photos, like, unlike), [-0.5, -0.5, 1.0])
    np.testing.assert_allclose(S.refined_vector(photos[:1]), [1, 0, 0])
    with pytest.raises(ValueError):
        S.refined_vector(np.zeros((0, 3), np.float32))


def test_a_probe_unites_the_pools_of_its_seeds_and_never_returns_excluded_slots(backend):
    rng = np.random.default_rng(23)
    codes, feats = _database(rng, n=5000)
    q, p = 10, 20
    vector = (feats[q].astype(np.float32) + feats[p].astype(np.float32))
    vector /= np.linalg.norm(vector)
    params = S.SearchParams(k=30, pool=40)
    space = S.FeatureSpace()
    alone = S.search_probe(codes, feats, S.Probe(codes[[q]], vector, feats[q].astype(np.float32)), params, space=space)
    union = S.search_probe(codes, feats, S.Probe(codes[[q, p]], vector, feats[q].astype(np.float32)), params,
                           space=space)
    pool_q = set(S.hamming_topk(codes, codes[q], 40)[0].tolist())
    pool_p = set(S.hamming_topk(codes, codes[p], 40)[0].tolist())
    assert set(alone.slots.tolist()) <= pool_q
    assert set(union.slots.tolist()) <= pool_q | pool_p and set(union.slots.tolist()) & (pool_p - pool_q)
    # each candidate keeps its smallest distance to a seed; the order is the refined vector's
    distances = np.minimum(ref_distances(codes, codes[q]), ref_distances(codes, codes[p]))
    assert np.array_equal(union.hamming, distances[union.slots])
    assert (np.diff(union.score) <= 0).all()
    excluded = union.slots[:5]
    probe = S.Probe(codes[[q, p]], vector, feats[q].astype(np.float32), exclude=excluded)
    for rerank in (True, False):
        got = S.search_probe(codes, feats, probe, S.SearchParams(k=30, pool=40, rerank=rerank),
                             space=S.FeatureSpace() if rerank else None)
        assert not set(got.slots.tolist()) & set(excluded.tolist()) and len(got) == 30
