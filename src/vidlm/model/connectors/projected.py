"""Shared base of the pooling connectors: a LLaVA ``mlp2x_gelu`` projector plus pooling.

``pool_after_projection=True`` projects every token first and pools the projected
tokens: the training-free way to run a video connector on an image model's projector
(SlowFast-LLaVA). ``False`` pools the vision features and projects the pooled tokens
(cheaper; for trained connectors). Either way the projector is ``self.projector``
(parameters ``projector.linear_1`` / ``projector.linear_2``), and
:meth:`PooledConnector.from_projector` shares an existing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from vidlm.model.connectors.base import Connector, ConnectorConfig, check_choice
from vidlm.model.connectors.mlp2x_gelu import ACTIVATIONS, MLP2xGeluConfig, MLP2xGeluConnector

P = TypeVar("P", bound="PooledConnector")


@dataclass
class PooledConnectorConfig(ConnectorConfig):
    """Fields every pooling connector shares (see the module docstring)."""

    pool_after_projection: bool = False
    projector_act: str = "gelu"
    projector_bias: bool = True

    def __post_init__(self) -> None:
        check_choice(self.name, "projector_act", self.projector_act, tuple(ACTIVATIONS))

    def projector_config(self) -> MLP2xGeluConfig:
        return MLP2xGeluConfig(hidden_act=self.projector_act, bias=self.projector_bias)


class PooledConnector(Connector):
    """A connector that owns an ``mlp2x_gelu`` projector as ``self.projector``."""

    config: PooledConnectorConfig

    def __init__(self, config: PooledConnectorConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__(config, vision_dim=vision_dim, lm_dim=lm_dim)
        self.projector = MLP2xGeluConnector(config.projector_config(), vision_dim=vision_dim,
                                            lm_dim=lm_dim)

    @classmethod
    def from_projector(cls: type[P], config: PooledConnectorConfig,
                       projector: MLP2xGeluConnector) -> P:
        """This connector on top of an existing projector (shared, so the image model's
        trained weights serve unchanged). Other learned parts (a separator) start fresh."""
        module = cls(config, vision_dim=projector.vision_dim, lm_dim=projector.lm_dim)
        module.projector = projector
        return module
