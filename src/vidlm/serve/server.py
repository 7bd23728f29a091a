"""Assemble the server (model + cache + media policy + limits) and run it with uvicorn.

:func:`build_app` is what ``vidlm serve``, the tests and ``benchmarks/serve_load.py``
use; :class:`BackgroundServer` runs an app on a loopback socket in a thread.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from vidlm.feature_cache import FeatureCache
from vidlm.serve.app import ServerSettings, create_app
from vidlm.serve.backend import ChatBackend
from vidlm.serve.encoding import CachedEncoder
from vidlm.serve.media import MediaPolicy, MediaResolver

if TYPE_CHECKING:
    import uvicorn

    from vidlm.model.videolm import VideoLM


@dataclass(frozen=True)
class ServeOptions:
    model_name: str
    media_roots: tuple[Path, ...] = ()
    allow_url: bool = False
    url_timeout_s: float = 20.0
    max_media_mb: float = 64.0
    settings: ServerSettings = field(default_factory=ServerSettings)
    scratch: Path | None = None


def build_app(model: VideoLM, options: ServeOptions, cache: FeatureCache | None = None) -> FastAPI:
    policy = MediaPolicy(media_roots=options.media_roots, allow_url=options.allow_url,
                         max_media_bytes=int(options.max_media_mb * 1024 * 1024),
                         url_timeout_s=options.url_timeout_s)
    scratch = options.scratch or Path(tempfile.mkdtemp(prefix="vidlm-serve-"))
    backend = ChatBackend(model, model_name=options.model_name,
                          encoder=CachedEncoder(model, cache),
                          resolver=MediaResolver(policy, scratch=scratch))
    return create_app(backend, options.settings)


def free_loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class BackgroundServer:
    """``with BackgroundServer(app) as base_url:`` serves ``app`` on 127.0.0.1 in a thread."""

    def __init__(self, app: FastAPI, *, log_level: str = "warning") -> None:
        import uvicorn

        self._sock = free_loopback_socket()
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_keep_alive=30)
        self.server: uvicorn.Server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True, name="vidlm-uvicorn")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.base_url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
