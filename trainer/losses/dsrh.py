"""DSRH: NDCG-weighted surrogate ranking loss over multi-level similarity (Zhao, Huang, Wang, Tan, CVPR 2015)."""

from __future__ import annotations

import torch
from torch import nn


def similarity_levels(y: torch.Tensor) -> torch.Tensor:
    """r [N, N]: shared-label counts for multi-hot y [N, C]; 1 same / 0 different for class labels y [N]."""
    if y.dim() == 1:
        return (y[:, None] == y[None, :]).float()
    y = y.float()
    return y @ y.T


class DSRHLoss(nn.Module):
    """Fang Zhao, Yongzhen Huang, Liang Wang, Tieniu Tan, "Deep Semantic Ranking Based Hashing for
    Multi-Label Image Retrieval", CVPR 2015; every sample is a query q, the rest of the
    batch its list::

        h = tanh(u),  d(a, b) = (K - a^T b) / 2,  r_i = level of x_i for q
        L_q = sum_i sum_{j: r_j < r_i} omega(r_i, r_j) [d(h_q, h_i) - d(h_q, h_j) + rho]_+
        omega(r_i, r_j) = (2^{r_i} - 2^{r_j}) / Z_q,  Z_q = sum_t (2^{r_(t)} - 1) / log2(1 + t)
        L = mean_q L_q + alpha / 2 ||mean_q h_q||^2

    Z_q is the ideal DCG of q's list (levels sorted in decreasing order; the log base only rescales every
    omega alike), taken over the batch. Mean over queries (queries without triplets count as 0). The
    paper's weight decay beta/2 ||W||^2 is the optimizer's job (weight_decay), not this loss's.
    The [N, N, N] tensors restrict it to batches of a few hundred.
    """

    def __init__(self, margin: float = 1.0, alpha: float = 0.1):
        super().__init__()
        self.margin, self.alpha = float(margin), float(alpha)

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """u [N, K]; y class labels [N] or multi-hot [N, C] in {0, 1}. Scalar."""
        h = torch.tanh(u)
        n, k = h.shape
        r = similarity_levels(y).to(h.dtype)
        d = 0.5 * (k - h @ h.T)  # d[q, i]
        off = ~torch.eye(n, dtype=torch.bool, device=h.device)
        gain = torch.exp2(r) - 1.0
        ideal = torch.sort(torch.where(off, gain, torch.zeros_like(gain)), dim=1, descending=True).values
        z = (ideal / torch.log2(torch.arange(2, n + 2, device=h.device, dtype=h.dtype))).sum(dim=1)
        z = torch.where(z > 0, z, torch.ones_like(z))
        # [q, i, j]: i more relevant than j, both different from q
        valid = (r[:, :, None] > r[:, None, :]) & off[:, :, None] & off[:, None, :]
        omega = (torch.exp2(r)[:, :, None] - torch.exp2(r)[:, None, :]) / z[:, None, None]
        hinge = (d[:, :, None] - d[:, None, :] + self.margin).clamp(min=0)
        ranking = torch.where(valid, omega * hinge, torch.zeros_like(hinge)).sum(dim=(1, 2)).mean()
        return ranking + 0.5 * self.alpha * h.mean(dim=0).pow(2).sum()
