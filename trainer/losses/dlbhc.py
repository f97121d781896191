"""DLBHC: a sigmoid latent layer trained through a classifier (Lin, Yang, Hsiao, Chen, CVPRW 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DLBHCLoss(nn.Module):
    """Kevin Lin, Huei-Fang Yang, Jen-Hao Hsiao, Chu-Song Chen, "Deep Learning of Binary Hash Codes for
    Fast Image Retrieval", CVPR Workshops 2015 (Sec. 3.1)::

        H = sigmoid(u)  (the latent layer, K units),  L = CE(W_c H + c, y),  code_k = [H_k > 0.5] = [u_k > 0].

    The classifier (Linear K -> C, the paper's F8) lives in this module: give the optimizer this
    module's parameters as well as the network's. The paper binarizes at H >= 0.5; we use u > 0 like the
    engine (they differ only at u = 0 exactly). Label counts are whatever the batch's classes index into.
    """

    def __init__(self, bits: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(bits, num_classes)

    def forward(self, latent_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """latent_logits u [N, K] (pre-sigmoid), class indices y [N] (long). Mean cross-entropy, scalar."""
        return F.cross_entropy(self.classifier(torch.sigmoid(latent_logits)), y)

    @staticmethod
    def codes(latent_logits: torch.Tensor) -> torch.Tensor:
        """Bool codes [N, K]: sigmoid(u) > 0.5, i.e. u > 0."""
        return latent_logits > 0
