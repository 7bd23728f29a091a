"""Connectors: vision features ``(B, T, N, D)`` -> language-model tokens ``(B, L, D_lm)``.

Importing this package registers the built-in connectors (one module each):
``mlp2x_gelu`` (LLaVA-1.5's projector), ``temporal_pool`` (Video-LLaVA-style
pooling over time), ``slowfast`` (the SlowFast two-stream design), ``perceiver``
(a Flamingo-style Perceiver resampler), and the checkpoint-specific ``onevision``
(LLaVA-OneVision's video path) and ``llava_next_video`` (LLaVA-NeXT-Video's pooling). See
:mod:`vidlm.model.connectors.base` for the interface and ``docs/connectors.md``.
"""

from __future__ import annotations

from vidlm.model.connectors.base import (
    Connector,
    ConnectorConfig,
    PathwayPlan,
    TokenPlan,
    available_connectors,
    build_connector,
    connector_config_from_dict,
    register_connector,
)
from vidlm.model.connectors.llava_next_video import NextVideoConfig, NextVideoConnector
from vidlm.model.connectors.mlp2x_gelu import MLP2xGeluConfig, MLP2xGeluConnector
from vidlm.model.connectors.onevision import OneVisionConfig, OneVisionConnector
from vidlm.model.connectors.perceiver import PerceiverConfig, PerceiverConnector
from vidlm.model.connectors.presets import (
    ConnectorPreset,
    available_presets,
    connector_preset,
    get_preset,
)
from vidlm.model.connectors.projected import PooledConnector, PooledConnectorConfig
from vidlm.model.connectors.slowfast import SlowFastConfig, SlowFastConnector
from vidlm.model.connectors.temporal_pool import TemporalPoolConfig, TemporalPoolConnector

__all__ = [
    "Connector",
    "ConnectorConfig",
    "ConnectorPreset",
    "MLP2xGeluConfig",
    "MLP2xGeluConnector",
    "NextVideoConfig",
    "NextVideoConnector",
    "OneVisionConfig",
    "OneVisionConnector",
    "PathwayPlan",
    "PerceiverConfig",
    "PerceiverConnector",
    "PooledConnector",
    "PooledConnectorConfig",
    "SlowFastConfig",
    "SlowFastConnector",
    "TemporalPoolConfig",
    "TemporalPoolConnector",
    "TokenPlan",
    "available_connectors",
    "available_presets",
    "build_connector",
    "connector_config_from_dict",
    "connector_preset",
    "get_preset",
    "register_connector",
]
