"""Exponentiated pairwise hashing loss with a smooth bilinear surrogate (our reading of Mu and Liu, AAAI 2017)."""

from __future__ import annotations

import torch
from torch import nn

from trainer.losses.base import Pairs, mean_or_zero, resolve_pairs


class ExponentiatedHashingLoss(nn.Module):
    """Yadong Mu, Zhu Liu, "Deep Hashing: A Joint Approach for Image Signature Learning", AAAI 2017, as we
    read it. Our seed text only names "an exponentiated hashing loss and its bilinear smooth approximation";
    the formula below is OUR READING, not checked against the paper::

        exact:       l_ij = exp(-s_ij b_i^T b_j / K),        b = sign(u),  s_ij in {-1, +1}
        implemented: L = mean_{pairs} exp(-s_ij h_i^T h_j / K),  h = tanh(u / tau)

    i.e. the bilinear form b_i^T b_j keeps its shape and each sign is replaced by a tanh, so gradients
    flow. Similarity is converted explicitly: s = +1 similar, -1 dissimilar (inputs 0/1 or -1/+1, s > 0
    meaning similar). Since |h_i^T h_j| <= K every term lies in [e^-1, e]. ``tau`` (default 1) sharpens
    the surrogate towards sign as it shrinks. The paper's classification pre-training is the fit loop's job.
    """

    def __init__(self, tau: float = 1.0):
        super().__init__()
        self.tau = float(tau)

    def forward(self, u: torch.Tensor, y: torch.Tensor | None = None, *, pairs: Pairs | None = None) -> torch.Tensor:
        """u [N, K]; labels y [N] / [N, C] (all pairs i < j) or pairs=(i, j, s). Mean over pairs, scalar."""
        i, j, s01 = resolve_pairs(y, pairs)
        h = torch.tanh(u / self.tau)
        signed = 2.0 * s01 - 1.0
        return mean_or_zero(torch.exp(-signed * (h[i] * h[j]).sum(dim=1) / u.shape[1]), u)
