"""The connector interface, its typed config base, and the connector registry.

A connector maps vision features ``(B, T, N, D)`` (``T`` frames, ``N = h*w`` patch
tokens, or ``1 + h*w`` with a CLS token first) to language-model tokens
``(B, L, D_lm)``. ``L`` is known without running anything:
:meth:`ConnectorConfig.num_tokens` is a pure function of the frame count and the
patch grid, and :meth:`ConnectorConfig.token_plan` says which sampled frames feed
which pathway, which is what :mod:`vidlm.model.budget` reports.

Each connector registers itself with :func:`register_connector` under the same
name its config carries, so a JSON config ``{"name": "slowfast", ...}`` resolves
to its config class and module class.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from vidlm.config import from_dict, to_dict
from vidlm.errors import ConfigError

Grid = tuple[int, int]


@dataclass(frozen=True)
class PathwayPlan:
    """One stream of visual tokens: which sampled frames feed it and what each costs.

    ``frames``: positions (0-based, among the sampled frames) that feed the pathway.
    ``units``: token groups it emits (frames for SlowFast, time windows for temporal pooling).
    ``tokens_per_unit``: tokens in each group.
    """

    name: str
    frames: tuple[int, ...]
    units: int
    tokens_per_unit: int

    @property
    def tokens(self) -> int:
        return self.units * self.tokens_per_unit


@dataclass(frozen=True)
class TokenPlan:
    """The visual tokens a connector emits, pathway by pathway, in output order.

    ``extra_tokens`` counts learned tokens that come from no frame (a separator).
    """

    pathways: tuple[PathwayPlan, ...]
    extra_tokens: int = 0

    @property
    def total(self) -> int:
        return sum(p.tokens for p in self.pathways) + self.extra_tokens


@dataclass
class ConnectorConfig:
    """Base of every connector's typed config; ``name`` selects the registered connector."""

    name: str = ""

    def token_plan(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> TokenPlan:
        """The tokens emitted for ``num_frames`` frames on an ``(h, w)`` patch grid (pure)."""
        raise NotImplementedError(f"{type(self).__name__} does not define token_plan")

    def num_tokens(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> int:
        """``L``, the visual-token count for ``num_frames`` frames on ``grid`` (pure)."""
        return self.token_plan(num_frames, grid, has_cls=has_cls).total

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


class Connector(nn.Module, abc.ABC):
    """Vision features ``(B, T, N, D)`` -> language-model tokens ``(B, L, D_lm)``.

    Subclasses set ``config_class`` and are built with
    ``Cls(config, vision_dim=D, lm_dim=D_lm)``.
    """

    config_class: ClassVar[type[ConnectorConfig]]

    def __init__(self, config: ConnectorConfig, *, vision_dim: int, lm_dim: int) -> None:
        super().__init__()
        self.config = config
        self.vision_dim = vision_dim
        self.lm_dim = lm_dim

    @abc.abstractmethod
    def forward(self, features: torch.Tensor, *, grid: Grid | None = None) -> torch.Tensor:
        """``(B, T, N, D)`` -> ``(B, L, D_lm)``; ``grid`` is inferred when the grid is square."""

    def num_tokens(self, num_frames: int, grid: Grid, *, has_cls: bool = False) -> int:
        """Pure: the ``L`` that :meth:`forward` returns for these inputs."""
        return self.config.num_tokens(num_frames, grid, has_cls=has_cls)


# name -> (config class, module class)
_REGISTRY: dict[str, tuple[type[ConnectorConfig], type[Connector]]] = {}

C = TypeVar("C", bound=type[Connector])


def register_connector(name: str) -> Callable[[C], C]:
    """Class decorator: register a :class:`Connector` (and its ``config_class``) as ``name``."""

    def decorate(cls: C) -> C:
        config_class = cls.config_class
        default_name = config_class().name
        if default_name != name:
            raise TypeError(
                f"{config_class.__name__}.name defaults to {default_name!r}, not {name!r}")
        if name in _REGISTRY and _REGISTRY[name][1] is not cls:
            raise TypeError(f"connector {name!r} is already registered by {_REGISTRY[name][1]}")
        _REGISTRY[name] = (config_class, cls)
        return cls

    return decorate


def available_connectors() -> list[str]:
    """Names of the registered connectors, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: Any, where: str) -> tuple[type[ConnectorConfig], type[Connector]]:
    if name not in _REGISTRY:
        raise ConfigError(f"{where}: unknown connector {name!r}; known: {available_connectors()}")
    return _REGISTRY[name]


def connector_config_from_dict(data: dict[str, Any], *,
                               where: str = "connector") -> ConnectorConfig:
    """``{"name": ..., field: value}`` -> that connector's typed config.

    Raises :class:`ConfigError` for an unknown name or field, listing the known ones.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'name', got {type(data).__name__}")
    if "name" not in data:
        raise ConfigError(f"{where}: missing 'name'; known connectors: {available_connectors()}")
    config_class, _ = _lookup(data["name"], where)
    return from_dict(config_class, data, where=where)


def build_connector(config: ConnectorConfig, *, vision_dim: int, lm_dim: int) -> Connector:
    """The module for ``config`` with fresh (random) weights."""
    config_class, module_class = _lookup(config.name, "connector")
    if not isinstance(config, config_class):
        raise ConfigError(
            f"connector {config.name!r} needs a {config_class.__name__}, "
            f"got {type(config).__name__}")
    return module_class(config, vision_dim=vision_dim, lm_dim=lm_dim)


# ---- shared checks and shape helpers -------------------------------------------------------


def check_positive(where: str, **values: int) -> None:
    """Raise :class:`ConfigError` unless every value is an int >= 1."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")


def check_choice(where: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {key} must be one of {list(choices)}, got {value!r}")


def as_grid(value: Any, *, where: str, key: str) -> Grid:
    """``6`` or ``[6, 6]`` or ``(6, 6)`` -> ``(6, 6)``; anything else is a ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(f"{where}: {key} must be an int or a pair [h, w], got {value!r}")
    grid = (value[0], value[1])
    check_positive(where, **{f"{key}[0]": grid[0], f"{key}[1]": grid[1]})
    return grid


def check_inputs(num_frames: int, grid: Grid) -> None:
    check_positive("token count", num_frames=num_frames, grid_h=grid[0], grid_w=grid[1])


def infer_grid(num_patches: int, grid: Grid | None) -> tuple[Grid, bool]:
    """The ``(h, w)`` grid and whether a CLS token leads, for ``N = num_patches`` tokens.

    With ``grid`` given, ``N`` must be ``h*w`` or ``1 + h*w``. Without it the grid must be
    square: ``N`` a perfect square (no CLS) or one more than one (CLS first).
    """
    if grid is not None:
        h, w = grid
        if num_patches == h * w:
            return (h, w), False
        if num_patches == h * w + 1:
            return (h, w), True
        raise ValueError(f"{num_patches} tokens per frame fit neither {h}x{w} nor 1+{h}x{w}")
    for has_cls in (False, True):
        side = math.isqrt(num_patches - int(has_cls))
        if side >= 1 and side * side == num_patches - int(has_cls):
            return (side, side), has_cls
    raise ValueError(f"{num_patches} tokens per frame are not a square grid (with or without "
                     "CLS); pass grid=(h, w)")


def split_features(features: torch.Tensor, grid: Grid | None) -> tuple[torch.Tensor, bool]:
    """``(B, T, N, D)`` -> patch tokens ``(B, T, h, w, D)`` with any CLS token dropped."""
    if features.dim() != 4:
        raise ValueError(f"connector input must be (B, T, N, D), got shape {tuple(features.shape)}")
    b, t, n, d = features.shape
    (h, w), has_cls = infer_grid(n, grid)
    patches = features[:, :, 1:] if has_cls else features
    return patches.reshape(b, t, h, w, d), has_cls
