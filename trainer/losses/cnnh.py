"""CNNH: factor the similarity matrix into target codes, then regress the network on them (Xia et al., AAAI 2014)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def factorize_similarity(S, bits: int, iters: int = 10, seed: int = 0) -> torch.Tensor:
    """CNNH stage 1: min_H ||S - 1/K H H^T||_F^2 over H in [-1, 1]^{N x K}, then H = sign(H) in {-1, 1}.

    Rongkai Xia, Yan Pan, Hanjiang Lai, Cong Liu, Shuicheng Yan, "Supervised Hashing via Image
    Representation Learning", AAAI 2014. S [N, N] (numpy or torch) with s > 0 similar, anything else
    dissimilar, converted to the paper's {+1, -1} with a diagonal of 1. Random coordinate descent as in the
    paper: ``iters`` sweeps over all N K entries in a seeded random order; with R = K S - H H^T, changing
    H_ij by d (c = column j) changes the objective by the quartic
    f(d) = d^4 + 4 c_i d^3 + 2 (|c|^2 + c_i^2 - R_ii) d^2 - 4 (R c)_i d. We take the paper's Newton step
    -f'(0)/f''(0), clipped to the box, and keep whichever of it and the two box ends lowers f most
    (never a step that raises it). O(N) per entry: meant for a few thousand images.
    """
    s = np.asarray(S.detach().cpu() if isinstance(S, torch.Tensor) else S, dtype=np.float64)
    s = np.where(s > 0, 1.0, -1.0)
    np.fill_diagonal(s, 1.0)
    n = s.shape[0]
    rng = np.random.default_rng(seed)
    h = rng.uniform(-1.0, 1.0, size=(n, bits))
    r = bits * s - h @ h.T
    for _ in range(iters):
        for flat in rng.permutation(n * bits):
            i, j = divmod(int(flat), bits)
            c = h[:, j].copy()
            rc, ci, a2 = float(r[i] @ c), c[i], 2.0 * (c @ c + c[i] ** 2 - r[i, i])
            lo, hi = -1.0 - h[i, j], 1.0 - h[i, j]
            steps = [lo, hi] + ([min(max(2.0 * rc / a2, lo), hi)] if a2 > 0 else [])
            gains = [d ** 4 + 4 * ci * d ** 3 + a2 * d ** 2 - 4 * rc * d for d in steps]
            best = int(np.argmin(gains))
            if gains[best] < 0:
                d = steps[best]
                r[i] -= d * c
                r[:, i] -= d * c
                r[i, i] -= d * d
                h[i, j] += d
    return torch.from_numpy(np.where(h > 0, 1.0, -1.0)).float()


class CNNHLoss(nn.Module):
    """CNNH stage 2 (Xia et al., AAAI 2014): L = mean over rows and bits of (u_i - H_{index_i})^2,
    regressing the network's real code onto its stage-1 target row (the paper's squared error on the
    q code units; its optional class-label units are left out).
    ``targets`` [M, K] in {-1, 1} (from factorize_similarity) is kept as a buffer.
    """

    def __init__(self, targets: torch.Tensor):
        super().__init__()
        self.register_buffer("targets", torch.as_tensor(targets, dtype=torch.float32).clone())

    def forward(self, u: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """u [N, K]; index [N] long, each sample's row in ``targets``. Scalar."""
        return F.mse_loss(u, self.targets[index].to(u.dtype))
