"""DRSCH: triplet margin in relaxed Hamming space, Laplacian regularizer, bit weights (Zhang et al., TIP 2015)."""

from __future__ import annotations

import torch
from torch import nn

from trainer.losses.base import Triplets, mean_or_zero, relaxed_hamming, similarity_from_labels, triplets_from_labels


class DRSCHLoss(nn.Module):
    """Ruimao Zhang, Liang Lin, Rui Zhang, Wangmeng Zuo, Lei Zhang, "Bit-Scalable Deep Hashing with
    Regularized Similarity Learning for Image Retrieval and Person Re-Identification", IEEE TIP 2015::

        h = tanh(u),  d_w(a, b) = sum_k w_k (1 - a_k b_k) / 2   (w = 1: d = (K - a^T b) / 2)
        L = mean_{(q, p, n)} max(0, C + d_w(h_q, h_p) - d_w(h_q, h_n)) + lam tr(H^T (D - A) H) / N

    A is an [N, N] adjacency (default: 1 for same label, i != j; self-loops cancel in D - A), D its degree
    matrix; tr(H^T L H) = 1/2 sum_ij A_ij ||h_i - h_j||^2. With ``bits`` given the codes are weighted
    (bit-scalable): w_k = K v_k^2 / sum_l v_l^2 with learnable v (init 1), so w >= 0 and sum w = K.
    What we simplify: sign relaxed to tanh (our choice of surrogate); the weights
    enter the triplet term only, normalised to sum K (our choice: stops them scaling the margin away);
    truncation to the heaviest bits (``bit_order()``) is left to the caller; no person re-id parts.
    """

    def __init__(self, margin: float = 1.0, lam: float = 0.01, bits: int | None = None,
                 max_triplets: int | None = 4096, seed: int = 0):
        super().__init__()
        self.margin, self.lam, self.max_triplets = float(margin), float(lam), max_triplets
        self.bit_scale = nn.Parameter(torch.ones(bits)) if bits else None
        self.generator = torch.Generator().manual_seed(seed)

    def bit_weights(self) -> torch.Tensor | None:
        """w [K] (nonnegative, summing to K), or None when unweighted."""
        if self.bit_scale is None:
            return None
        v2 = self.bit_scale.pow(2)
        return v2 * (v2.numel() / v2.sum().clamp_min(1e-12))

    def bit_order(self) -> torch.Tensor:
        """Bit indices by decreasing weight: keep the first k for a k-bit code."""
        return torch.argsort(self.bit_weights().detach(), descending=True)

    def forward(self, u: torch.Tensor, y: torch.Tensor | None = None, *, triplets: Triplets | None = None,
                adjacency: torch.Tensor | None = None) -> torch.Tensor:
        """u [N, K]; labels y [N] / [N, C] and/or triplets=(q, p, n); optional adjacency A [N, N]. Scalar.

        Triplets default to all valid ones from y; A defaults to same-label from y; with neither y nor A
        the Laplacian term is 0.
        """
        if triplets is None:
            if y is None:
                raise ValueError("give labels y or triplets=(q, p, n)")
            triplets = triplets_from_labels(y, self.max_triplets, generator=self.generator)
        h, w = torch.tanh(u), self.bit_weights()
        q, p, n = triplets
        hinge = (self.margin + relaxed_hamming(h[q], h[p], w) - relaxed_hamming(h[q], h[n], w)).clamp(min=0)
        loss = mean_or_zero(hinge, u)
        if adjacency is None and y is not None:
            adjacency = similarity_from_labels(y).to(h.dtype)
        if adjacency is not None:
            laplacian = torch.diag(adjacency.sum(dim=1)) - adjacency
            loss = loss + self.lam * (h * (laplacian @ h)).sum() / h.shape[0]
        return loss
