"""Named connector presets that reproduce published designs and their token counts.

A preset is a connector config plus the frame sampling and patch grid it was
published with. ``connector_preset(name)`` gives a fresh copy of its connector
config; :func:`get_preset` gives all of it.

| preset | sampling | grid | slow | fast | total |
|---|---|---|---|---|---|
| ``slowfast_llava_2024`` | 50 uniform | 24x24 | 10 x 288 (1-D max-pool 2) | 50 x 4x4 | 3,680 |
| ``slowfast_llava_1_5`` | 1 fps, at most 128 | 24x24 | 32 x 12x12 (2x2 avg) | 128 x 6x6 | 9,216 |

SF-LLaVA-1.5's exact slow/fast split, its separator and its fps are not confirmed by a
primary source; this preset is the reading ``32*12*12 + 128*6*6 = 9,216`` with no
separator (``separator=True`` makes it 9,217).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from vidlm.errors import ConfigError
from vidlm.model.config import SamplingConfig
from vidlm.model.connectors.base import ConnectorConfig, Grid
from vidlm.model.connectors.slowfast import SlowFastConfig


@dataclass(frozen=True)
class ConnectorPreset:
    name: str
    description: str
    connector: ConnectorConfig
    sampling: SamplingConfig
    grid: Grid


_PRESETS: dict[str, ConnectorPreset] = {
    p.name: p
    for p in (
        ConnectorPreset(
            name="slowfast_llava_2024",
            description="SlowFast-LLaVA (2024), training-free on LLaVA-NeXT with CLIP-L/336",
            connector=SlowFastConfig(slow_frames=10, slow_pool="max1d", slow_kernel=2,
                                     fast_grid=(4, 4), separator=False, pool_after_projection=True),
            sampling=SamplingConfig(mode="uniform", num_frames=50),
            grid=(24, 24),
        ),
        ConnectorPreset(
            name="slowfast_llava_1_5",
            description="SlowFast-LLaVA-1.5 style (trained): 32 slow at 2x2 avg, 128 fast at 6x6",
            connector=SlowFastConfig(slow_frames=32, slow_pool="avg2d", slow_kernel=2,
                                     fast_grid=(6, 6), separator=False,
                                     pool_after_projection=False),
            sampling=SamplingConfig(mode="fps", fps=1.0, max_frames=128),
            grid=(24, 24),
        ),
    )
}


def available_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str) -> ConnectorPreset:
    """The preset ``name`` (a deep copy, so callers may change it)."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown connector preset {name!r}; known: {available_presets()}")
    return copy.deepcopy(_PRESETS[name])


def connector_preset(name: str) -> ConnectorConfig:
    """A fresh copy of preset ``name``'s connector config."""
    return get_preset(name).connector
