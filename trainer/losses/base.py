"""Shared helpers for the hashing losses: labels to pairs and triplets, code conventions, relaxed Hamming distance."""

from __future__ import annotations

import torch

Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def binarize(u: torch.Tensor) -> torch.Tensor:
    """The binary code b = sign(u) in {-1, +1}, with the engine's rule that a bit is set iff ``u > 0``."""
    return torch.where(u > 0, torch.ones_like(u), -torch.ones_like(u))


def similarity_from_labels(y: torch.Tensor) -> torch.Tensor:
    """Bool [N, N]: same class for labels [N]; at least one shared label for multi-hot labels [N, C]."""
    if y.dim() == 1:
        return y[:, None] == y[None, :]
    if y.dim() == 2:
        y = y.float()
        return (y @ y.T) > 0
    raise ValueError(f"labels must be [N] or multi-hot [N, C], got shape {list(y.shape)}")


def pairs_from_labels(y: torch.Tensor) -> Pairs:
    """All unordered pairs i < j of the batch: (i, j, s) with s = 1. similar, 0. dissimilar (float)."""
    n = y.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=y.device)
    return i, j, similarity_from_labels(y)[i, j].float()


def resolve_pairs(y: torch.Tensor | None, pairs: Pairs | None) -> Pairs:
    """Exactly one of labels ``y`` or explicit ``pairs=(i, j, s)``; s in {0, 1} or {-1, +1}, and s > 0 means similar.

    Returns (i, j, s) with s converted to float {0, 1}, the convention every pairwise loss here starts from.
    """
    if (y is None) == (pairs is None):
        raise ValueError("give either labels y or pairs=(i, j, s), not both nor neither")
    if pairs is None:
        return pairs_from_labels(y)
    i, j, s = pairs
    if not (i.shape == j.shape == s.shape) or i.dim() != 1:
        raise ValueError("pairs must be three 1-D tensors of the same length")
    return i.long(), j.long(), (s > 0).float()


def triplets_from_labels(y: torch.Tensor, max_triplets: int | None = 4096, seed: int = 0,
                         generator: torch.Generator | None = None) -> Triplets:
    """All valid triplets (q, p, n): q != p similar, n dissimilar to q; at most ``max_triplets`` of them.

    When there are more, a uniform subset is drawn by ``generator`` (or a fresh one seeded with ``seed``)
    and kept in (q, p, n) order. Builds an [N, N, N] mask: meant for batches of at most a few hundred.
    """
    sim = similarity_from_labels(y)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    mask = (sim & ~eye)[:, :, None] & (~sim)[:, None, :]
    q, p, n = mask.nonzero(as_tuple=True)
    if max_triplets is not None and q.numel() > max_triplets:
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        keep = torch.randperm(q.numel(), generator=gen)[:max_triplets].sort().values.to(q.device)
        q, p, n = q[keep], p[keep], n[keep]
    return q, p, n


def relaxed_hamming(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise d(a, b) = sum_k w_k (1 - a_k b_k) / 2 (w = 1: d = (K - a.b) / 2), the Hamming distance on +-1 codes."""
    terms = (1.0 - a * b) / 2.0
    return (terms if weight is None else terms * weight).sum(dim=-1)


def mean_or_zero(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mean of ``x``, or a zero that still belongs to ``like``'s graph when there is nothing to average."""
    return x.mean() if x.numel() else like.sum() * 0.0
