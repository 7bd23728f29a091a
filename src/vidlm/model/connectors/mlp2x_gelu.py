"""LLaVA-1.5's projector: ``Linear(D, D_lm) -> GELU -> Linear(D_lm, D_lm)`` on every token.

Parameter names are ``linear_1`` and ``linear_2``, as in llava-hf's
``multi_modal_projector``, so those weights load by name. Every token is kept:
``L = T * N`` (``N`` includes a CLS token when the vision tower keeps one).
The pooling connectors hold one of these as their ``projector``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vidlm.model.connectors.base import (
    Connector,
    ConnectorConfig,
    Grid,
    PathwayPlan,
    TokenPlan,
    check_choice,
    check_inputs,
    infer_grid,
    register_connector,
)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,  # exact erf GELU, transformers' ACT2FN["gelu"]
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


@dataclass
class MLP2xGeluConfig(ConnectorConfig):
    """``hidden_act``: the activation between the two linears (llava-hf's ``projector_hidden_act``).
    ``bias``: whether both linears have a bias (llava-hf's ``multimodal_projector_bias``)."""

    name: str = "mlp2x_gelu"
    hidden_act: str = "gelu"
    bias: bool = True

    def __post_init__(self) -> None:
        check_choice("mlp2x_gelu", "hidden_act", self.hidden_act, tuple(ACTIVATIONS))

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        check_inputs(num_frames, grid)
        per_frame = grid[0] * grid[1] + int(has_cls)
        frames = PathwayPlan("frames", tuple(range(num_frames)), num_frames, per_frame)
        return TokenPlan((frames,))


@register_connector("mlp2x_gelu")
class MLP2xGeluConnector(Connector):
    """``(B, T, N, D)`` -> ``(B, T*N, D_lm)``: each token projected independently."""

    config_class = MLP2xGeluConfig

    def __init__(self, config: MLP2xGeluConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__(config, vision_dim=vision_dim, lm_dim=lm_dim)
        self.linear_1 = nn.Linear(vision_dim, lm_dim, bias=config.bias)
        self.act = ACTIVATIONS[config.hidden_act]()
        self.linear_2 = nn.Linear(lm_dim, lm_dim, bias=config.bias)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` -> ``(..., D_lm)``."""
        return self.linear_2(self.act(self.linear_1(x)))

    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        if features.dim() != 4:
            raise ValueError(f"connector input must be (B, T, N, D), got {tuple(features.shape)}")
        if grid is not None:
            infer_grid(features.shape[2], grid)  # validates N against the grid
        b, t, n, _ = features.shape
        return self.project(features).reshape(b, t * n, self.lm_dim)

    @classmethod
    def from_projector(cls, config: MLP2xGeluConfig,
                       projector: MLP2xGeluConnector) -> MLP2xGeluConnector:
        """A connector sharing ``projector``'s linear layers (same parameters, not copies)."""
        module = cls(config, vision_dim=projector.vision_dim, lm_dim=projector.lm_dim)
        module.linear_1, module.linear_2 = projector.linear_1, projector.linear_2
        module.act = projector.act
        return module
