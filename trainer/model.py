"""HashingNet: backbone plus linear hash head, shaped exactly like the ONNX model file contract."""

from __future__ import annotations

import torch
from torch import nn

from trainer.backbones import Backbone


class HashingNet(nn.Module):
    """uint8 NHWC RGB pixels in; ``(code_logits, feature)`` out, as docs/ARCHITECTURE.md says.

    The head is two bare parameters named ``head_weight`` ([D, K]) and ``head_bias`` ([K]),
    not an ``nn.Linear``: the exporter then keeps those names as the ONNX initializers the
    engine rewrites, and the weight is stored [D, K] so ``feature @ W + b`` needs no transpose.
    """

    def __init__(self, backbone: Backbone, bits: int,
                 head_weight: torch.Tensor | None = None, head_bias: torch.Tensor | None = None):
        super().__init__()
        if bits <= 0:
            raise ValueError(f"a code needs at least one bit, not {bits}")
        self.backbone = backbone
        self.bits = bits
        dim = backbone.feature_dim
        self.head_weight = nn.Parameter(torch.zeros(dim, bits) if head_weight is None
                                        else torch.as_tensor(head_weight, dtype=torch.float32).clone())
        self.head_bias = nn.Parameter(torch.zeros(bits) if head_bias is None
                                      else torch.as_tensor(head_bias, dtype=torch.float32).clone())
        if tuple(self.head_weight.shape) != (dim, bits) or tuple(self.head_bias.shape) != (bits,):
            raise ValueError(f"head must be [{dim}, {bits}] and [{bits}], got "
                             f"{list(self.head_weight.shape)} and {list(self.head_bias.shape)}")
        # Buffers (not Python floats) so the normalisation constants travel with .to(device).
        self.register_buffer("pixel_mean", torch.tensor(backbone.mean, dtype=torch.float32).view(1, 1, 1, 3),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(backbone.std, dtype=torch.float32).view(1, 1, 1, 3),
                             persistent=False)

    @property
    def input_size(self) -> int:
        return self.backbone.input_size

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [N, S, S, 3] RGB to the float NCHW input the backbone expects."""
        x = pixels.to(torch.float32) / 255.0
        x = (x - self.pixel_mean) / self.pixel_std
        return x.permute(0, 3, 1, 2)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised pooled backbone features [N, D]."""
        f = self.backbone.features(self.normalise(pixels))
        # Written out rather than F.normalize, whose expand_as left the exported output
        # with a symbolic feature dimension; the eps matches F.normalize's.
        return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def head(self, feature: torch.Tensor) -> torch.Tensor:
        """Code logits from normalised features; the bit is ``logit > 0``."""
        return feature @ self.head_weight + self.head_bias

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.embed(pixels)
        return self.head(feature), feature
