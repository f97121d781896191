"""NIN-latent (seed 001): Network In Network, trained from scratch; BatchNorm after each conv is a deliberate deviation, for stable training on small data."""

from __future__ import annotations

import torch
from torch import nn

from trainer.backbones import Backbone, register

# (kernel, widths of the k x k conv and the two 1x1 convs) per mlpconv block, as in Lin, Chen
# and Yan's CIFAR-10 network; the last 1x1 conv of block 3 gives ``feature_dim`` channels.
NIN_BLOCKS = (
    (5, (192, 160, 96)),
    (5, (192, 192, 192)),
    (3, (192, 192, None)),
)
FEATURE_DIM = 256
DROPOUT = 0.5  # NIN's rate after the first two pools


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    # No conv bias: the BatchNorm after it has one.
    return [nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True)]


def _mlpconv(in_ch: int, kernel: int, widths: tuple[int, int, int], pool: bool, dropout: float) -> nn.Sequential:
    """A k x k conv then two 1x1 convs (each BatchNorm + ReLU), then max-pool 3/2 and dropout if ``pool``."""
    layers = _conv_bn_relu(in_ch, widths[0], kernel)
    layers += _conv_bn_relu(widths[0], widths[1], 1)
    layers += _conv_bn_relu(widths[1], widths[2], 1)
    if pool:
        # Padding 1 halves any size (32 -> 16 -> 8) like Caffe's ceil-mode pool in the NIN
        # model, without ceil_mode's extra shape arithmetic in the exported graph.
        layers += [nn.MaxPool2d(3, stride=2, padding=1), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class NINLatent(Backbone):
    """Three mlpconv blocks and global average pooling; fully convolutional, so any input size serves.

    The blocks are the units full-mode training splits at: ``trunk(x, 0)`` is ``x`` itself,
    and ``tuned_blocks=3`` trains the whole network (it has no pretrained part to keep).
    Dropout acts in training mode only (export and encoding run in eval mode).
    """

    pretrained = False

    def __init__(self, input_size: int = 32, feature_dim: int = FEATURE_DIM, dropout: float = DROPOUT):
        super().__init__()
        self.name = "nin-latent"
        self.input_size = input_size
        self.feature_dim = feature_dim
        self.mean = (0.5, 0.5, 0.5)
        self.std = (0.5, 0.5, 0.5)
        self.weights_path = None
        blocks, in_ch = [], 3
        for i, (kernel, widths) in enumerate(NIN_BLOCKS):
            widths = tuple(feature_dim if w is None else w for w in widths)
            blocks.append(_mlpconv(in_ch, kernel, widths, pool=i < len(NIN_BLOCKS) - 1, dropout=dropout))
            in_ch = widths[-1]
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(x, 0)

    def trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """Blocks [0, stop): the part full-mode training keeps frozen (the input itself for 0)."""
        for block in self.blocks[:stop]:
            x = block(x)
        return x

    def tail(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Blocks [start, end) and global average pooling: ``tail(trunk(x, k), k) == features(x)``."""
        for block in self.blocks[start:]:
            x = block(x)
        return x.mean(dim=(2, 3))

    def trunk_parameters(self, stop: int):
        for block in self.blocks[:stop]:
            yield from block.parameters()


@register("nin-latent")
def _nin_latent(packaged_weights: bool, input_size: int | None = None) -> Backbone:
    """NIN-latent at ``input_size`` (default 32), randomly initialised.

    ``packaged_weights`` is ignored: there are no pretrained weights, the network is trained
    from scratch in full mode, and its initial weights are deterministic under torch.manual_seed.
    """
    return NINLatent(input_size=input_size or 32).eval()
