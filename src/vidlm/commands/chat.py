"""``vidlm chat VIDEO --model M``: a multi-turn terminal chat about one video.

The video is encoded once (and kept in the feature cache); answers stream. Lines
starting with ``/`` are commands: ``/reset`` (forget the conversation), ``/frames
[PATH]`` (print the sampled frames' timestamps and pathways; write a frame grid to
PATH, default ``frames.png``), ``/help``, ``/quit``. End of input also quits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from vidlm.serve.encoding import CachedEncoder
from vidlm.serve.options import (
    add_cache_args,
    add_generation_args,
    add_model_args,
    add_sampling_args,
    cache_from_args,
    generation_from_args,
    load_model,
    sampling_from_args,
)
from vidlm.serve.session import ChatSession

HELP = ("commands: /reset (new conversation, same video), /frames [PATH] (frame times; "
        "grid picture), /help, /quit")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a video file, an image, or a folder of images")
    add_model_args(parser)
    add_sampling_args(parser)
    add_generation_args(parser)
    add_cache_args(parser)
    parser.add_argument("--system", default=None, help="a system prompt")


def run(args: argparse.Namespace) -> int:
    model = load_model(args)
    session = ChatSession(model, args.video,
                          encoder=CachedEncoder(model, cache_from_args(args)),
                          sampling=sampling_from_args(args, model.config.sampling),
                          system=args.system, generation=generation_from_args(args))
    report = session.start()
    where = "from the cache" if report.from_cache else f"in {report.seconds:.2f} s"
    print(f"{args.video.name}: {report.num_frames} frames -> {report.num_tokens} visual tokens "
          f"({where}). {HELP}", flush=True)
    return chat_loop(session, sys.stdin, sys.stdout)


def chat_loop(session: ChatSession, stdin: TextIO, stdout: TextIO) -> int:
    """Read questions and /commands from ``stdin`` until EOF or /quit."""
    interactive = stdin.isatty()
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if _command(session, text, stdout):
                return 0
            continue
        stdout.write("vidlm> ")
        for piece in session.ask(text):
            stdout.write(piece)
            stdout.flush()
        stdout.write("\n")
        stdout.flush()


def _command(session: ChatSession, text: str, stdout: TextIO) -> bool:
    """Run a slash command; True means quit."""
    name, _, rest = text.partition(" ")
    if name in ("/quit", "/exit"):
        return True
    if name == "/reset":
        session.reset()
        stdout.write("(conversation cleared; the video stays encoded)\n")
    elif name == "/frames":
        for i, t, mark in session.frame_table():
            stdout.write(f"  frame {i:3d}  t={t:8.3f} s  {mark}\n".rstrip() + "\n")
        path = Path(rest.strip() or "frames.png")
        stdout.write(f"frame grid written to {session.save_grid(path)}\n")
    elif name == "/help":
        stdout.write(HELP + "\n")
    else:
        stdout.write(f"unknown command {name}; {HELP}\n")
    stdout.flush()
    return False
