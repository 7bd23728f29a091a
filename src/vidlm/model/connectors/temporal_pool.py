"""Video-LLaVA-style temporal pooling: average frames over windows of time, then the MLP.

Frames are grouped into consecutive windows of ``window`` frames (the last window
holds the remainder when ``T`` is not a multiple) and each window's features are
averaged token by token, so ``L = ceil(T / window) * N``. No spatial pooling
happens, so a CLS token, when present, is averaged and kept like any other token.
With ``pool_after_projection`` the tokens are projected first and the projected
tokens averaged (training-free on an image model's projector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vidlm.model.connectors.base import (
    Grid,
    PathwayPlan,
    TokenPlan,
    check_inputs,
    check_positive,
    infer_grid,
    register_connector,
)
from vidlm.model.connectors.projected import PooledConnector, PooledConnectorConfig


@dataclass
class TemporalPoolConfig(PooledConnectorConfig):
    """``window``: frames averaged into one group of tokens."""

    name: str = "temporal_pool"
    window: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("temporal_pool", window=self.window)

    def windows(self, num_frames: int) -> list[tuple[int, ...]]:
        """Frame positions of each window, in order."""
        return [tuple(range(s, min(s + self.window, num_frames)))
                for s in range(0, num_frames, self.window)]

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        check_inputs(num_frames, grid)
        per_window = grid[0] * grid[1] + int(has_cls)
        units = math.ceil(num_frames / self.window)
        return TokenPlan((PathwayPlan("windows", tuple(range(num_frames)), units, per_window),))


@register_connector("temporal_pool")
class TemporalPoolConnector(PooledConnector):
    """``(B, T, N, D)`` -> ``(B, ceil(T/window) * N, D_lm)``."""

    config_class = TemporalPoolConfig
    config: TemporalPoolConfig

    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        if features.dim() != 4:
            raise ValueError(f"connector input must be (B, T, N, D), got {tuple(features.shape)}")
        infer_grid(features.shape[2], grid)  # validates N (grid or a square grid, CLS optional)
        x = self.projector.project(features) if self.config.pool_after_projection else features
        # (B, T, N, C) -> (B, W, N, C): mean over each window of frames
        pooled = torch.stack([chunk.mean(dim=1) for chunk in x.split(self.config.window, dim=1)],
                             dim=1)
        if not self.config.pool_after_projection:
            pooled = self.projector.project(pooled)
        b, w, n, c = pooled.shape
        return pooled.reshape(b, w * n, c)
