"""LLaVA-OneVision's video connector: project, bilinear-pool each frame, end with a newline token.

For a video of ``T`` frames on an ``(h, w)`` patch grid (LLaVA-OneVision: SigLIP at
384 px, 27x27), every patch token goes through the ``mlp2x_gelu`` projector, each
frame's projected map is resized by bilinear interpolation to
``(ceil(h / pool_factor), ceil(w / pool_factor))`` (27x27 -> 14x14), the frames are
concatenated in order, and one learned ``newline`` embedding (the checkpoint's
``image_newline``) follows the whole video:

    L = T * ceil(h / f) * ceil(w / f) + (1 if newline else 0)

This is what ``LlavaOnevisionForConditionalGeneration`` does with ``pixel_values_videos``.
A CLS token, when present, is dropped before pooling. ``pool_after_projection=False``
interpolates the vision features and projects afterwards (not what the checkpoint does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidlm.model.connectors.base import (
    Grid,
    PathwayPlan,
    TokenPlan,
    check_inputs,
    check_positive,
    register_connector,
    split_features,
)
from vidlm.model.connectors.projected import PooledConnector, PooledConnectorConfig


@dataclass
class OneVisionConfig(PooledConnectorConfig):
    """``pool_factor``: the grid shrinks to ``ceil(h / f) x ceil(w / f)`` (bilinear).
    ``newline``: one learned token after each video."""

    name: str = "onevision"
    pool_factor: int = 2
    newline: bool = True
    pool_after_projection: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("onevision", pool_factor=self.pool_factor)

    def pooled_grid(self, grid: Grid) -> Grid:
        f = self.pool_factor
        return (math.ceil(grid[0] / f), math.ceil(grid[1] / f))

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        check_inputs(num_frames, grid)
        ph, pw = self.pooled_grid(grid)
        frames = PathwayPlan("frames", tuple(range(num_frames)), num_frames, ph * pw)
        return TokenPlan((frames,), extra_tokens=int(self.newline))


@register_connector("onevision")
class OneVisionConnector(PooledConnector):
    """``(B, T, N, D)`` -> ``(B, T * ceil(h/f) * ceil(w/f) + newline, D_lm)``."""

    config_class = OneVisionConfig
    config: OneVisionConfig

    def __init__(self, config: OneVisionConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__(config, vision_dim=vision_dim, lm_dim=lm_dim)
        if config.newline:
            self.newline = nn.Parameter(torch.randn(lm_dim) * lm_dim**-0.5)

    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        patches, _ = split_features(features, grid)  # (B, T, h, w, D), CLS dropped
        if self.config.pool_after_projection:
            patches = self.projector.project(patches)  # (B, T, h, w, D_lm)
        b, t, h, w, c = patches.shape
        maps = patches.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (B*T, C, h, w)
        pooled = F.interpolate(maps, size=self.config.pooled_grid((h, w)), mode="bilinear",
                               align_corners=False)  # (B*T, C, h', w')
        tokens = pooled.permute(0, 2, 3, 1).reshape(b, -1, c)  # (B, T*h'*w', C), row-major
        if not self.config.pool_after_projection:
            tokens = self.projector.project(tokens)
        if self.config.newline:
            newline = self.newline.to(tokens.dtype).expand(b, 1, -1)  # (B, 1, D_lm)
            tokens = torch.cat([tokens, newline], dim=1)
        return tokens
