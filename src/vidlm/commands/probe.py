"""``vidlm probe VIDEO [--json] [--exact]``: print a video's metadata."""

from __future__ import annotations

import argparse
import json

from vidlm.video import probe


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file, image, or folder of frames")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--exact", action="store_true",
                        help="count every packet when the container stores no frame count")
    parser.add_argument("--folder-fps", type=float, default=1.0,
                        help="frame rate of a folder of frames (default 1)")


def run(args: argparse.Namespace) -> int:
    info = probe(args.video, exact=args.exact, folder_fps=args.folder_fps)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    frames = f"{info.num_frames}" + ("" if info.frames_exact else " (estimated)")
    gop = f"{info.keyframe_interval:.3g} s" if info.keyframe_interval is not None else "unknown"
    rows = [
        ("path", info.path),
        ("kind", f"{info.kind} ({info.container})"),
        ("codec", info.codec),
        ("size", f"{info.width}x{info.height}" + (f" (rotated {info.rotation} deg)"
                                                   if info.rotation else "")),
        ("duration", f"{info.duration:.3f} s"),
        ("fps", f"{info.avg_fps:.3f}" + (" (variable)" if info.variable_fps else "")),
        ("frames", frames),
        ("keyframe interval", gop),
        ("start time", f"{info.start_time:.3f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
