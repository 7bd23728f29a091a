"""Resolve media URLs from requests to local files, safely.

Accepted forms, for ``image_url`` and ``video_url`` parts alike:

* ``data:<mime>;base64,<payload>``: decoded to a temporary file (size-limited);
  the mime type must be ``video/*`` or ``image/*`` (``application/octet-stream``
  is also accepted).
* ``file:///abs/path`` and plain paths (absolute, or relative to a media root):
  read only when the fully resolved path (symlinks followed) lies inside one of the
  ``media_roots``. ``..`` traversal and symlinks pointing out are refused.
* ``http://`` / ``https://``: refused unless ``allow_url``; then downloaded with a
  byte limit (checked on ``Content-Length`` and while streaming) and a total time
  limit, following at most 3 redirects.

Anything refused raises :class:`vidlm.serve.api_errors.APIError` (400, or 413 for
size), naming the request field in ``param``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vidlm.serve.api_errors import APIError, bad_request

MIME_SUFFIX = {
    "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
    "video/x-matroska": ".mkv", "video/x-msvideo": ".avi", "video/mpeg": ".mpg",
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
    "image/bmp": ".bmp",
}


@dataclass(frozen=True)
class MediaPolicy:
    """Where media may come from, and how big it may be.

    ``media_roots``: folders local paths must resolve into (empty: local files refused).
    ``max_media_bytes``: per item, for data: URLs and downloads.
    ``url_timeout_s``: total seconds allowed for one download.
    """

    media_roots: tuple[Path, ...] = ()
    allow_url: bool = False
    max_media_bytes: int = 64 * 1024 * 1024
    url_timeout_s: float = 20.0


@dataclass
class ResolvedMedia:
    path: Path
    temporary: bool


class MediaResolver:
    """Turns request URLs into readable local files; temporary files go in ``scratch``."""

    def __init__(self, policy: MediaPolicy, scratch: str | Path | None = None) -> None:
        self.policy = policy
        self.roots = tuple(Path(os.path.realpath(r)) for r in policy.media_roots)
        self.scratch = Path(scratch or tempfile.gettempdir())
        self.scratch.mkdir(parents=True, exist_ok=True)

    def resolve(self, url: object, *, param: str) -> ResolvedMedia:
        if not isinstance(url, str) or not url.strip():
            raise bad_request("media url must be a non-empty string", param=param)
        url = url.strip()
        if "\x00" in url:
            raise bad_request("media url contains a NUL byte", param=param)
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return self._from_data_url(url, param)
        if scheme in ("http", "https"):
            return self._from_http(url, param)
        if scheme == "file":
            parsed = urllib.parse.urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                raise bad_request("file:// URLs must name a local path (no host)", param=param)
            return ResolvedMedia(self._local(urllib.parse.unquote(parsed.path), param), False)
        if len(scheme) > 1 and "/" not in scheme:  # 'C:' style single letters fall through
            raise bad_request(f"unsupported media URL scheme {scheme!r}; use data:, file:, "
                              "a path, or http(s) with --allow-url", param=param,
                              code="unsupported_media_url")
        return ResolvedMedia(self._local(url, param), False)

    # ---- local paths ---------------------------------------------------------------
    def _local(self, raw: str, param: str) -> Path:
        if not self.roots:
            raise APIError(400, "local media paths are disabled on this server "
                           "(start it with --media-root DIR)", param=param,
                           code="media_path_refused")
        candidates = [Path(raw)] if os.path.isabs(raw) else [r / raw for r in self.roots]
        inside = [real for real in (Path(os.path.realpath(c)) for c in candidates)
                  if any(real.is_relative_to(root) for root in self.roots)]
        for real in inside:
            if real.is_file():
                return real
        if inside:
            raise bad_request(f"media file {raw!r} does not exist under the media roots",
                              param=param, code="media_not_found")
        raise APIError(400, f"media path {raw!r} is outside the allowed media roots",
                       param=param, code="media_path_refused")

    # ---- data: URLs ----------------------------------------------------------------
    def _from_data_url(self, url: str, param: str) -> ResolvedMedia:
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise bad_request("malformed data: URL (no comma)", param=param, code="invalid_media")
        fields = header.split(";")
        mime = fields[0].strip().lower() or "text/plain"
        if "base64" not in [f.strip().lower() for f in fields[1:]]:
            raise bad_request("data: URLs must be base64-encoded", param=param,
                              code="invalid_media")
        if not (mime.startswith(("video/", "image/")) or mime == "application/octet-stream"):
            raise bad_request(f"data: URL media type {mime!r} is not a video or image",
                              param=param, code="invalid_media")
        limit = self.policy.max_media_bytes
        if len(payload) * 3 // 4 > limit + 3:
            raise _too_large(param, limit)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request(f"data: URL payload is not valid base64 ({exc})", param=param,
                              code="invalid_media") from exc
        if not data:
            raise bad_request("data: URL payload is empty", param=param, code="invalid_media")
        return self._write_temp([data], MIME_SUFFIX.get(mime, ".bin"))

    def _write_temp(self, blocks: list[bytes] | Iterator[bytes], suffix: str) -> ResolvedMedia:
        fd, name = tempfile.mkstemp(prefix="vidlm-media-", suffix=suffix, dir=self.scratch)
        try:
            with os.fdopen(fd, "wb") as fh:
                for block in blocks:
                    fh.write(block)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        return ResolvedMedia(Path(name), True)

    # ---- http(s) -------------------------------------------------------------------
    def _from_http(self, url: str, param: str) -> ResolvedMedia:
        if not self.policy.allow_url:
            raise APIError(400, "http(s) media URLs are disabled on this server "
                           "(start it with --allow-url)", param=param, code="media_url_refused")
        import httpx

        limit, budget = self.policy.max_media_bytes, self.policy.url_timeout_s
        deadline = time.monotonic() + budget

        def blocks(resp: httpx.Response) -> Iterator[bytes]:
            total = 0
            for block in resp.iter_bytes(64 * 1024):
                total += len(block)
                if total > limit:
                    raise _too_large(param, limit)
                if time.monotonic() > deadline:
                    raise _timeout(param, budget)
                yield block

        try:
            with httpx.Client(follow_redirects=True, max_redirects=3,
                              timeout=httpx.Timeout(budget)) as client, \
                    client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise bad_request(f"fetching media URL gave HTTP {resp.status_code}",
                                      param=param, code="media_fetch_failed")
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise _too_large(param, limit)
                suffix = MIME_SUFFIX.get(resp.headers.get("content-type", "").split(";")[0], ".bin")
                return self._write_temp(blocks(resp), suffix)
        except httpx.TimeoutException as exc:
            raise _timeout(param, budget) from exc
        except httpx.HTTPError as exc:
            raise bad_request(f"fetching media URL failed: {type(exc).__name__}: {exc}",
                              param=param, code="media_fetch_failed") from exc

    @staticmethod
    def release(items: list[ResolvedMedia]) -> None:
        for item in items:
            if item.temporary:
                with contextlib.suppress(FileNotFoundError):
                    item.path.unlink()


def _too_large(param: str, limit: int) -> APIError:
    return APIError(413, f"media item is larger than the server's limit of {limit} bytes",
                    param=param, code="media_too_large")


def _timeout(param: str, seconds: float) -> APIError:
    return bad_request(f"fetching media URL took longer than {seconds:g} s", param=param,
                       code="media_fetch_timeout")
