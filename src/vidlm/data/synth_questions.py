"""Question kinds: each builds a scene for a requested answer, so answers are balanced by design.

Two families:

* ``spatial`` — answerable from any single frame (colours and shapes never change,
  every object is visible throughout): ``color``, ``count``, ``shape``.
* ``temporal`` — need several frames: ``direction`` (of motion), ``after`` (order of
  appearance), ``color_change`` (whether and when), ``bounce`` (how many times).

Each kind lists its canonical one-word answers; chance level is ``1 / len(choices)``.
A builder receives the answer it must produce and returns the scene and question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidlm.data.synth_scene import (
    COLOR_NAMES,
    EXTENT,
    PLURALS,
    SHAPES,
    PlacementError,
    Scene,
    SceneObject,
    all_visible,
    bounce_path,
    color_track,
    linear_path,
    place,
    random_background,
    random_drift,
    random_radius,
    random_static,
)

DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
CHANGE_ANSWERS: tuple[str, ...] = ("no", "early", "late")
COUNT_ANSWERS: tuple[str, ...] = ("1", "2", "3")
BOUNCE_ANSWERS: tuple[str, ...] = ("1", "2", "3")
SPATIAL_DRIFT = 0.15  # spatial scenes drift at most this fraction of the frame over the clip


@dataclass(frozen=True)
class Question:
    """A question with its exact answer. ``choices`` is what the answer is drawn from."""

    family: str
    kind: str
    text: str
    answer: str
    choices: tuple[str, ...]

    @property
    def chance(self) -> float:
        return 1.0 / len(self.choices)

    def prompt(self) -> str:
        """The human turn's text after ``<video>\\n``: the question and its allowed answers."""
        return f"{self.text} Answer with one of: {', '.join(self.choices)}."


@dataclass(frozen=True)
class Geometry:
    size: int
    fps: int
    num_frames: int


Builder = Callable[[np.random.Generator, str, Geometry], tuple[Scene, Question]]


@dataclass(frozen=True)
class QuestionKind:
    name: str
    family: str
    answers: tuple[str, ...]  # the answers the builder is asked for, balanced over the split
    build: Builder
    num_choices: int  # how many answers a question of this kind allows

    @property
    def chance(self) -> float:
        return 1.0 / self.num_choices


QUESTION_KINDS: dict[str, QuestionKind] = {}


def register_kind(
    name: str, family: str, answers: tuple[str, ...], *, num_choices: int | None = None
) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        QUESTION_KINDS[name] = QuestionKind(name, family, answers, fn, num_choices or len(answers))
        return fn

    return deco


def kinds_of(family: str) -> list[QuestionKind]:
    return [k for k in QUESTION_KINDS.values() if k.family == family]


def _pick(rng: np.random.Generator, items: list[str] | tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _obj(
    shape: str,
    radius: float,
    centers: np.ndarray,
    color: str,
    *,
    role: str = "distractor",
    visible: np.ndarray | None = None,
) -> SceneObject:
    t = len(centers)
    return SceneObject(
        shape=shape,
        radius=radius,
        centers=centers,
        visible=all_visible(t) if visible is None else visible,
        colors=color_track(COLOR_NAMES.index(color), t),
        role=role,
    )


def _add_drifting(
    rng: np.random.Generator,
    objects: list[SceneObject],
    g: Geometry,
    *,
    shapes: list[str],
    colors: list[str],
    role: str = "distractor",
) -> SceneObject:
    def make() -> SceneObject:
        r = random_radius(rng, g.size)
        return _obj(
            _pick(rng, shapes),
            r,
            random_drift(rng, g.size, r, g.num_frames, SPATIAL_DRIFT),
            _pick(rng, colors),
            role=role,
        )

    return place(objects, make, g.size)


def _add_static(
    rng: np.random.Generator,
    objects: list[SceneObject],
    g: Geometry,
    *,
    shapes: list[str],
    colors: list[str],
) -> SceneObject:
    def make() -> SceneObject:
        r = random_radius(rng, g.size)
        return _obj(
            _pick(rng, shapes), r, random_static(rng, g.size, r, g.num_frames), _pick(rng, colors)
        )

    return place(objects, make, g.size)


def _scene(
    rng: np.random.Generator, g: Geometry, objects: list[SceneObject], **events: object
) -> Scene:
    return Scene(
        size=g.size,
        fps=g.fps,
        num_frames=g.num_frames,
        background=random_background(rng),
        objects=objects,
        events=dict(events),
    )


# ---------------------------------------------------------------- spatial


@register_kind("color", "spatial", COLOR_NAMES)
def build_color(rng: np.random.Generator, answer: str, g: Geometry) -> tuple[Scene, Question]:
    shape = _pick(rng, SHAPES)
    others = [s for s in SHAPES if s != shape]
    objects: list[SceneObject] = []
    _add_drifting(rng, objects, g, shapes=[shape], colors=[answer], role="target")
    for _ in range(int(rng.integers(1, 3))):
        _add_drifting(rng, objects, g, shapes=others, colors=list(COLOR_NAMES))
    q = Question("spatial", "color", f"What color is the {shape}?", answer, COLOR_NAMES)
    return _scene(rng, g, objects), q


@register_kind("count", "spatial", COUNT_ANSWERS)
def build_count(rng: np.random.Generator, answer: str, g: Geometry) -> tuple[Scene, Question]:
    shape = _pick(rng, SHAPES)
    others = [s for s in SHAPES if s != shape]
    objects: list[SceneObject] = []
    for _ in range(int(answer)):
        _add_drifting(rng, objects, g, shapes=[shape], colors=list(COLOR_NAMES), role="target")
    for _ in range(int(rng.integers(0, 3))):
        _add_drifting(rng, objects, g, shapes=others, colors=list(COLOR_NAMES))
    q = Question("spatial", "count", f"How many {PLURALS[shape]} are there?", answer, COUNT_ANSWERS)
    return _scene(rng, g, objects), q


@register_kind("shape", "spatial", SHAPES)
def build_shape(rng: np.random.Generator, answer: str, g: Geometry) -> tuple[Scene, Question]:
    color = _pick(rng, COLOR_NAMES)
    other_colors = [c for c in COLOR_NAMES if c != color]
    objects: list[SceneObject] = []
    _add_drifting(rng, objects, g, shapes=[answer], colors=[color], role="target")
    for _ in range(int(rng.integers(1, 3))):
        _add_drifting(rng, objects, g, shapes=list(SHAPES), colors=other_colors)
    q = Question("spatial", "shape", f"What shape is the {color} object?", answer, SHAPES)
    return _scene(rng, g, objects), q


# ---------------------------------------------------------------- temporal


def _distinct_colors(rng: np.random.Generator, n: int) -> list[str]:
    return [COLOR_NAMES[i] for i in rng.permutation(len(COLOR_NAMES))[:n]]


@register_kind("direction", "temporal", DIRECTIONS)
def build_direction(rng: np.random.Generator, answer: str, g: Geometry) -> tuple[Scene, Question]:
    """The target travels 35-50% of the frame in one direction; distractors are static.

    All objects have distinct colours, so "the <color> <shape>" is unique and its
    pixels can be tracked by colour alone.
    """
    n_distractors = int(rng.integers(1, 3))
    colors = _distinct_colors(rng, 1 + n_distractors)
    shape = _pick(rng, SHAPES)
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[answer]
    objects: list[SceneObject] = []

    def make_target() -> SceneObject:
        r = random_radius(rng, g.size)
        lo, hi = EXTENT * r + 1, g.size - EXTENT * r - 1
        travel = rng.uniform(0.35, 0.5) * g.size
        along0 = rng.uniform(lo, hi - travel)  # start on the side it leaves from
        across = rng.uniform(lo, hi)
        a0, a1 = (along0, along0 + travel) if sum(step) > 0 else (along0 + travel, along0)
        start, end = ((a0, across), (a1, across)) if step[0] else ((across, a0), (across, a1))
        return _obj(shape, r, linear_path(start, end, g.num_frames), colors[0], role="target")

    place(objects, make_target, g.size)
    for c in colors[1:]:
        _add_static(rng, objects, g, shapes=list(SHAPES), colors=[c])
    q = Question(
        "temporal",
        "direction",
        f"Which direction does the {colors[0]} {shape} move?",
        answer,
        DIRECTIONS,
    )
    return _scene(rng, g, objects), q


@register_kind("after", "temporal", SHAPES, num_choices=len(SHAPES) - 1)
def build_after(rng: np.random.Generator, answer: str, g: Geometry) -> tuple[Scene, Question]:
    """Three shapes are shown one at a time; the question names the first or second.

    A single frame shows one shape (or none), which is the answer exactly half the
    time whichever it is, so one frame carries no information about the answer.
    """
    named = _pick(rng, [s for s in SHAPES if s != answer])
    rest = next(s for s in SHAPES if s not in (named, answer))
    order = [named, answer, rest] if rng.integers(2) == 0 else [rest, named, answer]
    t = g.num_frames
    b1 = round(t / 3 + rng.uniform(-0.08, 0.08) * t)
    b2 = round(2 * t / 3 + rng.uniform(-0.08, 0.08) * t)
    gap = int(rng.integers(0, 3))  # blank frames between shapes
    spans = [(0, b1), (b1 + gap, b2), (b2 + gap, t)]
    colors = _distinct_colors(rng, 3)
    objects: list[SceneObject] = []
    for shape, color, (f0, f1) in zip(order, colors, spans, strict=True):
        visible = np.zeros(t, dtype=bool)
        visible[f0:f1] = True

        def make(
            shape: str = shape, color: str = color, visible: np.ndarray = visible
        ) -> SceneObject:
            r = random_radius(rng, g.size)
            return _obj(
                shape,
                r,
                random_static(rng, g.size, r, t),
                color,
                role="named" if shape == named else ("target" if shape == answer else "distractor"),
                visible=visible,
            )

        place(objects, make, g.size)
    choices = tuple(s for s in SHAPES if s != named)
    q = Question("temporal", "after", f"What appears after the {named} leaves?", answer, choices)
    return _scene(rng, g, objects, order=order, spans=[list(s) for s in spans]), q


@register_kind("color_change", "temporal", CHANGE_ANSWERS)
def build_color_change(
    rng: np.random.Generator, answer: str, g: Geometry
) -> tuple[Scene, Question]:
    """The (unique) target shape keeps its colour, or switches once in the first or second half.

    "early" means the switch happens at 15-40% of the clip, "late" at 60-85%.
    """
    shape = _pick(rng, SHAPES)
    others = [s for s in SHAPES if s != shape]
    t = g.num_frames
    objects: list[SceneObject] = []
    target = _add_drifting(rng, objects, g, shapes=[shape], colors=list(COLOR_NAMES), role="target")
    events: dict[str, object] = {"change_frame": None}
    if answer != "no":
        lo, hi = (0.15, 0.4) if answer == "early" else (0.6, 0.85)
        frame = int(np.clip(round(rng.uniform(lo, hi) * t), 1, t - 1))
        new = _pick(rng, [c for c in COLOR_NAMES if c != COLOR_NAMES[int(target.colors[0])]])
        target.colors[frame:] = COLOR_NAMES.index(new)
        events = {"change_frame": frame, "change_time": round(frame / g.fps, 4), "to": new}
    for _ in range(int(rng.integers(1, 3))):
        _add_drifting(rng, objects, g, shapes=others, colors=list(COLOR_NAMES))
    q = Question(
        "temporal",
        "color_change",
        f"Does the {shape} change color, and when?",
        answer,
        CHANGE_ANSWERS,
    )
    return _scene(rng, g, objects, **events), q


def _bounce_timing(
    rng: np.random.Generator, bounces: int, duration: float, min_period: float
) -> tuple[float, float]:
    """(first bounce time, wall-to-wall period) giving exactly ``bounces`` bounces in the clip.

    Bounces fall inside [8%, 92%] of the clip, so none sits at an ambiguous clip edge.
    """
    margin = 0.08 * duration
    shortest, longest = max(min_period, duration / (bounces + 1)), duration / max(bounces - 1, 0.5)
    if shortest > longest:
        raise PlacementError(f"{duration} s is too short for {bounces} bounces")
    for _ in range(1000):
        period = rng.uniform(shortest, longest)
        lo = max(margin, duration - bounces * period + margin)
        hi = min(period - margin, duration - margin - (bounces - 1) * period)
        if hi > lo:
            return float(rng.uniform(lo, hi)), float(period)
    raise PlacementError(f"cannot time {bounces} bounces in {duration} s")


@register_kind("bounce", "temporal", BOUNCE_ANSWERS)
def build_bounce(rng: np.random.Generator, answer: str, g: Geometry) -> tuple[Scene, Question]:
    """A ball (the only circle) bounces between two walls of the frame ``answer`` times."""
    t = g.num_frames
    times = np.arange(t) / g.fps
    duration = (t - 1) / g.fps
    first, period = _bounce_timing(rng, int(answer), duration, min_period=4.0 / g.fps)
    colors = _distinct_colors(rng, 3)
    r = random_radius(rng, g.size)
    lo, hi = EXTENT * r + 0.5, g.size - EXTENT * r - 0.5
    horizontal = bool(rng.integers(2))
    wall = lo if rng.integers(2) == 0 else hi
    along = bounce_path(
        lo=lo,
        hi=hi,
        start_wall=wall,
        direction=1 if wall == lo else -1,
        first_bounce=first,
        period=period,
        times=times,
    )
    across = np.full(t, rng.uniform(lo, hi))
    centers = np.round(np.stack([along, across] if horizontal else [across, along], axis=1), 2)
    objects = [_obj("circle", r, centers, colors[0], role="target")]
    for c in colors[1 : 1 + int(rng.integers(0, 3))]:
        _add_static(rng, objects, g, shapes=["square", "triangle"], colors=[c])
    bounce_times = [round(first + k * period, 4) for k in range(int(answer))]
    q = Question(
        "temporal", "bounce", "How many times does the ball bounce?", answer, BOUNCE_ANSWERS
    )
    return _scene(rng, g, objects, axis="x" if horizontal else "y", bounce_times=bounce_times), q


def build_question(
    kind: str, rng: np.random.Generator, answer: str, g: Geometry, *, tries: int = 50
) -> tuple[Scene, Question]:
    """Build ``kind`` for ``answer``, retrying layouts that do not fit."""
    for _ in range(tries):
        try:
            return QUESTION_KINDS[kind].build(rng, answer, g)
        except PlacementError:
            continue
    raise PlacementError(f"could not lay out a {kind!r} scene at {g.size}px")
