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

Images can also take the checkpoint's own "anyres" path (tiles at a higher resolution,
see :mod:`vidlm.model.connectors.onevision_anyres`): :meth:`OneVisionConnector.image_tokens`
with ``image_grid_pinpoints`` set. Through :meth:`forward` an image is a one-frame video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidlm.errors import ConfigError
from vidlm.model.connectors import onevision_anyres as anyres
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
    ``newline``: one learned token after each video (and after each row of an anyres image).
    ``image_grid_pinpoints``: the ``(h, w)`` resolutions anyres images are tiled at (empty:
    no anyres path). ``image_max_tiles``: anyres maps larger than this many tiles shrink
    (``vision_aspect_ratio="anyres_max_9"`` -> 9)."""

    name: str = "onevision"
    pool_factor: int = 2
    newline: bool = True
    pool_after_projection: bool = True
    image_grid_pinpoints: tuple[tuple[int, int], ...] = ()
    image_max_tiles: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("onevision", pool_factor=self.pool_factor,
                       image_max_tiles=self.image_max_tiles)
        self.image_grid_pinpoints = tuple((int(h), int(w)) for h, w in self.image_grid_pinpoints)

    def image_num_tokens(self, image_size: tuple[int, int], grid: Grid, *, tile: int) -> int:
        """Tokens of one image of ``image_size`` ``(H, W)`` on the anyres path (pure)."""
        self._require_anyres()
        return anyres.image_num_tokens(image_size, grid, pinpoints=self.image_grid_pinpoints,
                                       tile=tile, max_tiles=self.image_max_tiles)

    def _require_anyres(self) -> None:
        if not self.image_grid_pinpoints:
            raise ConfigError("onevision: the anyres image path needs image_grid_pinpoints")
        if not self.newline:
            raise ConfigError("onevision: the anyres image path needs newline=True")

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

    def image_tokens(self, features: torch.Tensor, image_size: tuple[int, int], *,
                     grid: Grid, tile: int) -> torch.Tensor:
        """One anyres image: features ``(P, N, D)`` -> tokens ``(L, D_lm)``.

        ``features``: the base view's, then the tiles' (row by row). ``image_size``: the
        original ``(H, W)``; ``tile``: the vision tower's input size.
        """
        self.config._require_anyres()
        rows, cols = anyres.tile_grid(image_size, self.config.image_grid_pinpoints, tile)
        if features.shape[0] != 1 + rows * cols:
            raise ValueError(f"an image of {image_size[0]}x{image_size[1]} needs "
                             f"{1 + rows * cols} views (base + {rows}x{cols} tiles), got "
                             f"{features.shape[0]}")
        patches, _ = split_features(features[None], grid)  # (1, P, h, w, D), CLS dropped
        projected = self.projector.project(patches[0])  # (P, h, w, C)
        _, h, w, c = projected.shape
        base = projected[0].reshape(h * w, c)
        # tiles (rows, cols, h, w, C) -> one map (C, rows*h, cols*w)
        tiles = projected[1:].reshape(rows, cols, h, w, c).permute(4, 0, 2, 1, 3)
        fmap = tiles.reshape(c, rows * h, cols * w)
        uh, uw = anyres.unpadded_size(image_size, (rows * h, cols * w))
        top, left = (rows * h - uh) // 2, (cols * w - uw) // 2
        fmap = fmap[:, top:top + uh, left:left + uw]
        sh, sw = anyres.shrunk_size((uh, uw), (h, w), self.config.image_max_tiles)
        if (sh, sw) != (uh, uw):
            fmap = F.interpolate(fmap[None], size=(sh, sw), mode="bilinear",
                                 align_corners=False)[0]
        newline = self.newline.to(fmap.dtype)[:, None, None].expand(c, sh, 1)
        rows_with_newline = torch.cat([fmap, newline], dim=2)  # (C, sh, sw + 1)
        return torch.cat([base, rows_with_newline.flatten(1).T], dim=0)
