"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio * lr``."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_steps_for(total_steps: int, *, warmup_steps: int, warmup_ratio: float) -> int:
    """``warmup_steps`` when positive, else ``ceil(warmup_ratio * total_steps)``."""
    if warmup_steps > 0:
        return min(warmup_steps, total_steps)
    return min(total_steps, math.ceil(max(0.0, warmup_ratio) * total_steps))


def cosine_factor(step: int, *, total_steps: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr before optimizer step ``step`` (0-based).

    Warmup rises linearly from ``1/(warmup+1)`` to 1 over ``warmup`` steps, so the first
    step never has lr 0; then a half cosine falls from 1 to ``min_ratio`` at ``total_steps``.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_with_warmup(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup: int,
                       min_ratio: float = 0.0) -> LambdaLR:
    """A ``LambdaLR`` applying :func:`cosine_factor` to every param group."""
    return LambdaLR(optimizer, lambda s: cosine_factor(s, total_steps=total_steps, warmup=warmup,
                                                       min_ratio=min_ratio))
