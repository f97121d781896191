"""DPSH: pairwise likelihood loss with a quantization term (Li, Wang, Kang, IJCAI 2016)."""

from __future__ import annotations

import torch
from torch import nn

from trainer.losses.base import Pairs, binarize, mean_or_zero, resolve_pairs


class DPSHLoss(nn.Module):
    """Wu-Jun Li, Sheng Wang, Wang-Cheng Kang, "Feature Learning based Deep Supervised Hashing with
    Pairwise Labels", IJCAI 2016, the relaxed objective::

        L = -sum_{s_ij in S} (s_ij theta_ij - log(1 + exp(theta_ij))) + eta sum_i ||b_i - u_i||^2,
        theta_ij = 1/2 u_i^T u_j,  b_i = sign(u_i),  s_ij in {0, 1}.

    Our reduction: the likelihood term is the mean over pairs, the quantization term the mean over
    samples (each a sum over the K bits), so the loss does not grow with the batch. log(1 + e^x) is
    computed as max(x, 0) + log1p(e^-|x|), which never overflows. ``eta`` defaults to 0.1: the paper
    picks eta on a validation set; 0.1 is DeepHash-pytorch's default (which also averages over bits,
    i.e. its eta is ours x K; other ports use up to 50), so treat it as a starting point to tune.
    b_i is constant in u (sign has zero gradient), so the quantization term pulls u_i towards +-1.
    """

    def __init__(self, eta: float = 0.1):
        super().__init__()
        self.eta = float(eta)

    def forward(self, u: torch.Tensor, y: torch.Tensor | None = None, *, pairs: Pairs | None = None) -> torch.Tensor:
        """u [N, K] code logits; labels y [N] (or multi-hot [N, C]) for all pairs, or pairs=(i, j, s). Scalar."""
        i, j, s = resolve_pairs(y, pairs)
        theta = 0.5 * (u[i] * u[j]).sum(dim=1)
        softplus = theta.clamp(min=0) + torch.log1p(torch.exp(-theta.abs()))
        likelihood = mean_or_zero(softplus - s * theta, u)
        quantization = (binarize(u) - u).pow(2).sum(dim=1).mean()
        return likelihood + self.eta * quantization
