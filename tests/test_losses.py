"""Tests of the deep-hashing losses (trainer.losses): hand-computed values, finite gradients, SGD decrease."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainer import catalog
from trainer.methods import REGISTRY
from trainer.losses import (
    CNNHLoss,
    DHLoss,
    DivideAndEncodeHead,
    DLBHCLoss,
    DPSHLoss,
    DRSCHLoss,
    DSRHLoss,
    ExponentiatedHashingLoss,
    NINHTripletLoss,
    SDHLoss,
    factorize_similarity,
    pairs_from_labels,
    resolve_pairs,
    triplets_from_labels,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def T(rows):
    return torch.tensor(rows, dtype=torch.float64)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def sqdist(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b))


def tanh_rows(rows):
    return [[math.tanh(x) for x in row] for row in rows]


def softplus(x):
    return math.log(1.0 + math.exp(x))


# ---------------------------------------------------------------- helpers


def test_pairs_from_labels_single_and_multi_label():
    i, j, s = pairs_from_labels(torch.tensor([0, 0, 1]))
    assert i.tolist() == [0, 0, 1] and j.tolist() == [1, 2, 2] and s.tolist() == [1.0, 0.0, 0.0]
    _, _, s = pairs_from_labels(torch.tensor([[1, 0], [1, 1], [0, 1]]))
    assert s.tolist() == [1.0, 0.0, 1.0]  # (0,1) share label 0, (0,2) nothing, (1,2) share label 1


def test_resolve_pairs_converts_minus_one_and_wants_exactly_one_source():
    i, j, s = resolve_pairs(None, (torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1, -1])))
    assert s.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        resolve_pairs(None, None)
    with pytest.raises(ValueError):
        resolve_pairs(torch.tensor([0, 1]), (torch.tensor([0]), torch.tensor([1]), torch.tensor([1])))


def test_triplets_from_labels_all_then_capped_reproducibly():
    q, p, n = triplets_from_labels(torch.tensor([0, 0, 1]))
    assert list(zip(q.tolist(), p.tolist(), n.tolist())) == [(0, 1, 2), (1, 0, 2)]
    y = torch.tensor([0, 0, 1, 1])  # each query: 1 positive x 2 negatives -> 8 triplets
    assert triplets_from_labels(y)[0].numel() == 8
    a = torch.stack(triplets_from_labels(y, max_triplets=3, seed=7), 1)
    b = torch.stack(triplets_from_labels(y, max_triplets=3, seed=7), 1)
    assert a.shape == (3, 3) and torch.equal(a, b) and len({tuple(r) for r in a.tolist()}) == 3
    for qq, pp, nn_ in a.tolist():
        assert qq != pp and y[qq] == y[pp] and y[qq] != y[nn_]


# ---------------------------------------------------------------- hand-computed values


def test_dpsh_by_hand():
    u = T([[1.0, 2.0], [0.5, 1.0]])
    theta = 0.5 * (1.0 * 0.5 + 2.0 * 1.0)  # 1.25
    quant = ((1 - 1.0) ** 2 + (1 - 2.0) ** 2 + (1 - 0.5) ** 2 + (1 - 1.0) ** 2) / 2  # mean over samples
    loss = DPSHLoss(eta=0.1)
    assert loss(u, torch.tensor([3, 3])).item() == pytest.approx(softplus(theta) - theta + 0.1 * quant)
    for dissimilar in (0, -1):
        pairs = (torch.tensor([0]), torch.tensor([1]), torch.tensor([dissimilar]))
        assert loss(u, pairs=pairs).item() == pytest.approx(softplus(theta) + 0.1 * quant)


def test_dpsh_is_stable_for_large_codes():
    u = T([[30.0, 30.0], [30.0, 30.0]]).requires_grad_()
    value = DPSHLoss(eta=0.0)(u, torch.tensor([0, 1]))  # theta = 900, dissimilar: loss = softplus(900) = 900
    value.backward()
    assert value.item() == pytest.approx(900.0) and torch.isfinite(u.grad).all()


def test_dlbhc_by_hand_with_fixed_weights():
    loss = DLBHCLoss(bits=2, num_classes=2).double()
    with torch.no_grad():
        loss.classifier.weight.copy_(T([[1.0, -1.0], [0.5, 2.0]]))
        loss.classifier.bias.copy_(T([0.1, -0.2]))
    u = T([[0.0, math.log(3)], [math.log(3), -math.log(3)]])
    sig = [[1 / (1 + math.exp(-x)) for x in row] for row in u.tolist()]  # [0.5, 0.75], [0.75, 0.25]
    z0 = [sig[0][0] - sig[0][1] + 0.1, 0.5 * sig[0][0] + 2 * sig[0][1] - 0.2]
    z1 = [sig[1][0] - sig[1][1] + 0.1, 0.5 * sig[1][0] + 2 * sig[1][1] - 0.2]
    ce0 = -z0[0] + math.log(math.exp(z0[0]) + math.exp(z0[1]))  # class 0
    ce1 = -z1[1] + math.log(math.exp(z1[0]) + math.exp(z1[1]))  # class 1
    assert loss(u, torch.tensor([0, 1])).item() == pytest.approx((ce0 + ce1) / 2)
    assert DLBHCLoss.codes(u).tolist() == [[False, True], [True, False]]


def test_ninh_triplet_by_hand():
    rows = [[1.0, 0.0], [0.5, 0.5], [-1.0, 1.0]]
    t1 = sqdist(rows[0], rows[1]) - sqdist(rows[0], rows[2]) + 5.0  # q=0 p=1 n=2: 0.5 - 5 + 5
    t2 = sqdist(rows[1], rows[0]) - sqdist(rows[1], rows[2]) + 5.0  # q=1 p=0 n=2: 0.5 - 2.5 + 5
    loss = NINHTripletLoss(margin=5.0)
    assert loss(T(rows), torch.tensor([0, 0, 1])).item() == pytest.approx((t1 + t2) / 2)
    one = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    assert NINHTripletLoss(margin=1.0)(T(rows), triplets=one).item() == 0.0  # 0.5 - 5 + 1 < 0


def test_divide_and_encode_shape_and_bit_k_sees_only_slice_k():
    torch.manual_seed(0)
    head = DivideAndEncodeHead(7, 3)
    assert head.slices == [(0, 3), (3, 5), (5, 7)]
    x = torch.randn(4, 7)
    assert head(x).shape == (4, 3)
    jac = torch.autograd.functional.jacobian(head, x[:1])[0, :, 0, :]  # [bits, in_dim]
    for k, (a, b) in enumerate(head.slices):
        outside = torch.cat([jac[k, :a], jac[k, b:]])
        assert torch.all(outside == 0) and torch.all(jac[k, a:b] != 0)
    head(x).sum().backward()
    assert torch.all(head.weight.grad[head.mask == 0] == 0)


def test_drsch_by_hand_with_given_adjacency():
    rows = [[0.5, -1.0], [1.0, -0.5], [-0.3, 2.0]]
    h = tanh_rows(rows)
    d = lambda a, b: (2 - dot(a, b)) / 2  # noqa: E731
    hinge = max(0.0, 1.0 + d(h[0], h[1]) - d(h[0], h[2]))
    adjacency = T([[0, 1, 0], [1, 0, 0.5], [0, 0.5, 0]])
    laplace = (1.0 * sqdist(h[0], h[1]) + 0.5 * sqdist(h[1], h[2])) / 3  # 1/2 sum_ij A_ij |hi-hj|^2 / N
    one = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    got = DRSCHLoss(margin=1.0, lam=0.5)(T(rows), triplets=one, adjacency=adjacency)
    assert got.item() == pytest.approx(hinge + 0.5 * laplace)


def test_drsch_weighted_bits_by_hand():
    rows = [[0.5, -1.0], [1.0, -0.5], [-0.3, 2.0]]
    h = tanh_rows(rows)
    loss = DRSCHLoss(margin=1.0, bits=2).double()
    with torch.no_grad():
        loss.bit_scale.copy_(T([1.0, math.sqrt(3.0)]))  # v^2 = [1, 3] -> w = 2 [1, 3] / 4 = [0.5, 1.5]
    w = [0.5, 1.5]
    dw = lambda a, b: sum(wk * (1 - x * y) / 2 for wk, x, y in zip(w, a, b))  # noqa: E731
    one = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    expected = max(0.0, 1.0 + dw(h[0], h[1]) - dw(h[0], h[2]))
    assert loss(T(rows), triplets=one).item() == pytest.approx(expected)
    assert loss.bit_order().tolist() == [1, 0]


def test_dsrh_by_hand_three_samples_two_labels():
    rows = [[0.2, -0.4], [0.7, 0.1], [-0.5, 0.3]]
    y = torch.tensor([[1, 1], [1, 1], [1, 0]])  # r01 = 2, r02 = 1, r12 = 1
    h = tanh_rows(rows)
    d = lambda a, b: (2 - dot(a, b)) / 2  # noqa: E731
    z = (2**2 - 1) / math.log2(2) + (2**1 - 1) / math.log2(3)  # ideal DCG for queries 0 and 1
    omega = (2**2 - 2**1) / z
    q0 = omega * max(0.0, d(h[0], h[1]) - d(h[0], h[2]) + 1.0)  # i=1 (r=2) above j=2 (r=1)
    q1 = omega * max(0.0, d(h[1], h[0]) - d(h[1], h[2]) + 1.0)  # i=0 (r=2) above j=2 (r=1)
    q2 = 0.0  # both others at level 1: no triplet
    mean_h = [sum(col) / 3 for col in zip(*h)]
    expected = (q0 + q1 + q2) / 3 + 0.5 * 0.2 * dot(mean_h, mean_h)
    assert DSRHLoss(margin=1.0, alpha=0.2)(T(rows), y).item() == pytest.approx(expected)


def test_dsrh_single_labels_match_one_hot():
    u = T([[0.2, -0.4], [0.7, 0.1], [-0.5, 0.3], [0.1, 0.9]])
    y = torch.tensor([0, 1, 0, 1])
    loss = DSRHLoss()
    assert loss(u, y).item() == pytest.approx(loss(u, nn.functional.one_hot(y)).item())


def test_dh_by_hand():
    rows = [[0.3, -1.2], [-0.8, 0.4]]
    h = tanh_rows(rows)
    b = [[1.0 if x > 0 else -1.0 for x in row] for row in h]
    j1 = sum(sqdist(br, hr) for br, hr in zip(b, h)) / (2 * 2)
    mean = [sum(col) / 2 for col in zip(*h)]
    j2 = sum(sqdist(hr, mean) for hr in h) / (2 * 2)  # centred: the variance of each bit
    w = T([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # W^T W - I = [[1, 1], [1, 4]]
    j3 = (1 + 1 + 1 + 16) / 2
    got = DHLoss(lambda1=0.5, lambda2=0.1)(T(rows), weights=[w])
    assert got.item() == pytest.approx(j1 - 0.5 * j2 + 0.1 * j3)


def test_sdh_by_hand():
    rows = [[0.3, -1.2], [-0.8, 0.4], [1.5, 0.2]]
    h = tanh_rows(rows)
    b = [[1.0 if x > 0 else -1.0 for x in row] for row in h]
    j1 = sum(sqdist(br, hr) for br, hr in zip(b, h)) / (2 * 3)
    mean = [sum(col) / 3 for col in zip(*h)]
    j2 = sum(sqdist(hr, mean) for hr in h) / (2 * 3)
    within = sqdist(h[0], h[1])  # the only similar pair
    between = (sqdist(h[0], h[2]) + sqdist(h[1], h[2])) / 2
    expected = j1 - 0.5 * j2 - 0.5 * 2.0 / 2 * (between - within)
    got = SDHLoss(lambda1=0.5, lambda2=0.1, alpha=2.0)(T(rows), torch.tensor([4, 4, 9]))
    assert got.item() == pytest.approx(expected)


def test_cnnh_factorization_recovers_group_structure():
    group = np.repeat([0, 1, 2], 4)
    s = (group[:, None] == group[None, :]).astype(np.float64)  # 0/1, converted to -1/+1 inside
    h = factorize_similarity(s, bits=6, iters=8, seed=0)
    assert h.shape == (12, 6) and set(h.unique().tolist()) <= {-1.0, 1.0}
    ham = (6 - h @ h.T) / 2
    same = torch.from_numpy(group[:, None] == group[None, :])
    for i in range(12):
        assert ham[i][same[i]].max() < ham[i][~same[i]].min()
    assert torch.equal(h, factorize_similarity(torch.from_numpy(s), bits=6, iters=8, seed=0))


def test_cnnh_regression_by_hand():
    loss = CNNHLoss(torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]))
    u = torch.tensor([[0.5, -2.0], [0.0, 0.5]])
    expected = ((0.5 - 1) ** 2 + (-2 - 1) ** 2 + (0 - 1) ** 2 + (0.5 + 1) ** 2) / 4  # rows 2 and 0
    assert loss(u, torch.tensor([2, 0])).item() == pytest.approx(expected)


def test_exponentiated_by_hand():
    rows = [[0.4, -0.9], [1.1, -0.2], [-0.6, 0.8]]
    h = tanh_rows(rows)
    expected = (math.exp(-dot(h[0], h[1]) / 2)      # similar, s = +1
                + math.exp(+dot(h[0], h[2]) / 2)    # dissimilar, s = -1
                + math.exp(+dot(h[1], h[2]) / 2)) / 3
    loss = ExponentiatedHashingLoss()
    assert loss(T(rows), torch.tensor([0, 0, 1])).item() == pytest.approx(expected)
    zero_one = (torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2]), torch.tensor([1, 0, 0]))
    assert loss(T(rows), pairs=zero_one).item() == pytest.approx(expected)


# ---------------------------------------------------------------- gradients and a few SGD steps

Y = torch.tensor([0, 0, 1, 1])


def toy(name):
    """(loss module, extra parameters, closure u -> loss) on a 4-sample, 3-bit toy batch."""
    w = nn.Parameter(torch.full((5, 3), 0.3))
    cases = {
        "dpsh": (DPSHLoss(), [], lambda m, u: m(u, Y)),
        "dlbhc": (DLBHCLoss(3, 2), [], lambda m, u: m(u, Y)),
        "ninh": (NINHTripletLoss(), [], lambda m, u: m(u, Y)),
        "drsch": (DRSCHLoss(bits=3), [], lambda m, u: m(u, Y)),
        "dsrh": (DSRHLoss(), [], lambda m, u: m(u, Y)),
        "dh": (DHLoss(), [w], lambda m, u: m(u, weights=[w])),
        "sdh": (SDHLoss(), [w], lambda m, u: m(u, Y, weights=[w])),
        "cnnh": (CNNHLoss(torch.tensor([[1.0, -1, 1], [1, -1, 1], [-1, 1, 1], [-1, 1, 1]])), [],
                 lambda m, u: m(u, torch.arange(4))),
        "exponentiated": (ExponentiatedHashingLoss(), [], lambda m, u: m(u, Y)),
    }
    return cases[name]


LOSSES = {name: m.loss_class for name, m in REGISTRY.items() if m.learned}


def test_the_registry_offers_what_the_torch_free_catalog_lists():
    assert tuple(name for name, m in REGISTRY.items() if m.learned) == catalog.LEARNED
    assert tuple(name for name, m in REGISTRY.items() if not m.learned) == catalog.CLASSICAL
    assert tuple(REGISTRY) == catalog.METHODS and catalog.DEFAULT_METHOD in catalog.LEARNED


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_finite_and_sgd_decreases(name):
    torch.manual_seed(0)
    module, extra, closure = toy(name)
    assert isinstance(module, LOSSES[name])
    u = nn.Parameter(torch.randn(4, 3) * 0.1)
    params = [u, *extra, *module.parameters()]
    first = closure(module, u)
    assert first.dim() == 0
    for _ in range(5):  # plain SGD written out: torch.optim's first step imports torch._dynamo (seconds)
        for p in params:
            p.grad = None
        closure(module, u).backward()
        assert u.grad is not None
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    assert torch.isfinite(p.grad).all()
                    p -= 0.05 * p.grad
    assert closure(module, u).item() < first.item()


def test_every_loss_cites_its_paper():
    for cls in (*LOSSES.values(), DivideAndEncodeHead):
        assert cls.__doc__ and any(str(year) in cls.__doc__ for year in range(2014, 2018)), cls
