"""Fit a hash head on frozen features ("head" mode): seconds, no image decoding.

The head is linear on the L2-normalised feature (the model file contract), so whatever the
method, the result is a (W [D, K], b [K]) pair the engine can write into a model version.
Classical methods are fitted in closed form (engine.hashing); learned ones by Adam on
balanced batches of the training groups.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.hashing import ITQ, make_head
from trainer.methods import make_objective, method

Progress = Callable[[dict], None]
DEFAULT_SCHEDULE = (1500, 5e-2)  # (steps, Adam learning rate): docs/TRAINING.md
SCORE_CHECKS = 30  # held-out checks along a head fit (each costs one pass over the labelled photos)


@dataclass
class HeadConfig:
    """Settings of a head fit; the defaults come from the Fashion-MNIST benchmark (docs/TRAINING.md)."""

    method: str = "dpsh"
    bits: int = 64
    steps: int | None = None      # optimizer updates; None: the method's (small label sets need many passes)
    batch_size: int = 256
    lr: float | None = None       # Adam, cosine-decayed to zero over the steps; None: the method's
    weight_decay: float = 1e-5
    budget: float | None = None   # seconds; stop early when spent
    seed: int = 0
    loss_options: dict = field(default_factory=dict)  # keyword arguments of the method's loss

    def schedule(self) -> tuple[int, float]:
        """(steps, learning rate): as set, else the method's (trainer.methods.REGISTRY), else the default."""
        steps, lr = method(self.method).schedule or DEFAULT_SCHEDULE
        return (steps if self.steps is None else self.steps, lr if self.lr is None else self.lr)


def take_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule) -> float:
    """One optimizer update on ``loss`` (gradients cleared first, the schedule advanced after);
    the loss's value. Head and full mode both train through this."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return float(loss.detach())


def over_budget(budget: float | None, started: float) -> bool:
    """Whether a time budget (seconds since ``started``; None: none) is spent."""
    return budget is not None and time.monotonic() - started > budget


def balanced_batches(y: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches that each hold several members of a few groups, so every batch
    has similar pairs to learn from (a uniform sample of many groups has almost none)."""
    order = rng.permutation(len(y))
    per_group = 8
    by_group: dict[int, list[int]] = {}
    for i in order:
        by_group.setdefault(int(y[i]), []).append(int(i))
    chunks = [members[k:k + per_group] for members in by_group.values() for k in range(0, len(members), per_group)]
    rng.shuffle(chunks)
    batches, current = [], []
    for chunk in chunks:
        current.extend(chunk)
        if len(current) >= batch_size:
            batches.append(np.array(current[:batch_size]))
            current = current[batch_size:]
    if len(current) > 1:
        batches.append(np.array(current))
    return batches


def fit_head(features: np.ndarray, groups: np.ndarray | None, config: HeadConfig,
             progress: Progress | None = None, init: tuple[np.ndarray, np.ndarray] | None = None,
             score: Callable[[np.ndarray, np.ndarray], float] | None = None
             ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train a linear head; returns (W, b, info) with info = {"seconds", "steps", "loss", ...}.

    ``features`` [N, D] (unit rows), ``groups`` [N] int group ids (None only for unsupervised
    methods). ``init`` starts from an existing head (same K); else from ITQ on the features,
    which is already a good code, so learning only has to move it toward the labels.
    ``score(W, b)`` rates a head on held-out pairs: it is checked SCORE_CHECKS times along the
    way (and at the start) and the best head is returned, so a small label set that the
    head would over-fit leaves the starting head as it was rather than making it worse.
    """
    started = time.monotonic()
    x = np.asarray(features, dtype=np.float32)
    spec = method(config.method)
    if not spec.learned:
        head = make_head(config.method, config.bits, seed=config.seed).fit(x)
        linear = head.linear()
        if linear is None:
            raise ValueError(f"{config.method} is not a linear head; it can be evaluated, not deployed")
        return linear[0], linear[1], {"seconds": time.monotonic() - started, "steps": 0, "loss": None}
    if groups is None and spec.uses_labels:
        raise ValueError(f"{config.method} learns from labels; none were given")
    threads = torch.get_num_threads()
    # One thread: these matrices are small (no speed lost), and results repeat bit for bit.
    torch.set_num_threads(1)
    try:
        return _fit_learned(x, groups, config, progress, init, started, score)
    finally:
        torch.set_num_threads(threads)


def initial_head(x: np.ndarray, config: HeadConfig, init: tuple[np.ndarray, np.ndarray] | None = None,
                 *, learned_features: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Starting (W, b, mask) for a learned head on unit features ``x``.

    ``mask`` is NINH's divide-and-encode pattern (bit k sees only the k-th slice of the
    feature) when the features are being learned with the head (full mode), else None. On
    frozen features (``learned_features=False``, head mode) the layer that NINH puts before
    divide-and-encode is missing, and slicing raw features cripples it (below ITQ on
    Fashion-MNIST: docs/BENCHMARKS.md, head mode); a learned linear layer followed by
    divide-and-encode is again one linear map, so head mode learns that map whole, with
    NINH's triplet loss. Without ``init`` the head starts from ITQ on the features, already a
    good code, so learning only has to move it toward the labels.
    """
    torch.manual_seed(config.seed)
    mask = None
    if config.method == "ninh" and learned_features:
        mask = torch.zeros(x.shape[1], config.bits)
        for k, part in enumerate(np.array_split(np.arange(x.shape[1]), config.bits)):
            mask[part, k] = 1.0
        init = None
    elif init is None:
        init = ITQ(config.bits, seed=config.seed).fit(x).linear() if len(x) >= 2 * config.bits else None
    dim = x.shape[1]
    if init is not None:
        weight = torch.tensor(init[0], dtype=torch.float32)
        bias = torch.tensor(init[1], dtype=torch.float32)
        # ITQ's logits are small (unit features); scale so tanh-relaxed losses start unsaturated but not flat.
        scale = 1.0 / max(float(torch.from_numpy(x[:1024]).matmul(weight).add(bias).std()), 1e-6)
        weight, bias = weight * scale, bias * scale
    else:
        weight = torch.randn(dim, config.bits) / math.sqrt(dim)
        bias = torch.zeros(config.bits)
    return weight, bias, mask


def _fit_learned(x, groups, config: HeadConfig, progress, init, started: float, score=None):
    rng = np.random.default_rng(config.seed)
    batch_size = min(config.batch_size, method(config.method).batch_cap or config.batch_size)
    weight, bias, mask = initial_head(x, config, init, learned_features=False)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    y_all = torch.as_tensor(groups if groups is not None else np.zeros(len(x), np.int64), dtype=torch.long)
    objective = make_objective(config.method, config.bits, y_all, seed=config.seed, options=config.loss_options)
    steps, lr = config.schedule()
    optimizer = torch.optim.Adam([weight, bias, *objective.extra], lr=lr, weight_decay=config.weight_decay)
    xt = torch.from_numpy(x)
    labels = y_all.numpy()
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def current() -> tuple[np.ndarray, np.ndarray]:
        w = (weight if mask is None else weight * mask).detach().numpy().astype(np.float32)
        return w, bias.detach().numpy().astype(np.float32)

    check_every = max(1, steps // SCORE_CHECKS)
    best = (score(*current()), 0, current()) if score else None
    if best is not None and math.isnan(best[0]):
        best = None  # nothing held out to judge by (too few pairs): train to the end
    last, step, epoch = None, 0, 0
    while step < steps:
        epoch += 1
        total, count = 0.0, 0
        for batch in balanced_batches(labels, batch_size, rng):
            index = torch.from_numpy(batch)
            u = xt[index] @ (weight if mask is None else weight * mask) + bias
            loss = objective(u, y_all[index], weight)
            step += 1
            total += take_step(loss, optimizer, schedule) * len(batch)
            count += len(batch)
            if best is not None and (step % check_every == 0 or step >= steps):
                value = score(*current())
                if value > best[0]:  # strictly better: ties keep the earlier, less moved head
                    best = (value, step, current())
            if step >= steps:
                break
        last = total / max(count, 1)
        if progress:
            progress({"event": "epoch", "epoch": epoch, "step": step, "steps": steps, "loss": last,
                      "elapsed": time.monotonic() - started})
        if over_budget(config.budget, started):
            break
    info = {"seconds": time.monotonic() - started, "steps": step, "loss": last}
    if best is None:
        w, b = current()
        return w, b, info
    (w, b), info["best_step"], info["held_out_accuracy"] = best[2], best[1], best[0]
    return w, b, info
