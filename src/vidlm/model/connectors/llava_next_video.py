"""LLaVA-NeXT-Video's video connector: pool each frame's vision features, then project.

Each frame's ``(h, w)`` map of vision features is pooled with kernel and stride
``pool_stride`` (``pool_mode`` ``"average"`` or ``"max"``, or a learned strided
``"conv"``), giving ``floor(h / s) x floor(w / s)`` tokens (24x24 -> 12x12), and the
pooled tokens go through the ``mlp2x_gelu`` projector. No token is added:

    L = T * floor(h / s) * floor(w / s)

This is ``LlavaNextVideoForConditionalGeneration``'s ``vision_resampler`` followed by its
``multi_modal_projector`` on ``pixel_values_videos`` (config ``spatial_pool_mode`` /
``spatial_pool_stride``). A CLS token, when present, is dropped before pooling.
``pool_after_projection=True`` pools the projected tokens instead (training-free
variants; not with ``"conv"``, whose weights act on vision features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidlm.errors import ConfigError
from vidlm.model.connectors.base import (
    Grid,
    PathwayPlan,
    TokenPlan,
    check_choice,
    check_inputs,
    check_positive,
    register_connector,
    split_features,
)
from vidlm.model.connectors.projected import PooledConnector, PooledConnectorConfig

POOL_MODES = ("average", "max", "conv")


@dataclass
class NextVideoConfig(PooledConnectorConfig):
    """``pool_mode``: ``"average"``, ``"max"`` or ``"conv"``; ``pool_stride``: kernel = stride."""

    name: str = "llava_next_video"
    pool_mode: str = "average"
    pool_stride: int = 2
    pool_after_projection: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("llava_next_video", "pool_mode", self.pool_mode, POOL_MODES)
        check_positive("llava_next_video", pool_stride=self.pool_stride)
        if self.pool_mode == "conv" and self.pool_after_projection:
            raise ConfigError("llava_next_video: pool_mode 'conv' pools vision features; "
                              "it cannot be combined with pool_after_projection=True")

    def pooled_grid(self, grid: Grid) -> Grid:
        s = self.pool_stride
        pooled = (grid[0] // s, grid[1] // s)
        if min(pooled) < 1:
            raise ConfigError(f"llava_next_video: pool_stride {s} leaves no tokens on a "
                              f"{grid[0]}x{grid[1]} grid")
        return pooled

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        check_inputs(num_frames, grid)
        ph, pw = self.pooled_grid(grid)
        return TokenPlan((PathwayPlan("frames", tuple(range(num_frames)), num_frames, ph * pw),))


@register_connector("llava_next_video")
class NextVideoConnector(PooledConnector):
    """``(B, T, N, D)`` -> ``(B, T * floor(h/s) * floor(w/s), D_lm)``."""

    config_class = NextVideoConfig
    config: NextVideoConfig

    def __init__(self, config: NextVideoConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__(config, vision_dim=vision_dim, lm_dim=lm_dim)
        if config.pool_mode == "conv":
            s = config.pool_stride
            self.pool = nn.Conv2d(vision_dim, vision_dim, kernel_size=s, stride=s)

    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        patches, _ = split_features(features, grid)  # (B, T, h, w, D), CLS dropped
        if self.config.pool_after_projection:
            patches = self.projector.project(patches)  # (B, T, h, w, D_lm)
        b, t, h, w, c = patches.shape
        maps = patches.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (B*T, C, h, w)
        pooled = self._pool(maps)  # (B*T, C, h // s, w // s)
        tokens = pooled.flatten(2).transpose(1, 2).reshape(b, -1, c)  # (B, T*h'*w', C)
        if not self.config.pool_after_projection:
            tokens = self.projector.project(tokens)
        return tokens

    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        s = self.config.pool_stride
        if self.config.pool_mode == "average":
            return F.avg_pool2d(maps, kernel_size=s, stride=s)
        if self.config.pool_mode == "max":
            return F.max_pool2d(maps, kernel_size=s, stride=s)
        return self.pool(maps)
