"""``vidlm tokens VIDEO``: the visual-token budget of a video under a connector, before any model.

Samples the video's frame times (demux only), prints frames sampled, tokens per
pathway and in total, the context left for text and the plain per-frame cost, and
optionally writes a PNG frame grid marking slow and fast frames (only that decodes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vidlm.config import apply_overrides, to_dict
from vidlm.errors import ConfigError, VideoError
from vidlm.model.config import SamplingConfig

DEFAULT_GRID = 24
DEFAULT_CONTEXT = 8192
GRID_THUMB = 160  # short side, in pixels, of each frame in the PNG grid


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file, image, or folder of frames")
    parser.add_argument("--connector", default="slowfast",
                        help="connector name (mlp2x_gelu, temporal_pool, slowfast, perceiver) "
                             "or preset (slowfast_llava_2024, slowfast_llava_1_5); "
                             "default: slowfast")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--fps", type=float, help="sample F frames per second (with --max-frames)")
    how.add_argument("--num-frames", type=int, help="sample N uniform frames")
    parser.add_argument("--max-frames", type=int,
                        help="with --fps: fall back to this many uniform frames when exceeded")
    parser.add_argument("--grid-size", default=None,
                        help=f"vision tower patch grid, 24 or 24x24 (default: preset's or "
                             f"{DEFAULT_GRID})")
    parser.add_argument("--cls", action="store_true", help="the vision tower keeps a CLS token")
    parser.add_argument("--context", type=int, default=DEFAULT_CONTEXT,
                        help=f"language-model context length (default {DEFAULT_CONTEXT})")
    parser.add_argument("--text-tokens", type=int, default=0,
                        help="tokens of prompt text to reserve (default 0)")
    parser.add_argument("--grid", dest="grid_png", type=Path, default=None,
                        help="write a PNG frame grid marking slow and fast frames")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="connector.FIELD=VALUE", help="override a connector field")
    parser.add_argument("--json", action="store_true", help="print the budget as JSON")


def run(args: argparse.Namespace) -> int:
    from vidlm.model.budget import plan_video

    connector, sampling, grid = resolve(args)
    budget = plan_video(args.video, connector, sampling, grid=grid, context_length=args.context,
                        text_tokens=args.text_tokens, has_cls=args.cls)
    if args.grid_png is not None:
        write_frame_grid(args.video, sampling, budget.frame_marks(), args.grid_png,
                         expected=budget.num_frames)
    if args.json:
        out: dict[str, Any] = budget.to_dict()
        out.update(connector_config=to_dict(connector), sampling=to_dict(sampling),
                   grid_png=str(args.grid_png) if args.grid_png else None)
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console

    from vidlm.model.budget import render_budget_table

    console = Console()
    console.print(render_budget_table(budget))
    if not budget.fits:
        console.print(f"[red]The video's {budget.total_tokens:,} visual tokens plus "
                      f"{budget.text_tokens:,} text tokens exceed the {budget.context_length:,}-"
                      "token context.[/red]")
    if args.grid_png is not None:
        console.print(f"frame grid written to {args.grid_png}", soft_wrap=True)
    return 0


def resolve(args: argparse.Namespace) -> tuple[Any, SamplingConfig, tuple[int, int]]:
    """The connector config, sampling config and patch grid the arguments describe."""
    from vidlm.model.connectors import (
        available_connectors,
        available_presets,
        connector_config_from_dict,
        get_preset,
    )

    if args.connector in available_presets():
        preset = get_preset(args.connector)
        connector, sampling, grid = preset.connector, preset.sampling, preset.grid
    elif args.connector in available_connectors():
        connector = connector_config_from_dict({"name": args.connector})
        sampling, grid = SamplingConfig(), (DEFAULT_GRID, DEFAULT_GRID)
    else:
        raise ConfigError(f"unknown connector or preset {args.connector!r}; connectors: "
                          f"{available_connectors()}, presets: {available_presets()}")
    if args.overrides:
        connector = override_connector(connector, args.overrides)
    if args.grid_size is not None:
        grid = parse_grid(args.grid_size)
    return connector, sampling_from_args(args, sampling), grid


def override_connector(connector: Any, overrides: list[str]) -> Any:
    """Apply ``connector.field=value`` overrides; ``connector.name=...`` switches connector."""
    from vidlm.model.connectors import connector_config_from_dict

    bad = [o for o in overrides if not o.startswith("connector.")]
    if bad:
        raise ConfigError(f"--set takes connector.FIELD=VALUE, got {bad}")
    data = apply_overrides({"connector": to_dict(connector)}, overrides)["connector"]
    if any(o.startswith("connector.name=") for o in overrides):
        base = {"name": data["name"]}
        changed = {o.split("=", 1)[0].split(".", 1)[1] for o in overrides}
        data = {**base, **{k: v for k, v in data.items() if k in changed}}
    return connector_config_from_dict(data, where="--set")


def sampling_from_args(args: argparse.Namespace, sampling: SamplingConfig) -> SamplingConfig:
    from dataclasses import replace

    if args.fps is not None:
        sampling = replace(sampling, mode="fps", fps=args.fps)
    elif args.num_frames is not None:
        sampling = replace(sampling, mode="uniform", num_frames=args.num_frames)
    if args.max_frames is not None:
        if sampling.mode != "fps":
            raise ConfigError("--max-frames applies to fps sampling; add --fps or use --num-frames")
        sampling = replace(sampling, max_frames=args.max_frames)
    for key in ("fps", "num_frames", "max_frames"):
        value = getattr(args, key)
        if value is not None and not value > 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be positive, got {value}")
    return sampling


def parse_grid(text: str) -> tuple[int, int]:
    """``"24"`` -> (24, 24); ``"24x32"`` -> (24, 32)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise ConfigError(f"--grid-size must look like 24 or 24x24, got {text!r}")
    return (values[0], values[-1])


def write_frame_grid(video: str, sampling: SamplingConfig, marks: dict[int, str], out: Path,
                     *, expected: int) -> None:
    """Decode the sampled frames (small) and save a PNG grid with slow/fast marks."""
    from vidlm.video import policy_from_config, read
    from vidlm.video.grid import save_frame_grid

    frames = read(video, policy_from_config(sampling), size=GRID_THUMB)
    if len(frames) != expected:
        raise VideoError(video, f"decoded {len(frames)} frames but sampled {expected}")
    save_frame_grid(frames, out, marks=marks)
