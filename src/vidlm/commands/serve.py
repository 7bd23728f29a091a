"""``vidlm serve --model M``: the OpenAI-compatible HTTP server (see docs/serving.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidlm.errors import ConfigError
from vidlm.serve.options import add_cache_args, add_model_args, cache_from_args, load_model
from vidlm.serve.protocol import RequestLimits


def register(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("--served-model-name", default=None,
                        help="the id clients send as 'model' (default: the --model folder name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--media-root", type=Path, action="append", default=[],
                        help="a folder local media paths may come from (repeatable); "
                             "without one, local paths are refused")
    parser.add_argument("--allow-url", action="store_true",
                        help="allow http(s) media URLs (size- and time-limited)")
    parser.add_argument("--url-timeout", type=float, default=20.0,
                        help="seconds allowed to fetch one media URL")
    parser.add_argument("--max-media-mb", type=float, default=64.0,
                        help="largest media item (data: URL or download)")
    parser.add_argument("--api-key", default=os.environ.get("VIDLM_API_KEY"),
                        help="require 'Authorization: Bearer KEY' (default $VIDLM_API_KEY)")
    parser.add_argument("--max-body-mb", type=float, default=96.0,
                        help="largest request body")
    parser.add_argument("--max-queue", type=int, default=32,
                        help="requests that may wait while one runs; more get 503")
    parser.add_argument("--max-frames-limit", type=int, default=128,
                        help="largest num_frames/max_frames a request may ask for")
    parser.add_argument("--max-tokens-limit", type=int, default=2048)
    add_cache_args(parser)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from vidlm.serve.app import ServerSettings
    from vidlm.serve.server import ServeOptions, build_app

    for root in args.media_root:
        if not root.is_dir():
            raise ConfigError(f"--media-root {root}: not a folder")
    for flag, value in (("--max-body-mb", args.max_body_mb), ("--max-media-mb", args.max_media_mb),
                        ("--url-timeout", args.url_timeout)):
        if value <= 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    if args.max_queue < 0:
        raise ConfigError(f"--max-queue must be >= 0, got {args.max_queue}")
    model = load_model(args)
    limits = RequestLimits(max_frames_limit=args.max_frames_limit,
                           max_tokens_limit=args.max_tokens_limit)
    settings = ServerSettings(api_key=args.api_key or None,
                              max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                              max_queue=args.max_queue, limits=limits)
    name = args.served_model_name or Path(args.model).name or str(args.model)
    options = ServeOptions(model_name=name, media_roots=tuple(args.media_root),
                           allow_url=args.allow_url, url_timeout_s=args.url_timeout,
                           max_media_mb=args.max_media_mb, settings=settings)
    app = build_app(model, options, cache=cache_from_args(args))
    print(f"vidlm serve: model {name!r} on http://{args.host}:{args.port}/v1 "
          f"(media roots: {[str(r) for r in args.media_root] or 'none'}, "
          f"urls: {'allowed' if args.allow_url else 'refused'}, "
          f"api key: {'required' if settings.api_key else 'none'})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
