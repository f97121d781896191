"""Full mode: fine-tune the backbone with the hash head on labelled photos, stopping on held-out pairs.

Why this recipe (measurements in docs/TRAINING.md, "Full mode"):

- Frozen features cap what labels can teach (DESIGN.md: a head on frozen Lite0 features barely
  beats cosine ranking), so the backbone must adapt; on two CPU cores that is affordable only
  at 112 px (a quarter of the work of 224; the network is fully convolutional, so the same
  weights serve) and for a few epochs.
- Every method's hash loss is joined by a classifier on the feature over the groups formed
  from the pairs (DLBHC's signal, applied to the representation): it is what moves the
  backbone quickly, where a pairwise loss alone under-fits in the same time.
- Only the last blocks are fine-tuned (``tuned_blocks``). The frozen trunk's output is computed
  once per photo (and once more for its mirror image, the augmentation), so an epoch costs the
  small tail alone, a fraction of what the whole network costs (docs/TRAINING.md, "Full mode").
- BatchNorm statistics of a pretrained backbone stay frozen: batches of 32 from a few groups
  would pull the ImageNet statistics toward one photo collection and make the codes of
  everything else drift. A backbone trained from scratch (``pretrained = False``, NIN-latent)
  has no statistics to keep, so its BatchNorm layers learn them; it is tuned whole
  (``tuned_blocks`` >= its blocks, the trunk then being the normalised input) and wants a
  ten times larger learning rate, which ``lr=None`` picks (SCRATCH_LR, measured by
  tests/bench/bench_nin_fashion.py).
- The network is scored after every epoch as it would be deployed (features and head; the
  caller searches with them: trainer.library_train); the best epoch is kept and training
  stops when it has not improved for ``patience`` epochs, when the epochs run out, or when
  the time budget is spent.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import EnvironmentProblem
from trainer.backbones import get_backbone
from trainer.fit import HeadConfig, balanced_batches, initial_head, over_budget, take_step
from trainer.methods import make_objective, method
from trainer.model import HashingNet

log = logging.getLogger(__name__)
PRETRAINED_LR = 3e-4  # measured on the person's case (docs/TRAINING.md)
SCRATCH_LR = 3e-3     # NIN-latent from scratch (tests/bench/bench_nin_fashion.py)
PRETRAINED_HEAD_LR_SCALE = 30.0  # the head and classifier learn this much faster than the backbone
SCRATCH_HEAD_LR_SCALE = 10.0     # NIN-latent: docs/TRAINING.md, "NIN-latent"
Progress = Callable[[dict], None]


@dataclass
class FullConfig:
    """Settings of a full fine-tune; defaults from the person's-case benchmark (docs/TRAINING.md)."""

    method: str = "dpsh"
    bits: int = 64
    backbone: str = "efficientnet-lite0"
    input_size: int = 112
    tuned_blocks: int = 8          # last backbone blocks trained (Lite0 has 16); the rest stay frozen
    batch_size: int = 64
    epochs: int = 15               # at most; early stopping usually ends sooner
    patience: int = 4              # epochs without a better held-out score before stopping
    lr: float | None = None        # backbone (AdamW); None: 3e-4 pretrained, 3e-3 from scratch; the head learns faster
    head_lr_scale: float | None = None  # None: 30 pretrained, 10 from scratch (both measured; TRAINING.md)
    weight_decay: float = 1e-4
    classifier_weight: float = 1.0  # the group classifier on the feature (0: the method's loss alone)
    freeze_batchnorm: bool = True
    warmup_epochs: int | None = None  # classifier-only epochs first; None: 1 from scratch (not DLBHC), else 0  # pretrained backbones only; one trained from scratch learns its statistics
    budget: float | None = None    # seconds of training; the best epoch so far is kept
    seed: int = 0
    device: str = "auto"
    threads: int | None = None     # torch CPU threads (None: all cores)
    loss_options: dict = field(default_factory=dict)


def choose_device(requested: str = "auto") -> torch.device:
    """CUDA when asked for or when "auto" finds a usable GPU, else the CPU (with the reason logged)."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device is auto, cpu or cuda, not {requested!r}")
    if requested == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise EnvironmentProblem("training on the GPU was asked for, but PyTorch sees no CUDA device")
    if available:
        log.info("training on %s", torch.cuda.get_device_name(0))
        return torch.device("cuda")
    log.info("training on the CPU (PyTorch sees no CUDA device)")
    return torch.device("cpu")


class _Trainable(nn.Module):
    """The deployable HashingNet seen from its frozen trunk's output, plus the group classifier."""

    def __init__(self, net: HashingNet, split: int, groups: int, objective_params: list[nn.Parameter],
                 mask: torch.Tensor | None):
        super().__init__()
        self.net = net
        self.split = split
        self.classifier = nn.Linear(net.feature_dim, groups)
        self.extra = nn.ParameterList(objective_params)
        self.register_buffer("mask", mask if mask is not None else torch.ones(1), persistent=False)
        self.masked = mask is not None

    def forward(self, trunk_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.net.backbone.tail(trunk_output, self.split)
        feature = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        weight = self.net.head_weight * self.mask if self.masked else self.net.head_weight
        return feature @ weight + self.net.head_bias, feature


def _freeze_batchnorm(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def backbone_fingerprint(net: HashingNet) -> str:
    """16 hex digits naming the backbone's weights at its input size: its stored features' key."""
    digest = hashlib.sha256(f"{net.backbone.name}@{net.input_size}".encode())
    for name, tensor in net.backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def _trunk_outputs(net: HashingNet, pixels: torch.Tensor, split: int, device: torch.device,
                   batch: int = 64) -> torch.Tensor:
    """The frozen trunk's output for uint8 NHWC pixels, computed once (kept on ``device``)."""
    net.eval()
    out = [net.backbone.trunk(net.normalise(pixels[i:i + batch].to(device)), split)
           for i in range(0, len(pixels), batch)]
    return torch.cat(out)


@torch.no_grad()
def _outputs(model: _Trainable, trunk: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    logits, feats = [], []
    for i in range(0, len(trunk), batch):
        lo, fe = model(trunk[i:i + batch])
        logits.append(lo.cpu().numpy())
        feats.append(fe.cpu().numpy())
    return np.concatenate(logits), np.concatenate(feats)


def warmup_epochs(config: FullConfig, pretrained: bool) -> int:
    """Classifier-only epochs before the method's loss: as set, else one for a backbone trained
    from scratch (the classifier gives a random network its first structure) unless the
    method says otherwise (trainer.methods: DLBHC), none for a pretrained one."""
    if config.warmup_epochs is not None:
        return config.warmup_epochs
    return 1 if not pretrained and method(config.method).warm_up_from_scratch else 0


def _cache_trunk(net: HashingNet, pixels: np.ndarray, config: FullConfig, device: torch.device
                 ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Freeze the trunk and compute its output once per photo and once for its mirror image:
    (split, trunk outputs, mirrored trunk outputs). An epoch then costs the tuned tail alone."""
    split = max(0, net.backbone.num_blocks - config.tuned_blocks)
    for p in net.backbone.trunk_parameters(split):
        p.requires_grad_(False)
    source = torch.from_numpy(np.ascontiguousarray(pixels))
    trunk = _trunk_outputs(net, source, split, device)
    trunk_mirrored = _trunk_outputs(net, source.flip(2), split, device)  # NHWC: axis 2 is x
    return split, trunk, trunk_mirrored


def _seat_head(net: HashingNet, features: np.ndarray, head_config: HeadConfig) -> torch.Tensor | None:
    """Start the head from ITQ on ``features`` (trainer.fit.initial_head); NINH's mask, if any."""
    weight, bias, mask = initial_head(features, head_config)
    with torch.no_grad():
        net.head_weight.copy_(weight)
        net.head_bias.copy_(bias)
    return mask


def _optimizer(model: _Trainable, config: FullConfig, groups: np.ndarray):
    """AdamW with the backbone's tail at the base rate and the head, classifier and loss
    parameters faster, cosine-decayed over the epochs: (optimizer, schedule, total steps)."""
    pretrained = model.net.backbone.pretrained
    tuned = [p for p in model.net.backbone.parameters() if p.requires_grad]
    others = [p for n, p in model.named_parameters() if not n.startswith("net.backbone.")]
    lr = config.lr if config.lr is not None else PRETRAINED_LR if pretrained else SCRATCH_LR
    head_scale = (config.head_lr_scale if config.head_lr_scale is not None
                  else PRETRAINED_HEAD_LR_SCALE if pretrained else SCRATCH_HEAD_LR_SCALE)
    optimizer = torch.optim.AdamW([{"params": tuned, "lr": lr},
                                   {"params": others, "lr": lr * head_scale}],
                                  weight_decay=config.weight_decay)
    batches_per_epoch = len(balanced_batches(groups, config.batch_size, np.random.default_rng(0)))
    total_steps = max(1, batches_per_epoch * config.epochs)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    return optimizer, schedule, total_steps


class _Best:
    """The best epoch so far by held-out score (its weights copied), and the epochs since it."""

    def __init__(self, net: HashingNet, score: float, details: dict | None):
        self.net = net
        self.score, self.details, self.epoch = score, details, 0
        self.state = copy.deepcopy(net.state_dict())
        self.stale = 0

    def offer(self, epoch: int, score: float, details: dict | None, *, judged: bool) -> None:
        """An epoch's score: kept when better (always without a judge; a NaN best loses to any)."""
        if not judged or not (score <= self.score):
            self.score, self.state, self.epoch, self.stale = score, copy.deepcopy(self.net.state_dict()), epoch, 0
            self.details = details
        else:
            self.stale += 1


def _train_epoch(model: _Trainable, objective, optimizer, schedule, config: FullConfig, groups: np.ndarray,
                 y_device: torch.Tensor, trunk: torch.Tensor, trunk_mirrored: torch.Tensor,
                 rng: np.random.Generator, device: torch.device, *, warming: bool, started: float
                 ) -> tuple[float, int]:
    """One pass over balanced batches (each photo or its mirror image): (mean loss, steps taken).
    Ends early when the time budget is spent."""
    model.train()
    if config.freeze_batchnorm and model.net.backbone.pretrained:
        _freeze_batchnorm(model)
    total, count, steps = 0.0, 0, 0
    for batch in balanced_batches(groups, config.batch_size, rng):
        index = torch.from_numpy(batch).to(device)
        mirrored = torch.from_numpy(rng.random(len(batch)) < 0.5).to(device).view(-1, 1, 1, 1)
        x = torch.where(mirrored, trunk_mirrored[index], trunk[index])
        y = y_device[index]
        u, feature = model(x)
        if warming:  # the classifier alone gives a random network its first structure
            loss = F.cross_entropy(model.classifier(feature), y)
        else:
            loss = objective(u, y, model.net.head_weight)
            if config.classifier_weight:
                loss = loss + config.classifier_weight * F.cross_entropy(model.classifier(feature), y)
        total += take_step(loss, optimizer, schedule) * len(batch)
        steps += 1
        count += len(batch)
        if over_budget(config.budget, started):
            break
    return total / max(count, 1), steps


def fit_full(pixels: np.ndarray, groups: np.ndarray, config: FullConfig,
             score: Callable[[np.ndarray, np.ndarray, np.ndarray], float | tuple[float, dict]] | None = None,
             progress: Progress | None = None) -> tuple[HashingNet, dict]:
    """Fine-tune on ``pixels`` uint8 [N, S, S, 3] (S = input_size, as deployed) with group ids.

    ``score(features, weight, bias)`` rates the network as deployed after an epoch: the unit
    features [N, D] of all N photos and the head (code logits = features @ weight + bias). It
    returns a figure, or (figure, details); the best epoch by the figure is returned (the last
    one when there is no score), its details in info["best_details"]. Returns (net on the CPU
    in eval mode, info).
    """
    if not method(config.method).learned:
        raise ValueError(f"{config.method} is a classical head without training; use head mode")
    if pixels.shape[1:] != (config.input_size, config.input_size, 3):
        raise ValueError(f"pixels must be [N, {config.input_size}, {config.input_size}, 3], not {pixels.shape}")
    started = time.monotonic()
    emit = progress or (lambda event: None)
    device = choose_device(config.device)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    try:
        net = HashingNet(get_backbone(config.backbone, packaged_weights=True, input_size=config.input_size),
                         config.bits).to(device)
        split, trunk, trunk_mirrored = _cache_trunk(net, pixels, config, device)
        y_all = torch.as_tensor(groups, dtype=torch.long)
        groups_count = int(y_all.max()) + 1
        head_config = HeadConfig(method=config.method, bits=config.bits, seed=config.seed)
        mask = _seat_head(net, _outputs(_Trainable(net, split, groups_count, [], None).to(device), trunk)[1],
                          head_config)
        objective = make_objective(config.method, config.bits, y_all, seed=config.seed,
                                   options=config.loss_options)
        model = _Trainable(net, split, groups_count, objective.extra, mask).to(device)
        optimizer, schedule, total_steps = _optimizer(model, config, groups)

        def rate() -> tuple[float, dict | None]:
            if score is None:
                return float("nan"), None
            features = _outputs(model, trunk)[1]
            head = model.net.head_weight * model.mask if model.masked else model.net.head_weight
            result = score(features, head.detach().cpu().numpy(), model.net.head_bias.detach().cpu().numpy())
            return result if isinstance(result, tuple) else (float(result), None)

        best = _Best(net, *rate())
        emit({"event": "epoch", "epoch": 0, "step": 0, "steps": total_steps, "loss": None,
              "held_out_accuracy": best.score, "elapsed": time.monotonic() - started})
        step, epoch, last_loss, stopped = 0, 0, None, "epochs"
        y_device = y_all.to(device)
        warmup = warmup_epochs(config, net.backbone.pretrained)
        for epoch in range(1, config.epochs + 1):
            last_loss, steps = _train_epoch(model, objective, optimizer, schedule, config, groups, y_device, trunk,
                                            trunk_mirrored, rng, device, warming=epoch <= warmup, started=started)
            step += steps
            if epoch == warmup:  # seat the head (ITQ) on the features the warm-up gave structure to
                _seat_head(net, _outputs(model, trunk)[1], head_config)
            if mask is not None:  # bake NINH's mask in, so the deployed head is what was trained
                with torch.no_grad():
                    net.head_weight.mul_(mask.to(device))
            current, details = rate()
            best.offer(epoch, current, details, judged=score is not None)
            emit({"event": "epoch", "epoch": epoch, "step": step, "steps": total_steps, "loss": last_loss,
                  "held_out_accuracy": current, "best_epoch": best.epoch,
                  "elapsed": time.monotonic() - started})
            if over_budget(config.budget, started):
                stopped = "budget"
                break
            if score is not None and best.stale >= config.patience:
                stopped = "early stop"
                break
        net.load_state_dict(best.state)
        net = net.to("cpu").eval()
        for p in net.parameters():
            p.requires_grad_(True)
        return net, {"seconds": time.monotonic() - started, "epochs": epoch, "best_epoch": best.epoch,
                     "steps": step, "loss": last_loss, "held_out_accuracy": best.score,
                     "best_details": best.details, "stopped": stopped,
                     "device": device.type, "tuned_blocks": net.backbone.num_blocks - split}
    finally:
        torch.set_num_threads(threads)
