"""A Flamingo-style Perceiver resampler: a fixed number of learned latents read the whole video.

All ``T * N`` tokens of a video (each frame's tokens plus a learned embedding of its
time position) are attended by ``num_latents`` learned latent vectors through
``depth`` blocks of cross-attention (keys and values: the tokens and the latents
themselves, as in Flamingo) and a feed-forward layer, so ``L = num_latents`` whatever
the frame count (or ``T * num_latents`` with ``per_frame``). ``max_frames`` bounds the
time embedding. Unlike the pooling connectors it has no training-free mode: its latents
and attention are learned. With ``pool_after_projection`` the ``mlp2x_gelu`` projector
runs first and the resampler works at the LM's width; otherwise it works at the vision
width and the projector maps its latents to the LM (the default).
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
    check_inputs,
    check_positive,
    infer_grid,
    register_connector,
)
from vidlm.model.connectors.projected import PooledConnector, PooledConnectorConfig


@dataclass
class PerceiverConfig(PooledConnectorConfig):
    """``num_latents`` output tokens per video (per frame with ``per_frame``); ``depth``
    resampler blocks of ``heads`` x ``head_dim`` attention and a ``ff_mult``-wide MLP."""

    name: str = "perceiver"
    num_latents: int = 64
    depth: int = 2
    heads: int = 8
    head_dim: int = 64
    ff_mult: int = 4
    max_frames: int = 256
    per_frame: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("perceiver", num_latents=self.num_latents, depth=self.depth,
                       heads=self.heads, head_dim=self.head_dim, ff_mult=self.ff_mult,
                       max_frames=self.max_frames)

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        check_inputs(num_frames, grid)
        if num_frames > self.max_frames:
            raise ConfigError(f"perceiver: {num_frames} frames exceed max_frames="
                              f"{self.max_frames} (its learned time embedding)")
        units = num_frames if self.per_frame else 1
        return TokenPlan((PathwayPlan("latents", tuple(range(num_frames)), units,
                                      self.num_latents),))


class ResamplerBlock(nn.Module):
    """Latents ``(B, K, C)`` attend to ``[tokens; latents]``, then a feed-forward layer."""

    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.norm_tokens = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ff_mult * dim, bias=False),
                                nn.GELU(), nn.Linear(ff_mult * dim, dim, bias=False))

    def forward(self, tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``tokens (B, S, C)``, ``latents (B, K, C)`` -> updated latents ``(B, K, C)``."""
        b, k, _ = latents.shape
        lat = self.norm_latents(latents)
        context = torch.cat([self.norm_tokens(tokens), lat], dim=1)  # (B, S + K, C)
        q = self._heads(self.to_q(lat))  # (B, H, K, d)
        key, value = (self._heads(t) for t in self.to_kv(context).chunk(2, dim=-1))
        attended = F.scaled_dot_product_attention(q, key, value)  # (B, H, K, d)
        latents = latents + self.to_out(attended.transpose(1, 2).reshape(b, k, -1))
        return latents + self.ff(latents)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)


@register_connector("perceiver")
class PerceiverConnector(PooledConnector):
    """``(B, T, N, D)`` -> ``(B, num_latents, D_lm)`` (or ``(B, T * num_latents, D_lm)``)."""

    config_class = PerceiverConfig
    config: PerceiverConfig

    def __init__(self, config: PerceiverConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__(config, vision_dim=vision_dim, lm_dim=lm_dim)
        width = lm_dim if config.pool_after_projection else vision_dim
        self.latents = nn.Parameter(torch.randn(config.num_latents, width) * width**-0.5)
        self.time_embedding = nn.Parameter(torch.randn(config.max_frames, width) * 0.02)
        self.blocks = nn.ModuleList(ResamplerBlock(width, config.heads, config.head_dim,
                                                   config.ff_mult) for _ in range(config.depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        if features.dim() != 4:
            raise ValueError(f"connector input must be (B, T, N, D), got {tuple(features.shape)}")
        b, t, n, _ = features.shape
        infer_grid(n, grid)  # validates N
        if t > self.config.max_frames:
            raise ValueError(f"{t} frames exceed the perceiver's "
                             f"max_frames={self.config.max_frames}")
        x = self.projector.project(features) if self.config.pool_after_projection else features
        x = x + self.time_embedding[:t, None].to(x.dtype)  # (B, T, N, C)
        groups = x.reshape(b * t, n, -1) if self.config.per_frame else x.reshape(b, t * n, -1)
        latents = self.latents.to(x.dtype).expand(groups.shape[0], -1, -1)  # (G, K, C)
        for block in self.blocks:
            latents = block(groups, latents)
        out = self.norm(latents).reshape(b, -1, latents.shape[-1])  # (B, L, C)
        return out if self.config.pool_after_projection else self.projector.project(out)
