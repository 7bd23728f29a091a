"""Visual-token budgets: how many tokens a video costs under a connector, before any model runs.

:func:`token_budget` is pure: frame count, patch grid and connector config in, a
:class:`TokenBudget` out (tokens per pathway, the total, the context left for text,
and what plain per-frame tokens would cost). :func:`plan_video` adds a real video:
it resolves the sampling policy against the stream's frame times (demuxing only, no
decoding) so the frame count and timestamps are the ones a model run would use.
:func:`render_budget_table` formats a budget for the terminal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from vidlm.errors import ConfigError
from vidlm.model.config import SamplingConfig
from vidlm.model.connectors.base import ConnectorConfig, Grid, check_positive

# Pathways whose frames the frame-grid picture marks, by pathway name.
MARKED_PATHWAYS = ("slow", "fast")


@dataclass(frozen=True)
class PathwayBudget:
    """Tokens of one pathway. ``frames``: positions (0-based) among the sampled frames."""

    name: str
    frames: tuple[int, ...]
    units: int
    tokens_per_unit: int
    tokens: int


@dataclass(frozen=True)
class TokenBudget:
    """The visual-token cost of ``num_frames`` frames on a ``grid`` under one connector.

    ``per_frame_tokens``: the plain cost, every patch of every frame (``T * h * w``).
    ``context_left``: ``context_length - total_tokens - text_tokens``; negative means the
    prompt does not fit. ``timestamps``/``video`` are set by :func:`plan_video`.
    """

    connector: str
    num_frames: int
    grid: Grid
    has_cls: bool
    pathways: tuple[PathwayBudget, ...]
    extra_tokens: int
    total_tokens: int
    per_frame_tokens: int
    context_length: int
    text_tokens: int
    context_left: int
    timestamps: tuple[float, ...] | None = None
    source_indices: tuple[int, ...] | None = None
    video: str | None = None
    duration: float | None = None
    video_info: dict[str, Any] | None = None

    @property
    def fits(self) -> bool:
        return self.context_left >= 0

    @property
    def compression(self) -> float:
        """How many times fewer tokens than plain per-frame tokens."""
        return self.per_frame_tokens / self.total_tokens

    def pathway(self, name: str) -> PathwayBudget | None:
        return next((p for p in self.pathways if p.name == name), None)

    def frame_marks(self) -> dict[int, str]:
        """Frame position -> ``"slow"`` or ``"fast"`` (slow wins: slow frames also feed fast)."""
        marks: dict[int, str] = {}
        for name in reversed(MARKED_PATHWAYS):
            p = self.pathway(name)
            for i in p.frames if p else ():
                marks[i] = name
        return marks

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(fits=self.fits, compression=self.compression)
        return data


def token_budget(num_frames: int, grid: Grid, connector_config: ConnectorConfig, *,
                 context_length: int, text_tokens: int = 0, has_cls: bool = False) -> TokenBudget:
    """The budget of ``num_frames`` frames on an ``(h, w)`` patch grid (pure; no model)."""
    check_positive("token budget", context_length=context_length)
    if text_tokens < 0:
        raise ConfigError(f"token budget: text_tokens must be >= 0, got {text_tokens}")
    plan = connector_config.token_plan(num_frames, grid, has_cls=has_cls)
    pathways = tuple(PathwayBudget(p.name, p.frames, p.units, p.tokens_per_unit, p.tokens)
                     for p in plan.pathways)
    return TokenBudget(
        connector=connector_config.name, num_frames=num_frames, grid=tuple(grid), has_cls=has_cls,
        pathways=pathways, extra_tokens=plan.extra_tokens, total_tokens=plan.total,
        per_frame_tokens=num_frames * grid[0] * grid[1], context_length=context_length,
        text_tokens=text_tokens, context_left=context_length - plan.total - text_tokens,
    )


@dataclass(frozen=True)
class SampledTimes:
    """The frames a sampling policy picks from a video, found without decoding."""

    indices: np.ndarray  # int64 (T,) source frame indices
    timestamps: np.ndarray  # float64 (T,) seconds from the start
    duration: float


def sample_times(path: str | Path, sampling: SamplingConfig) -> SampledTimes:
    """Resolve ``sampling`` against the real frame times of ``path`` without decoding.

    The same choice :func:`vidlm.video.read` makes: a video's frame pts from its packet
    index; an image is one frame at 0 s; a folder's images are frames at the reader's
    default folder frame rate.
    """
    from vidlm.video.container import check_file
    from vidlm.video.images import DEFAULT_FOLDER_FPS, folder_images, is_image_file
    from vidlm.video.index import frame_index
    from vidlm.video.sampling import policy_from_config

    policy = policy_from_config(sampling)
    path = Path(path)
    check_file(path)
    if path.is_dir():
        count = len(folder_images(path))
        times = np.arange(count, dtype=np.float64) / DEFAULT_FOLDER_FPS
        duration = count / DEFAULT_FOLDER_FPS
    elif is_image_file(path):
        return SampledTimes(np.zeros(1, np.int64), np.zeros(1), 0.0)
    else:
        index = frame_index(path)
        times, duration = index.times, index.duration
    indices = policy.select(times, duration)
    return SampledTimes(indices=indices, timestamps=times[indices], duration=duration)


def plan_video(path: str | Path, connector_config: ConnectorConfig, sampling: SamplingConfig, *,
               grid: Grid = (24, 24), context_length: int = 8192, text_tokens: int = 0,
               has_cls: bool = False) -> TokenBudget:
    """The budget of a real video: frames sampled as a model run would, then a token budget.

    ``path``: a video, an image or a folder of frames (see :func:`vidlm.video.probe`).
    """
    from vidlm.video import probe

    info = probe(path)
    sampled = sample_times(path, sampling)
    budget = token_budget(len(sampled.indices), grid, connector_config,
                          context_length=context_length, text_tokens=text_tokens, has_cls=has_cls)
    return dataclasses.replace(
        budget, video=str(path), duration=sampled.duration, video_info=info.to_dict(),
        timestamps=tuple(float(t) for t in sampled.timestamps),
        source_indices=tuple(int(i) for i in sampled.indices))


def _times_text(budget: TokenBudget, frames: tuple[int, ...]) -> str:
    if budget.timestamps is None or not frames:
        return ""
    ts = [budget.timestamps[i] for i in frames]
    return f"{ts[0]:.2f}s .. {ts[-1]:.2f}s"


def render_budget_table(budget: TokenBudget) -> Table:
    """A rich table of ``budget``: frames, tokens per pathway, total, context, per-frame cost."""
    h, w = budget.grid
    title = f"Visual-token budget: {budget.connector}"
    if budget.video:
        title += f" on {Path(budget.video).name}"
    if budget.video_info:
        v = budget.video_info
        title += (f"\n{v['kind']} {v['width']}x{v['height']}, {v['duration']:.2f}s, "
                  f"{v['avg_fps']:.2f} fps, {v['num_frames']} frames")
    table = Table(title=title, show_lines=False)
    table.add_column("item")
    table.add_column("frames", justify="right")
    table.add_column("tokens each", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("detail")
    all_frames = tuple(range(budget.num_frames))
    sampled = [_times_text(budget, all_frames)]
    if budget.duration is not None:
        sampled.append(f"of {budget.duration:.2f}s")
    table.add_row("frames sampled", str(budget.num_frames), "", "",
                  " ".join(x for x in sampled if x))
    for p in budget.pathways:
        units = str(p.units) if p.units == len(p.frames) else f"{p.units} windows"
        where = "all frames" if p.frames == all_frames else _positions_text(p.frames)
        table.add_row(f"{p.name} pathway", units, f"{p.tokens_per_unit:,}", f"{p.tokens:,}", where)
    if budget.extra_tokens:
        table.add_row("separator", "", "", f"{budget.extra_tokens:,}", "learned token")
    table.add_row("[bold]visual tokens[/bold]", "", "", f"[bold]{budget.total_tokens:,}[/bold]",
                  f"grid {h}x{w}{' + CLS' if budget.has_cls else ''}")
    table.add_row("text tokens", "", "", f"{budget.text_tokens:,}", "")
    left = f"{budget.context_left:,}"
    table.add_row("context left for text", "", "",
                  left if budget.fits else f"[red]{left}[/red]",
                  f"of {budget.context_length:,}" + ("" if budget.fits else " (does not fit)"))
    table.add_row("plain per-frame tokens", str(budget.num_frames), f"{h * w:,}",
                  f"{budget.per_frame_tokens:,}", f"{budget.compression:.1f}x the connector's")
    return table


def _positions_text(frames: tuple[int, ...], limit: int = 12) -> str:
    shown = ", ".join(str(i) for i in frames[:limit])
    return f"positions {shown}{', ...' if len(frames) > limit else ''}"
