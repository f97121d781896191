"""Backbone interface and registry: image networks (pretrained or trained from scratch) that give pooled features."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Backbone(nn.Module):
    """An image network seen as a feature extractor with its preprocessing attached.

    Subclasses set the attributes in ``__init__`` and implement :meth:`features` (pooled,
    before the classifier and before any normalisation) and, when they have an ImageNet
    classifier, :meth:`classify`. Inputs are float NCHW tensors already normalised with
    ``mean``/``std`` on [0, 1] pixels.
    """

    name: str
    feature_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # The file the pretrained weights came from (hashed into a manifest's backbone_id);
    # None when the backbone was built without pretrained weights.
    weights_path: str | None = None
    # Whether the weights came pretrained; full mode freezes BatchNorm statistics only for
    # pretrained backbones (a network trained from scratch must learn its statistics).
    pretrained: bool = True

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"backbone {self.name!r} has no ImageNet classifier")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    # Full-mode training fine-tunes only the last blocks: a backbone that can be split offers
    # these (see EfficientNetLite); ``tail(trunk(x, k), k)`` must equal ``features(x)``.
    num_blocks: int = 0

    def trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        raise NotImplementedError(f"backbone {self.name!r} cannot be split for fine-tuning")

    def tail(self, x: torch.Tensor, start: int) -> torch.Tensor:
        raise NotImplementedError(f"backbone {self.name!r} cannot be split for fine-tuning")

    def trunk_parameters(self, stop: int):
        raise NotImplementedError(f"backbone {self.name!r} cannot be split for fine-tuning")


Factory = Callable[..., Backbone]  # f(packaged_weights: bool, input_size: int | None) -> Backbone
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator that adds a factory ``f(packaged_weights, input_size)`` under ``name``."""

    def add(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return add


def available_backbones() -> list[str]:
    """Names accepted by :func:`get_backbone`."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_backbone(name: str, packaged_weights: bool = True, input_size: int | None = None) -> Backbone:
    """Build the backbone called ``name`` in eval mode, with its pretrained weights by default.

    ``input_size`` other than the native one suits fully convolutional backbones (global
    pooling): full-mode training runs at 112 px on a CPU, a quarter of the work of 224.
    """
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(packaged_weights, input_size).eval()


def _load_builtin() -> None:
    # why: the modules defining backbones import this one (register): imported on first use
    from trainer.backbones import efficientnet_lite, nin_latent  # noqa: F401
