"""The ``vidlm`` command line.

Each sub-command lives in its own module under :mod:`vidlm.commands` and exposes
``register(parser)`` (add its arguments) and ``run(args) -> int`` (do the work).
Modules are imported only when their command runs, so ``vidlm --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under vidlm.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("probe", "Print a video's metadata (duration, fps, frames, rotation, codec)."),
    "frames": ("frames", "Sample frames from a video and write a frame-grid picture."),
    "tokens": ("tokens", "Print the visual-token budget of a video under a connector."),
    "ask": ("ask", "Ask a model one question about a video or image."),
    "chat": ("chat", "Multi-turn terminal chat about one video."),
    "batch": ("batch", "Answer a JSONL file of video questions, resumably."),
    "serve": ("serve", "Run the OpenAI-compatible HTTP server."),
    "demo": ("demo", "Run the Gradio web demo."),
    "data": ("data", "Dataset tools: validate LLaVA JSON, generate synthetic videos."),
    "train": ("train", "Train or fine-tune a video LLM from a YAML config."),
    "eval": ("eval", "Evaluate a model on a video benchmark."),
    "demo-offline": ("demo_offline", "The offline end-to-end demo (the README's main job)."),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from vidlm import __version__

    parser = argparse.ArgumentParser(
        prog="vidlm", description="Video LLMs: decode, ask, train, serve, evaluate.")
    parser.add_argument("--version", action="version", version=f"vidlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(f"vidlm.commands.{module}")
            mod.register(p)
            p.set_defaults(_run=mod.run)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, except that a command taking positional ``KEY=VALUE`` overrides
    (``_overrides_anywhere``) also gets those written after its options: argparse
    matches a ``nargs="*"`` positional once, so ``train CFG --resume a=1`` would fail."""
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "_overrides_anywhere", False) and all(
            "=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = _parse(parser, argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv else 2
    from vidlm.errors import VidlmError

    try:
        return int(args._run(args) or 0)
    except VidlmError as exc:  # user-facing errors: one clear sentence, no stack trace
        print(f"vidlm {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
