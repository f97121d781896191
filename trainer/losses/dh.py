"""DH and SDH: quantization, bit balance, bit independence, and a supervised scatter term (Liong et al., CVPR 2015)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from trainer.losses.base import Pairs, binarize, resolve_pairs


class DHLoss(nn.Module):
    """Venice Erin Liong, Jiwen Lu, Gang Wang, Pierre Moulin, Jie Zhou, "Deep Hashing for Compact Binary
    Codes Learning", CVPR 2015, J = J1 - lambda1 J2 + lambda2 J3 on the top layer H = tanh(u), B = sign(H)::

        J1 = 1/(2N) ||B - H||_F^2,  J2 = 1/(2N) tr((H - m)^T (H - m)),  J3 = 1/2 sum_W ||W^T W - I||_F^2

    with m the batch mean of H. J2 (the variance of each bit, "balanced bits") is maximised. We
    centre it as the paper's words say (variance): the uncentred tr(H^T H) is maximised just as
    well by every photo getting the same code, which is what it did on Fashion-MNIST (mAP 0.10). J3 makes the projections' columns orthonormal ("independent
    bits"). ``weights`` are the projections in our [in, out] layout (HashingNet.head_weight [D, K], so
    W^T W is K x K); pass an nn.Linear's ``weight.T``. The paper's J4 (weight decay, its lambda3) is the
    optimizer's job. Our reduction: the paper sums J1 over the N samples; we average it, so our lambdas
    are the paper's divided by its N. Defaults (1.0, 0.01) are ours, to tune.
    """

    def __init__(self, lambda1: float = 1.0, lambda2: float = 0.01):
        super().__init__()
        self.lambda1, self.lambda2 = float(lambda1), float(lambda2)

    def unsupervised(self, h: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        n = h.shape[0]
        j1 = (binarize(h) - h).pow(2).sum() / (2 * n)
        j2 = (h - h.mean(dim=0, keepdim=True)).pow(2).sum() / (2 * n)
        j3 = sum(((w.T @ w - torch.eye(w.shape[1], dtype=w.dtype, device=w.device)).pow(2).sum() / 2
                  for w in weights), h.new_zeros(()))
        return j1 - self.lambda1 * j2 + self.lambda2 * j3

    def forward(self, u: torch.Tensor, weights: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """u [N, K] code logits; ``weights`` the [in, out] projection matrices for J3. Scalar."""
        return self.unsupervised(torch.tanh(u), weights)


class SDHLoss(DHLoss):
    """Supervised DH (Liong et al., CVPR 2015, the same paper).
    J2 becomes 1/2 (tr(H^T H)/N + alpha tr(Sigma_B - Sigma_W)), so::

        J = J1 - lambda1 J2 + lambda2 J3 - lambda1 alpha / 2 (tr Sigma_B - tr Sigma_W)
        tr Sigma_W = mean_{(i,j) similar} ||h_i - h_j||^2,  tr Sigma_B = mean_{(i,j) dissimilar} ||h_i - h_j||^2

    Pairs come from the batch's labels (all i < j) or explicitly; a scatter with no pairs is 0.
    """

    def __init__(self, lambda1: float = 1.0, lambda2: float = 0.01, alpha: float = 1.0):
        super().__init__(lambda1, lambda2)
        self.alpha = float(alpha)

    def forward(self, u: torch.Tensor, y: torch.Tensor | None = None, *, pairs: Pairs | None = None,
                weights: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """u [N, K]; labels y [N] / [N, C] or pairs=(i, j, s); ``weights`` as in DHLoss. Scalar."""
        h = torch.tanh(u)
        i, j, s = resolve_pairs(y, pairs)
        dist = (h[i] - h[j]).pow(2).sum(dim=1)
        within = (dist * s).sum() / s.sum().clamp_min(1.0)
        between = (dist * (1 - s)).sum() / (1 - s).sum().clamp_min(1.0)
        return self.unsupervised(h, weights) - self.lambda1 * self.alpha / 2 * (between - within)
