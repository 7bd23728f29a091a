"""Sampling policies: which frames of a video to decode.

A policy turns the stream's real presentation times into frame indices. Times are in
seconds from the stream's start; frame ``i`` is on screen from ``pts[i]`` until
``pts[i + 1]`` (the last frame until ``duration``). A policy first picks target
times, then takes the frame on screen at each target, so the result is right on
variable-frame-rate video. Targets that land on the same frame give it once.

* :func:`fps` -- ``target`` frames per second; if that is more than ``max_frames``,
  ``max_frames`` uniform frames instead (SlowFast-LLaVA-1.5's policy).
* :func:`uniform` -- ``n`` frames at the middles of ``n`` equal time segments.
* :func:`timestamps` -- the frames on screen at the given times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vidlm.model.config import SamplingConfig

# Tolerance when comparing a target time with a frame's pts: pts are rationals
# turned into floats, so a target exactly on a frame boundary must not slip back.
_TIME_EPS = 1e-6


class SamplingPolicy:
    """Base class: ``target_times(duration) -> seconds``; :meth:`select` maps them to frames."""

    def target_times(self, duration: float) -> np.ndarray:
        raise NotImplementedError

    def select(self, pts: np.ndarray, duration: float) -> np.ndarray:
        """Indices (sorted, unique, int64) of the frames to decode.

        ``pts``: ``(N,)`` sorted presentation times in seconds from the start.
        ``duration``: end of the last frame, in seconds from the start.
        """
        if len(pts) == 0:
            return np.zeros(0, np.int64)
        times = self.target_times(max(duration, 0.0))
        return frames_on_screen(pts, times)


def frames_on_screen(pts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Unique sorted indices of the frames shown at ``times`` (before the first: frame 0)."""
    idx = np.searchsorted(pts, np.asarray(times, np.float64) + _TIME_EPS, side="right") - 1
    return np.unique(np.clip(idx, 0, len(pts) - 1)).astype(np.int64)


@dataclass(frozen=True)
class UniformPolicy(SamplingPolicy):
    """``n`` frames at the middles of ``n`` equal segments of the video's duration."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"uniform(n) needs n >= 1, got {self.n}")

    def target_times(self, duration: float) -> np.ndarray:
        return (np.arange(self.n, dtype=np.float64) + 0.5) * (duration / self.n)


@dataclass(frozen=True)
class FpsPolicy(SamplingPolicy):
    """``target`` frames per second (times 0, 1/target, ...), or ``max_frames`` uniform."""

    target: float
    max_frames: int

    def __post_init__(self) -> None:
        if not self.target > 0:
            raise ValueError(f"fps(target) needs target > 0, got {self.target}")
        if self.max_frames < 1:
            raise ValueError(f"fps(max_frames) needs max_frames >= 1, got {self.max_frames}")

    def count(self, duration: float) -> int:
        """How many times ``target`` fps puts in ``duration`` seconds (at least one)."""
        return max(1, math.ceil(duration * self.target - _TIME_EPS))

    def target_times(self, duration: float) -> np.ndarray:
        n = self.count(duration)
        if n > self.max_frames:
            return UniformPolicy(self.max_frames).target_times(duration)
        return np.arange(n, dtype=np.float64) / self.target


@dataclass(frozen=True)
class TimestampsPolicy(SamplingPolicy):
    """The frames on screen at explicit times (seconds from the start)."""

    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times:
            raise ValueError("timestamps([...]) needs at least one time")
        bad = [t for t in self.times if not (math.isfinite(t) and t >= 0)]
        if bad:
            raise ValueError(f"timestamps must be finite and >= 0 seconds, got {bad}")

    def target_times(self, duration: float) -> np.ndarray:
        return np.asarray(self.times, np.float64)


def fps(target: float, max_frames: int = 64) -> FpsPolicy:
    """Sample ``target`` frames per second, falling back to ``max_frames`` uniform frames."""
    return FpsPolicy(float(target), int(max_frames))


def uniform(n: int) -> UniformPolicy:
    """Sample ``n`` frames at the middles of ``n`` equal segments."""
    return UniformPolicy(int(n))


def timestamps(times: Sequence[float]) -> TimestampsPolicy:
    """Sample the frames on screen at ``times`` (seconds from the video's start)."""
    return TimestampsPolicy(tuple(float(t) for t in times))


# SamplingConfig.mode -> builder from the config's fields
POLICY_BUILDERS: dict[str, Callable[[SamplingConfig], SamplingPolicy]] = {
    "fps": lambda cfg: fps(cfg.fps, cfg.max_frames),
    "uniform": lambda cfg: uniform(cfg.num_frames),
}


def policy_from_config(cfg: SamplingConfig) -> SamplingPolicy:
    """The policy a :class:`vidlm.model.config.SamplingConfig` describes."""
    from vidlm.errors import ConfigError

    try:
        build = POLICY_BUILDERS[cfg.mode]
    except KeyError:
        raise ConfigError(f"sampling.mode must be one of {sorted(POLICY_BUILDERS)}, "
                          f"got {cfg.mode!r}") from None
    try:
        return build(cfg)
    except ValueError as exc:
        raise ConfigError(f"sampling: {exc}") from exc
