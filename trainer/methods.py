"""The method registry: one record per hashing method (its loss, options, schedule, batch and warm-up rules).

trainer.catalog lists the same names without importing torch, for the CLI parser and the
retrain dialog; a test checks the two agree. Why each setting is what it is: docs/TRAINING.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from trainer import losses

LossFactory = Callable[[int, torch.Tensor, int, dict], nn.Module]  # (bits, group ids, seed, options)


@dataclass(frozen=True)
class Method:
    """What training needs to know about one method."""

    name: str
    loss_class: type[nn.Module] | None = None  # None: a classical head, fitted in closed form
    make_loss: LossFactory | None = None       # None: loss_class(**options)
    options: dict = field(default_factory=dict)  # over the loss's own defaults (docs/TRAINING.md)
    schedule: tuple[int, float] | None = None  # head mode (steps, Adam lr); None: trainer.fit.DEFAULT_SCHEDULE
    batch_cap: int | None = None               # head mode: triplet and ranking losses build [B, B, B] tensors
    uses_labels: bool = True                   # DH is unsupervised: its loss sees the head, not the groups
    warm_up_from_scratch: bool = True          # full mode, a backbone from scratch: a classifier-only epoch first

    @property
    def learned(self) -> bool:
        return self.loss_class is not None

    def loss(self, bits: int, y_all: torch.Tensor, seed: int, options: dict) -> nn.Module:
        kwargs = {**self.options, **options}
        if self.make_loss is not None:
            return self.make_loss(bits, y_all, seed, kwargs)
        return self.loss_class(**kwargs)


def _dlbhc(bits: int, y_all: torch.Tensor, seed: int, kwargs: dict) -> nn.Module:
    return losses.DLBHCLoss(bits, int(y_all.max()) + 1, **kwargs)


def _ninh(bits: int, y_all: torch.Tensor, seed: int, kwargs: dict) -> nn.Module:
    return losses.NINHTripletLoss(seed=seed, **kwargs)


def _cnnh(bits: int, y_all: torch.Tensor, seed: int, kwargs: dict) -> nn.Module:
    # Stage 1 factors the similarity of the groups, not of every image: members of a group
    # share one target row, so the G x G problem has the same optimum and takes seconds
    # where the N x N one (O(N) per entry) would take hours. Group ids index the targets.
    groups = torch.arange(int(y_all.max()) + 1)
    targets = losses.factorize_similarity(losses.similarity_from_labels(groups), bits, seed=seed, **kwargs)
    return losses.CNNHLoss(targets)


# In catalog order: learned methods first, then the classical heads.
REGISTRY: dict[str, Method] = {m.name: m for m in (
    # DPSH, the default for a person's pairs. Its pair term is averaged over pairs but its
    # quantization term summed over the bits, so the paper's eta over-weights it; its own
    # longer, faster schedule helped it alone (docs/TRAINING.md, "Head mode").
    Method("dpsh", losses.DPSHLoss, options={"eta": 0.01}, schedule=(3000, 0.2)),
    # DLBHC's own loss is a classifier: a warm-up epoch only takes an epoch from it.
    Method("dlbhc", losses.DLBHCLoss, make_loss=_dlbhc, warm_up_from_scratch=False),
    Method("ninh", losses.NINHTripletLoss, make_loss=_ninh, batch_cap=96),
    Method("drsch", losses.DRSCHLoss, batch_cap=96),
    Method("dsrh", losses.DSRHLoss, batch_cap=48),
    # No independence term for DH and SDH: on unit-norm features, orthonormal projections
    # make every logit tiny, the bias wins and the codes collapse (docs/TRAINING.md).
    Method("dh", losses.DHLoss, options={"lambda2": 0.0}, uses_labels=False),
    Method("sdh", losses.SDHLoss, options={"lambda2": 0.0}),
    Method("cnnh", losses.CNNHLoss, make_loss=_cnnh),
    Method("exponentiated", losses.ExponentiatedHashingLoss),
    Method("lsh"),
    Method("pcah"),
    Method("itq"),
    Method("sh"),
)}
LEARNED = tuple(name for name, m in REGISTRY.items() if m.learned)
CLASSICAL = tuple(name for name, m in REGISTRY.items() if not m.learned)
METHODS = LEARNED + CLASSICAL


def method(name: str) -> Method:
    """The registry's record of ``name``; ValueError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


@dataclass
class Objective:
    """A method's loss bound to what it needs; ``extra`` holds its own trainable parameters."""

    method: str
    loss: nn.Module
    extra: list[nn.Parameter]
    uses_labels: bool = True

    def __call__(self, u: torch.Tensor, y: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
        if not self.uses_labels:  # DH: the labels are not used, the head's weights are
            return self.loss(u, [head_weight])
        # CNNH regresses onto its group's stage-1 code: the group id is the target row.
        return self.loss(u, y)


def make_objective(name: str, bits: int, y_all: torch.Tensor, *, seed: int = 0,
                   options: dict | None = None) -> Objective:
    """The objective for method ``name`` over a training set whose group labels are ``y_all``.

    ``options`` are keyword arguments of the method's loss, over the registry's options.
    """
    spec = method(name)
    if not spec.learned:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(LEARNED)}")
    loss = spec.loss(bits, y_all, seed, options or {})
    return Objective(name, loss, [p for p in loss.parameters() if p.requires_grad], spec.uses_labels)
