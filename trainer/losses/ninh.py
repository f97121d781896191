"""NINH: divide-and-encode head and triplet ranking loss (Lai, Pan, Liu, Yan, CVPR 2015)."""

from __future__ import annotations

import torch
from torch import nn

from trainer.losses.base import Triplets, mean_or_zero, triplets_from_labels

__all__ = ["DivideAndEncodeHead", "NINHTripletLoss", "triplets_from_labels"]


class NINHTripletLoss(nn.Module):
    """Hanjiang Lai, Yan Pan, Ye Liu, Shuicheng Yan, "Simultaneous Feature Learning and Hash Coding with
    Deep Neural Networks", CVPR 2015, the triplet ranking loss on real codes u::

        L = mean_{(q, p, n)} max(0, ||u_q - u_p||^2 - ||u_q - u_n||^2 + margin)

    q and p similar, q and n dissimilar. The paper's codes lie in [0, 1]^K (sigmoid) with margin 1; ours
    are +-1-centred logits, so distances are about 4x larger for the same bits: tune ``margin``. Without
    explicit ``triplets`` all valid ones in the batch are used, at most ``max_triplets`` drawn by a
    generator seeded once with ``seed`` (reproducible, yet a new subset at each call).
    """

    def __init__(self, margin: float = 1.0, max_triplets: int | None = 4096, seed: int = 0):
        super().__init__()
        self.margin = float(margin)
        self.max_triplets = max_triplets
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, u: torch.Tensor, y: torch.Tensor | None = None, *,
                triplets: Triplets | None = None) -> torch.Tensor:
        """u [N, K]; labels y [N] (or multi-hot [N, C]) or triplets=(q, p, n) index tensors. Scalar."""
        if (y is None) == (triplets is None):
            raise ValueError("give either labels y or triplets=(q, p, n)")
        q, p, n = triplets if triplets is not None else triplets_from_labels(
            y, self.max_triplets, generator=self.generator)
        d_pos = (u[q] - u[p]).pow(2).sum(dim=1)
        d_neg = (u[q] - u[n]).pow(2).sum(dim=1)
        return mean_or_zero((d_pos - d_neg + self.margin).clamp(min=0), u)


class DivideAndEncodeHead(nn.Module):
    """Divide-and-encode module (Lai et al., CVPR 2015): the feature [N, D] is cut into K contiguous slices (sizes
    differ by at most one, like numpy.array_split) and bit k is one linear unit on slice k only.

    Stored as a block-diagonal [D, K] weight times a fixed mask, so ``u = x @ (W * M) + b`` has the same
    shape as HashingNet's head (``effective_weight()`` can be copied into it). We drop the paper's sigmoid
    and piece-wise threshold: the output is the real code u, and the bit is u > 0.
    """

    def __init__(self, in_dim: int, bits: int):
        super().__init__()
        if not 0 < bits <= in_dim:
            raise ValueError(f"need 0 < bits <= in_dim, got bits={bits}, in_dim={in_dim}")
        sizes = torch.tensor([in_dim // bits + (k < in_dim % bits) for k in range(bits)])
        owner = torch.repeat_interleave(torch.arange(bits), sizes)
        mask = nn.functional.one_hot(owner, bits).float()
        self.register_buffer("mask", mask, persistent=False)
        bound = 1.0 / sizes.float().sqrt()  # nn.Linear's init, with fan-in = the slice size
        self.weight = nn.Parameter((torch.rand(in_dim, bits) * 2 - 1) * bound * mask)
        self.bias = nn.Parameter((torch.rand(bits) * 2 - 1) * bound)
        self.slices = [(int(a), int(b)) for a, b in zip(sizes.cumsum(0) - sizes, sizes.cumsum(0))]

    def effective_weight(self) -> torch.Tensor:
        """The block-diagonal [D, K] weight actually applied."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features [N, D] to real codes u [N, K]."""
        return x @ self.effective_weight() + self.bias
