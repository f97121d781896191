"""Backbone interface and registry: pretrained image networks that give pooled features."""

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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"backbone {self.name!r} has no ImageNet classifier")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


_REGISTRY: dict[str, Callable[[bool], Backbone]] = {}


def register(name: str) -> Callable[[Callable[[bool], Backbone]], Callable[[bool], Backbone]]:
    """Decorator that adds a factory ``f(packaged_weights: bool) -> Backbone`` under ``name``."""

    def add(factory: Callable[[bool], Backbone]) -> Callable[[bool], Backbone]:
        _REGISTRY[name] = factory
        return factory

    return add


def available_backbones() -> list[str]:
    """Names accepted by :func:`get_backbone`."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_backbone(name: str, packaged_weights: bool = True) -> Backbone:
    """Build the backbone called ``name`` in eval mode, with its pretrained weights by default."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(packaged_weights).eval()


def _load_builtin() -> None:
    # Imported lazily so that the module defining a backbone can import this one.
    from trainer.backbones import efficientnet_lite  # noqa: F401
