"""Synthetic scenes: coloured shapes whose every position, colour and event is known exactly.

A :class:`Scene` holds per-frame ground truth for each object: centre ``(T, 2)``
in pixels (x, y), visibility ``(T,)`` and palette colour index ``(T,)``. Scenes are
built by the question builders in :mod:`vidlm.data.synth_questions`; this module
only holds the geometry and motion helpers they share. Positions are rounded to
1/100 px so the JSON metadata describes the rendered frames exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Saturated colours, far from the grey backgrounds, so they survive H.264 4:2:0.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 235),
    "yellow": (235, 205, 30),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
PLURALS: dict[str, str] = {"square": "squares", "circle": "circles", "triangle": "triangles"}
BACKGROUNDS: tuple[str, ...] = ("plain", "checker", "stripes", "noise")

# Every shape fits inside a circle of radius EXTENT * r around its centre.
EXTENT = 1.15
MIN_GAP_PX = 2.0


@dataclass
class Background:
    """A static grey background: ``plain``, or a low-contrast ``checker``/``stripes``/``noise``."""

    kind: str
    level: int  # base grey level 0..255
    amplitude: int  # texture contrast (0 for plain)
    period: int  # texture cell size in pixels
    texture_seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "amplitude": self.amplitude,
            "period": self.period,
            "texture_seed": self.texture_seed,
        }


@dataclass
class SceneObject:
    """One shape with exact per-frame state.

    ``centers``: float (T, 2) pixel (x, y); ``visible``: bool (T,); ``colors``: int (T,)
    indices into :data:`COLOR_NAMES`.
    """

    shape: str
    radius: float
    centers: np.ndarray
    visible: np.ndarray
    colors: np.ndarray
    role: str = "distractor"

    def to_dict(self) -> dict[str, Any]:
        frames = np.flatnonzero(self.visible)
        changes = np.flatnonzero(np.diff(self.colors) != 0) + 1
        return {
            "shape": self.shape,
            "role": self.role,
            "radius": round(float(self.radius), 2),
            "color": COLOR_NAMES[int(self.colors[0])],
            "color_changes": [
                {"frame": int(f), "to": COLOR_NAMES[int(self.colors[f])]} for f in changes
            ],
            "visible_frames": [int(frames[0]), int(frames[-1])] if frames.size else [],
            "centers": [[float(x), float(y)] for x, y in self.centers],
        }


@dataclass
class Scene:
    """A whole clip's ground truth. ``events`` holds kind-specific facts (bounce frames, ...)."""

    size: int
    fps: int
    num_frames: int
    background: Background
    objects: list[SceneObject] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "background": self.background.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
            "events": self.events,
        }


def random_background(rng: np.random.Generator) -> Background:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return Background(
        kind=kind,
        level=int(rng.integers(50, 120)),
        amplitude=0 if kind == "plain" else int(rng.integers(10, 26)),
        period=int(rng.integers(4, 11)),
        texture_seed=int(rng.integers(2**31 - 1)),
    )


def random_radius(rng: np.random.Generator, size: int) -> float:
    return round(float(rng.uniform(0.085, 0.105) * size), 2)


def static_path(center: tuple[float, float], num_frames: int) -> np.ndarray:
    """(T, 2) of the same centre."""
    return np.round(np.tile(np.asarray(center, dtype=np.float64), (num_frames, 1)), 2)


def linear_path(
    start: tuple[float, float], end: tuple[float, float], num_frames: int
) -> np.ndarray:
    """(T, 2) moving at constant speed from ``start`` (frame 0) to ``end`` (frame T-1)."""
    s = np.linspace(0.0, 1.0, num_frames)[:, None]
    return np.round(np.asarray(start) * (1 - s) + np.asarray(end) * s, 2)


def random_drift(
    rng: np.random.Generator, size: int, radius: float, num_frames: int, max_travel: float
) -> np.ndarray:
    """(T, 2) slow straight drift (or none) kept inside the frame."""
    lo, hi = EXTENT * radius + 1, size - EXTENT * radius - 1
    travel = rng.uniform(0, max_travel) * size
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = travel * np.cos(angle), travel * np.sin(angle)
    x0 = rng.uniform(lo + max(0.0, -dx), hi - max(0.0, dx))
    y0 = rng.uniform(lo + max(0.0, -dy), hi - max(0.0, dy))
    return linear_path((x0, y0), (x0 + dx, y0 + dy), num_frames)


def random_static(
    rng: np.random.Generator, size: int, radius: float, num_frames: int
) -> np.ndarray:
    lo, hi = EXTENT * radius + 1, size - EXTENT * radius - 1
    return static_path((rng.uniform(lo, hi), rng.uniform(lo, hi)), num_frames)


def fits(objects: list[SceneObject], candidate: SceneObject, size: int) -> bool:
    """Whether ``candidate`` stays inside the frame and never touches a co-visible object."""
    reach = EXTENT * candidate.radius
    c = candidate.centers[candidate.visible]
    if c.size and (c.min() < reach or c.max() > size - reach):
        return False
    for other in objects:
        both = candidate.visible & other.visible
        if not both.any():
            continue
        dist = np.linalg.norm(candidate.centers[both] - other.centers[both], axis=1)
        if dist.min() < EXTENT * (candidate.radius + other.radius) + MIN_GAP_PX:
            return False
    return True


class PlacementError(RuntimeError):
    """A scene could not be laid out; the builder retries with fresh randomness."""


def place(objects: list[SceneObject], make: Any, size: int, *, tries: int = 200) -> SceneObject:
    """Append ``make()`` (a fresh random SceneObject per call) once it fits, else raise."""
    for _ in range(tries):
        obj = make()
        if fits(objects, obj, size):
            objects.append(obj)
            return obj
    raise PlacementError("no room for another object")


def bounce_path(
    *,
    lo: float,
    hi: float,
    start_wall: float,
    direction: int,
    first_bounce: float,
    period: float,
    times: np.ndarray,
) -> np.ndarray:
    """1-D positions (T,) of a point bouncing between ``lo`` and ``hi``.

    At time ``first_bounce`` it is at wall ``start_wall`` (lo or hi) moving away in
    ``direction`` (+1/-1); it crosses the gap in ``period`` seconds.
    """
    length = hi - lo
    speed = length / period
    # Unfolded coordinate measured from lo; reflect into [0, length].
    u0 = 0.0 if start_wall == lo else length
    u = u0 + direction * speed * (times - first_bounce)
    u = np.mod(u, 2 * length)
    folded = np.where(u > length, 2 * length - u, u)
    return lo + folded


def color_track(index: int, num_frames: int) -> np.ndarray:
    return np.full(num_frames, index, dtype=np.int64)


def all_visible(num_frames: int) -> np.ndarray:
    return np.ones(num_frames, dtype=bool)
