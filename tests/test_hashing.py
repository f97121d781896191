"""Tests of the classical hashing heads (engine.hashing)."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from engine.codes import codes_from_logits, unpack_bits
from engine.hashing import (
    ITQ,
    LSH,
    PCAH,
    SH,
    HashHead,
    default_min_for_itq,
    feature_moments,
    fit_default_head,
    make_head,
    quantization_loss,
    spectral_modes,
)

KINDS = ["lsh", "pcah", "itq", "sh"]


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n, dim=128, clusters=20, spread=0.6, seed=0):
    """Unit-normalised Gaussian clusters: (features float32, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + spread * rng.standard_normal((n, dim))
    return unit(x).astype(np.float32), labels


def hamming_map(query_codes, query_labels, db_codes, db_labels, bits):
    """Mean average precision of Hamming ranking (ties broken by database order)."""
    q = unpack_bits(query_codes, bits).astype(np.int32)
    d = unpack_bits(db_codes, bits).astype(np.int32)
    dist = q @ (1 - d).T + (1 - q) @ d.T
    aps = []
    for i in range(len(q)):
        relevant = db_labels[np.argsort(dist[i], kind="stable")] == query_labels[i]
        hits = np.cumsum(relevant)
        ranks = np.flatnonzero(relevant) + 1
        aps.append((hits[relevant] / ranks).mean())
    return float(np.mean(aps))


@pytest.fixture(scope="module")
def data():
    return clustered(3000)


def test_lsh_by_hand():
    # Two hyperplanes in 2-d: bit 0 is x > 0.5, bit 1 is y > x.
    w = np.array([[1.0, -1.0], [0.0, 1.0]], dtype=np.float32)
    b = np.array([-0.5, 0.0], dtype=np.float32)
    head = HashHead.from_dict({"kind": "lsh", "bits": 2, "W": w, "b": b})
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-0.8, -0.6]], dtype=np.float32)
    # bit0, bit1 -> word = bit0 + 2 * bit1
    assert head.codes(x)[:, 0].tolist() == [1, 2, 3, 2]
    expected = [[0.5, -1.0], [-0.5, 1.0], [0.1, 0.2], [-1.3, 0.2]]
    np.testing.assert_allclose(head.logits(x), expected, atol=1e-6)


def test_lsh_fit_is_seeded_gaussian_through_the_mean():
    x = unit(np.random.default_rng(1).standard_normal((10, 5))).astype(np.float32)
    head = LSH(bits=7, seed=3).fit(x)
    w, b = head.linear()
    expected = np.random.default_rng(3).standard_normal((5, 7))
    np.testing.assert_array_equal(w, expected.astype(np.float32))
    np.testing.assert_allclose(b, -(x.astype(np.float64).mean(0) @ expected), rtol=1e-6, atol=1e-7)
    assert head.fitted_on == 10


def test_lsh_with_a_centre_needs_no_samples():
    head = LSH(bits=3, seed=0, centre=np.zeros(4)).fit(np.empty((0, 4), np.float32))
    assert head.linear()[1].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="at least one sample"):
        LSH(bits=3).fit(np.empty((0, 4), np.float32))


def test_lsh_may_have_more_bits_than_dimensions():
    x = unit(np.random.default_rng(0).standard_normal((5, 3))).astype(np.float32)
    assert LSH(bits=70).fit(x).codes(x).shape == (5, 2)


def test_pcah_matches_sklearn_pca_up_to_sign():
    rng = np.random.default_rng(0)
    # Distinct variances so the directions are well defined.
    rotation = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    x = rng.standard_normal((2000, 20)) * np.linspace(3, 0.5, 20) @ rotation
    x = x.astype(np.float32)
    head = PCAH(bits=8).fit(x)
    reference = PCA(n_components=8, svd_solver="full").fit(x.astype(np.float64))
    cosines = np.abs(np.sum(head.components * reference.components_.T, axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)
    np.testing.assert_allclose(head.mean, reference.mean_, atol=1e-6)


def test_itq_quantization_loss_never_rises_and_beats_pcah(data):
    x, _ = data
    head = ITQ(bits=32, seed=0).fit(x)
    history = np.array(head.loss_history)
    assert len(history) == 51
    assert np.all(np.diff(history) <= 1e-6 * history[0])
    v = (x.astype(np.float64) - head.mean) @ head.components
    # The recorded loss is the real ||B - V R||^2, computed here with B explicitly.
    z = v @ head.rotation
    direct = np.sum((np.where(z >= 0, 1.0, -1.0) - z) ** 2)
    assert history[-1] == pytest.approx(direct, rel=1e-5)
    pcah_loss = quantization_loss(v, np.eye(32))
    assert direct < pcah_loss
    # ITQ starts from the same PCA as PCAH.
    pcah = PCAH(bits=32).fit(x)
    cosines = np.abs(np.sum(pcah.components * head.components, axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_codes_are_deterministic_for_a_seed(kind, data):
    x, _ = data
    a = make_head(kind, 24, seed=5).fit(x).codes(x)
    b = make_head(kind, 24, seed=5).fit(x).codes(x)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint64 and a.shape == (len(x), 1)
    if kind in ("lsh", "itq"):  # the seed matters to these two
        assert not np.array_equal(a, make_head(kind, 24, seed=6).fit(x).codes(x))


@pytest.mark.parametrize("kind", ["lsh", "pcah", "itq"])
def test_linear_reproduces_logits_exactly(kind, data):
    x, _ = data
    head = make_head(kind, 40).fit(x)
    w, b = head.linear()
    assert w.shape == (x.shape[1], 40) and b.shape == (40,)
    assert w.dtype == np.float32 and b.dtype == np.float32
    logits = head.logits(x)
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(x @ w + b, logits)
    np.testing.assert_array_equal(head.codes(x), codes_from_logits(x @ w + b))


def test_sh_is_not_linear(data):
    x, _ = data
    assert SH(16).fit(x).linear() is None


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, data, tmp_path):
    x, _ = data
    head = make_head(kind, 20, seed=2).fit(x[:500])
    path = tmp_path / "head.npz"
    head.save(path)
    again = HashHead.load(path)
    assert type(again) is type(head)
    assert (again.kind, again.bits, again.seed, again.fitted_on) == (kind, 20, 2, 500)
    np.testing.assert_array_equal(again.codes(x), head.codes(x))
    assert [p.name for p in tmp_path.iterdir()] == ["head.npz"]  # no temporary left over
    # to_dict is plain values and arrays, and from_dict inverts it too.
    d = head.to_dict()
    assert all(isinstance(v, (str, int, np.ndarray)) for v in d.values())
    np.testing.assert_array_equal(HashHead.from_dict(d).codes(x), head.codes(x))


@pytest.mark.parametrize("kind", ["pcah", "itq"])
def test_bits_are_roughly_balanced(kind, data):
    x, _ = data
    bits = unpack_bits(make_head(kind, 32).fit(x).codes(x), 32)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.2)


def test_itq_beats_lsh_and_pcah_on_clustered_data():
    # Spread 1.0 keeps the clusters overlapping enough that LSH scores about 0.5.
    x, labels = clustered(2200, spread=1.0, seed=1)
    db, query = slice(0, 2000), slice(2000, 2200)
    scores = {}
    for kind in ("lsh", "pcah", "itq"):
        head = make_head(kind, 32).fit(x[db])
        codes = head.codes(x)
        scores[kind] = hamming_map(codes[query], labels[query], codes[db], labels[db], 32)
    assert scores["itq"] > scores["lsh"] + 0.2, scores
    assert scores["itq"] > scores["pcah"], scores


@pytest.mark.parametrize("kind", ["pcah", "itq", "sh"])
def test_pca_heads_need_as_many_samples_as_bits(kind):
    x, _ = clustered(31)
    with pytest.raises(ValueError, match="31 samples for 32 bits"):
        make_head(kind, 32).fit(x)
    make_head(kind, 31).fit(x)  # exactly enough


@pytest.mark.parametrize("kind", ["pcah", "itq"])
def test_linear_pca_heads_need_bits_at_most_dimension(kind):
    x, _ = clustered(200, dim=16)
    with pytest.raises(ValueError, match="bits <= feature dimension"):
        make_head(kind, 17).fit(x)


def test_sh_may_have_more_bits_than_dimensions():
    x, _ = clustered(500, dim=8)
    head = SH(20).fit(x)
    assert head.components.shape == (8, 8)
    assert unpack_bits(head.codes(x), 20).std(axis=0).min() > 0  # no constant bit


def test_spectral_modes_follow_the_reference():
    # Widths 2 and 1 with 3 bits: frequencies pi*m/width, smallest first, constant mode out.
    # Mode (1,0): (pi/2)^2; (2,0): pi^2; (0,1): pi^2 (ties keep enumeration order); (3,0)...
    modes = spectral_modes(np.array([2.0, 1.0]), 3)
    assert modes.tolist() == [[1, 0], [2, 0], [0, 1]]


def test_sh_logits_are_the_reference_product_form():
    x, _ = clustered(300, dim=10)
    head = SH(6).fit(x)
    y = (x.astype(np.float64) - head.mean) @ head.components - head.low
    omegas = head.modes * np.pi / (head.high - head.low)
    expected = np.stack([np.prod(np.sin(y * w + np.pi / 2), axis=1) for w in omegas], axis=1)
    np.testing.assert_allclose(head.logits(x), expected, atol=1e-4)


def test_float16_memmap_input(tmp_path, data):
    x, _ = data
    path = tmp_path / "f.f16"
    x.astype(np.float16).tofile(path)
    mm = np.memmap(path, dtype=np.float16, mode="r", shape=x.shape)
    head = ITQ(16).fit(mm)
    np.testing.assert_array_equal(head.codes(mm), head.codes(x.astype(np.float16)))
    n, mean, cov = feature_moments(mm)
    np.testing.assert_allclose(cov, np.cov(mm.astype(np.float64).T, bias=True), atol=1e-12)


def test_rejects_bad_input(data):
    x, _ = data
    bad = x[:100].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ITQ(8).fit(bad)
    head = ITQ(8).fit(x)
    with pytest.raises(ValueError, match="dimension"):
        head.logits(x[:, :-1])
    with pytest.raises(ValueError, match="not fitted"):
        ITQ(8).logits(x)
    with pytest.raises(ValueError, match="unknown hash head kind"):
        make_head("nope", 8)


def test_single_feature_gives_one_code(data):
    x, _ = data
    head = ITQ(8).fit(x)
    assert head.logits(x[0]).shape == (8,)
    np.testing.assert_array_equal(head.codes(x[0]), head.codes(x[:1])[0])


def test_default_head_policy(data):
    x, _ = data
    assert default_min_for_itq(32) <= len(x)
    assert fit_default_head(x, 32).kind == "itq"
    assert fit_default_head(x[:50], 32).kind == "lsh"
    assert fit_default_head(x[:50], 32, min_for_itq=40).kind == "itq"
    assert fit_default_head(x[:20], 32, min_for_itq=10).kind == "lsh"  # PCA needs N >= bits
    assert fit_default_head(x, 200).kind == "lsh"  # more bits than the 128 dimensions
    with pytest.raises(ValueError):
        fit_default_head(x[:0], 32)
