"""Each deep-hashing method as one objective over a batch: codes u, group labels y, item indices."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer import losses

CLASSICAL = ("lsh", "pcah", "itq", "sh")
LEARNED = ("dpsh", "dlbhc", "ninh", "drsch", "dsrh", "dh", "sdh", "cnnh", "exponentiated")
METHODS = LEARNED + CLASSICAL
SUPERVISED = tuple(m for m in LEARNED if m != "dh")


@dataclass
class Objective:
    """A method's loss bound to what it needs; ``extra`` holds its own trainable parameters."""

    method: str
    loss: nn.Module
    extra: list[nn.Parameter]

    def __call__(self, u: torch.Tensor, y: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
        if self.method == "dh":  # unsupervised: the labels are not used
            return self.loss(u, [head_weight])
        if self.method == "cnnh":  # regression onto the stage-1 code of each item's group
            return self.loss(u, y)
        return self.loss(u, y)


def make_objective(method: str, bits: int, y_all: torch.Tensor, *, seed: int = 0) -> Objective:
    """The objective for ``method`` over a training set whose group labels are ``y_all``."""
    if method == "dpsh":
        # Our loss averages the pair term over pairs but sums the quantization term over K
        # bits, so the paper's eta range over-weights it: on digits (120 labelled images,
        # 64 bits) eta 0.1 gained +0.09 mAP over ITQ, 0.01 gained +0.26, 0.5 lost ground.
        loss = losses.DPSHLoss(eta=0.01)
    elif method == "exponentiated":
        loss = losses.ExponentiatedHashingLoss()
    elif method == "sdh":
        loss = losses.SDHLoss(lambda2=0.0)  # as DH
    elif method == "dh":
        # No independence term (lambda2 = 0): on unit-norm features, orthonormal projections
        # make every logit tiny, the bias wins and all codes collapse (digits, 32 bits: mAP
        # 0.10 with the default 0.01, 0.26 with 1e-4, 0.41 without; ITQ 0.45).
        loss = losses.DHLoss(lambda2=0.0)
    elif method == "dlbhc":
        loss = losses.DLBHCLoss(bits, int(y_all.max()) + 1)
    elif method == "ninh":
        loss = losses.NINHTripletLoss(seed=seed)
    elif method == "drsch":
        loss = losses.DRSCHLoss()
    elif method == "dsrh":
        loss = losses.DSRHLoss()
    elif method == "cnnh":
        # Stage 1 factors the similarity of the groups, not of every image: members of a group
        # share one target row, so the G x G problem has the same optimum and takes seconds
        # where the N x N one (O(N) per entry) would take hours. Group ids index the targets.
        groups = torch.arange(int(y_all.max()) + 1)
        targets = losses.factorize_similarity(losses.similarity_from_labels(groups), bits, seed=seed)
        loss = losses.CNNHLoss(targets)
    else:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return Objective(method, loss, [p for p in loss.parameters() if p.requires_grad])
