"""The SlowFast connector: a few frames at high spatial detail, all frames at low detail.

Slow pathway: ``slow_frames`` of the ``T`` sampled frames, chosen evenly at positions
``floor(i * T / S)`` for ``i < S`` (``linspace(0, T, S + 1)[:-1]``, computed in integers;
``S = min(slow_frames, T)``), pooled lightly in space:

- ``"max1d"``: the ``h*w`` tokens flattened row-major and 1-D max-pooled with kernel and
  stride ``slow_kernel`` (SlowFast-LLaVA 2024: 24x24 -> 288 tokens);
- ``"avg2d"``: ``slow_kernel`` x ``slow_kernel`` average pooling (SF-LLaVA-1.5: 24x24 -> 12x12);
- ``"none"``: every token kept.

Fast pathway: every sampled frame, adaptive-average-pooled to ``fast_grid``.

Output: all slow tokens (frame by frame), then an optional learned separator token,
then all fast tokens. ``pathways`` keeps one pathway alone (``"slow"`` or ``"fast"``)
for ablations; the separator needs both. A CLS token, when present, is dropped before
any spatial pooling, so the count does not depend on it. With ``pool_after_projection``
(the default, as in SF-LLaVA) the tokens are projected first and the projected tokens
pooled, which is what makes it work training-free on an image model's projector.
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
    as_grid,
    check_choice,
    check_inputs,
    check_positive,
    register_connector,
    split_features,
)
from vidlm.model.connectors.projected import PooledConnector, PooledConnectorConfig

SLOW_POOLS = ("max1d", "avg2d", "none")
PATHWAYS = ("both", "slow", "fast")


@dataclass
class SlowFastConfig(PooledConnectorConfig):
    """Every SlowFast choice; the defaults are SlowFast-LLaVA (2024)'s."""

    name: str = "slowfast"
    slow_frames: int = 10
    slow_pool: str = "max1d"
    slow_kernel: int = 2
    fast_grid: tuple[int, ...] = (4, 4)  # (h, w); "..." so JSON of a wrong length is caught
    separator: bool = False
    pool_after_projection: bool = True
    pathways: str = "both"  # "slow" / "fast": one pathway alone (ablations)
    # RMS-normalise each output token to this per-dimension RMS (e.g. the LM's token
    # embeddings'), so training cannot silence visual tokens by inflating their norm
    output_rms: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("slowfast", slow_frames=self.slow_frames, slow_kernel=self.slow_kernel)
        check_choice("slowfast", "slow_pool", self.slow_pool, SLOW_POOLS)
        check_choice("slowfast", "pathways", self.pathways, PATHWAYS)
        if self.output_rms is not None and self.output_rms <= 0:
            raise ConfigError(f"slowfast: output_rms must be positive, got {self.output_rms}")
        if self.separator and self.pathways != "both":
            raise ConfigError(f"slowfast: a separator needs both pathways, not "
                              f"pathways={self.pathways!r}")
        self.fast_grid = as_grid(self.fast_grid, where="slowfast", key="fast_grid")

    def slow_positions(self, num_frames: int) -> tuple[int, ...]:
        """Positions of the slow frames among ``num_frames`` sampled frames."""
        s = min(self.slow_frames, num_frames)
        return tuple((i * num_frames) // s for i in range(s))

    def slow_tokens_per_frame(self, grid: Grid) -> int:
        h, w = grid
        k = self.slow_kernel
        if self.slow_pool == "max1d":
            n = (h * w) // k
        elif self.slow_pool == "avg2d":
            n = (h // k) * (w // k)
        else:
            n = h * w
        if n < 1:
            raise ConfigError(f"slowfast: slow_pool {self.slow_pool!r} with kernel {k} leaves no "
                              f"tokens on a {h}x{w} grid")
        return n

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        check_inputs(num_frames, grid)
        slow = self.slow_positions(num_frames)
        fast = tuple(range(num_frames))
        plans = {"slow": PathwayPlan("slow", slow, len(slow), self.slow_tokens_per_frame(grid)),
                 "fast": PathwayPlan("fast", fast, num_frames,
                                     self.fast_grid[0] * self.fast_grid[1])}
        kept = ("slow", "fast") if self.pathways == "both" else (self.pathways,)
        return TokenPlan(tuple(plans[k] for k in kept), extra_tokens=int(self.separator))


@register_connector("slowfast")
class SlowFastConnector(PooledConnector):
    """``(B, T, N, D)`` -> ``(B, L_slow + separator + L_fast, D_lm)``."""

    config_class = SlowFastConfig
    config: SlowFastConfig

    def __init__(self, config: SlowFastConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__(config, vision_dim=vision_dim, lm_dim=lm_dim)
        if config.separator:
            self.separator = nn.Parameter(torch.randn(lm_dim) * lm_dim**-0.5)

    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        patches, _ = split_features(features, grid)  # (B, T, h, w, D), CLS dropped
        if self.config.pool_after_projection:
            patches = self.projector.project(patches)  # (B, T, h, w, D_lm)
        parts = self.pool_pathways(patches)
        if not self.config.pool_after_projection:
            parts = [self.projector.project(p) for p in parts]
        if self.config.separator:
            parts.insert(1, self.separator.to(parts[0].dtype).expand(parts[0].shape[0], 1, -1))
        tokens = torch.cat(parts, dim=1)  # (B, L, D_lm)
        if self.config.output_rms is not None:
            rms = tokens.float().pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt()
            tokens = (tokens.float() * rms * self.config.output_rms).to(tokens.dtype)
        return tokens

    def pool_pathways(self, patches: torch.Tensor) -> list[torch.Tensor]:
        """``(B, T, h, w, C)`` -> the kept pathways' pooled tokens, in output order:
        slow ``(B, S*k, C)`` then fast ``(B, T*fh*fw, C)`` (no projection, no separator)."""
        parts = []
        if self.config.pathways in ("both", "slow"):
            slow_idx = torch.tensor(self.config.slow_positions(patches.shape[1]),
                                    device=patches.device)
            parts.append(self._pool_slow(patches.index_select(1, slow_idx)))
        if self.config.pathways in ("both", "fast"):
            parts.append(self._pool_fast(patches))
        return parts

    def _pool_slow(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, S, h, w, C)`` -> ``(B, S * tokens_per_frame, C)``."""
        b, s, h, w, c = x.shape
        k = self.config.slow_kernel
        if self.config.slow_pool == "max1d":
            flat = x.reshape(b * s, h * w, c).transpose(1, 2)  # (B*S, C, h*w)
            pooled = F.max_pool1d(flat, kernel_size=k, stride=k)  # (B*S, C, h*w // k)
        elif self.config.slow_pool == "avg2d":
            maps = x.reshape(b * s, h, w, c).permute(0, 3, 1, 2)  # (B*S, C, h, w)
            pooled = F.avg_pool2d(maps, kernel_size=k, stride=k).flatten(2)  # (B*S, C, h'*w')
        else:
            return x.reshape(b, s * h * w, c)
        return pooled.transpose(1, 2).reshape(b, -1, c)

    def _pool_fast(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, h, w, C)`` -> ``(B, T * fh * fw, C)`` by adaptive average pooling."""
        b, t, h, w, c = x.shape
        maps = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (B*T, C, h, w)
        pooled = F.adaptive_avg_pool2d(maps, self.config.fast_grid).flatten(2)  # (B*T, C, fh*fw)
        return pooled.transpose(1, 2).reshape(b, -1, c)
