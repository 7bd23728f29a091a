"""Command-line options shared by ``vidlm chat``, ``batch``, ``serve`` and ``demo``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlm.errors import ConfigError
from vidlm.feature_cache import DEFAULT_MAX_BYTES, FeatureCache
from vidlm.model.config import SamplingConfig
from vidlm.serve.api_errors import APIError
from vidlm.serve.protocol import RequestLimits, parse_sampling

if TYPE_CHECKING:
    from vidlm.model.videolm import VideoLM

CACHE_ENV = "VIDLM_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$VIDLM_CACHE_DIR`` or ``~/.cache/vidlm/features``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "vidlm" / "features"


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="a vidlm checkpoint folder or a supported transformers checkpoint")
    parser.add_argument("--connector", default=None,
                        help="override the model's connector (e.g. slowfast)")


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("frame sampling (default: the model's own)")
    g.add_argument("--num-frames", type=int, default=None, help="uniform: this many frames")
    g.add_argument("--fps", type=float, default=None, help="frames per second (capped by "
                   "--max-frames)")
    g.add_argument("--max-frames", type=int, default=None, help="cap on the frame count")


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("generation")
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)


def add_cache_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("feature cache")
    g.add_argument("--cache-dir", type=Path, default=None,
                   help=f"where encoded videos are kept (default ${CACHE_ENV} or "
                        "~/.cache/vidlm/features)")
    g.add_argument("--cache-max-gb", type=float, default=DEFAULT_MAX_BYTES / 1024**3,
                   help="size bound; least recently used entries are evicted")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the cache")


def load_model(args: argparse.Namespace) -> VideoLM:
    import vidlm

    overrides: dict[str, Any] = {}
    if getattr(args, "connector", None):
        overrides["connector"] = args.connector
    model = vidlm.load(args.model, **overrides)
    model.eval()
    return model


def sampling_from_args(args: argparse.Namespace, default: SamplingConfig,
                       limits: RequestLimits | None = None) -> SamplingConfig:
    """The sampling the flags ask for, validated like a server request."""
    fields = {"num_frames": args.num_frames, "fps": args.fps, "max_frames": args.max_frames}
    try:
        return parse_sampling(fields, default, limits or RequestLimits(max_frames_limit=1024))
    except APIError as exc:
        raise ConfigError(f"--{(exc.param or 'sampling').replace('_', '-')}: {exc.message}") \
            from None


def generation_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
            "top_p": args.top_p, "seed": args.seed}


def cache_from_args(args: argparse.Namespace) -> FeatureCache | None:
    if args.no_cache:
        return None
    if args.cache_max_gb <= 0:
        raise ConfigError(f"--cache-max-gb must be positive, got {args.cache_max_gb}")
    return FeatureCache(args.cache_dir or default_cache_dir(),
                        max_bytes=int(args.cache_max_gb * 1024**3))
