"""``vidlm frames VIDEO``: sample frames, print their timestamps, write a frame grid."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from vidlm.errors import ConfigError
from vidlm.video import Frames, fps, parse_size, save_frame_grid, stream, uniform


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file, image, or folder of frames")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--num-frames", type=int, help="N frames at the middles of N equal segments")
    how.add_argument("--fps", type=float, help="frames per second (default 1)")
    parser.add_argument("--max-frames", type=int, default=64,
                        help="with --fps: fall back to this many uniform frames (default 64)")
    parser.add_argument("--size", type=str, default=None,
                        help="output size: N (short side), WxH (stretch), WxH:pad, WxH:crop")
    parser.add_argument("--grid", type=Path, default=None, help="write a frame-grid picture here")
    parser.add_argument("--keyframes-only", action="store_true",
                        help="decode only keyframes (fast, approximate timestamps)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on truncated or damaged files instead of warning")
    parser.add_argument("--folder-fps", type=float, default=1.0,
                        help="frame rate of a folder of frames (default 1)")
    parser.add_argument("--json", action="store_true", help="print timestamps and indices as JSON")


def run(args: argparse.Namespace) -> int:
    if args.num_frames is not None:
        if args.num_frames < 1:
            raise ConfigError("--num-frames must be at least 1")
        policy = uniform(args.num_frames)
    else:
        if (args.fps is not None and args.fps <= 0) or args.max_frames < 1:
            raise ConfigError("--fps must be > 0 and --max-frames at least 1")
        policy = fps(args.fps or 1.0, args.max_frames)
    try:
        size = parse_size(args.size) if args.size else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    chunks = []
    with warnings.catch_warnings(record=True) as caught, \
            tqdm(desc="decoding", unit="frame", disable=None, leave=False) as bar:
        warnings.simplefilter("always")
        for chunk in stream(args.video, policy, chunk=16, size=size, strict=args.strict,
                            keyframes_only=args.keyframes_only, folder_fps=args.folder_fps):
            chunks.append(chunk)
            bar.update(len(chunk))
    for w in caught:  # damaged input: one line each, no source location
        print(f"vidlm frames: warning: {w.message}", file=sys.stderr)
    frames = Frames.concatenate(chunks)
    _report(frames, args)
    if args.grid is not None and len(frames):
        save_frame_grid(frames, args.grid, title=Path(args.video).name)
        print(f"grid: {args.grid}")
    return 0


def _report(frames: Frames, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"num_frames": len(frames), "shape": list(frames.frames.shape),
                          "timestamps": [round(float(t), 6) for t in frames.timestamps],
                          "indices": [int(i) for i in frames.indices]}))
        return
    shape = "x".join(str(d) for d in frames.frames.shape)
    print(f"{len(frames)} frames, array {shape} uint8")
    for t, i in zip(frames.timestamps, frames.indices, strict=True):
        print(f"  {t:10.3f} s  frame {int(i)}")
