"""Media URL resolution: data: URLs, paths under media roots, traversal, symlinks, http limits."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidlm.serve.api_errors import APIError
from vidlm.serve.media import MediaPolicy, MediaResolver


@pytest.fixture()
def roots(tmp_path: Path) -> tuple[Path, Path]:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "sub" / "clip.mp4").write_bytes(b"inside")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "passwd.mp4").write_bytes(b"outside")
    return media, outside


def _resolver(media: Path, tmp_path: Path, **kw: object) -> MediaResolver:
    return MediaResolver(MediaPolicy(media_roots=(media,), **kw), scratch=tmp_path / "scratch")


def _code(exc: pytest.ExceptionInfo[APIError]) -> tuple[int, str | None]:
    return exc.value.status, exc.value.code


def test_paths_inside_root_resolve(roots: tuple[Path, Path], tmp_path: Path) -> None:
    media, _ = roots
    r = _resolver(media, tmp_path)
    target = (media / "sub" / "clip.mp4").resolve()
    assert r.resolve(str(media / "sub" / "clip.mp4"), param="p").path == target
    assert r.resolve("sub/clip.mp4", param="p").path == target
    assert r.resolve(f"file://{media}/sub/clip.mp4", param="p").path == target
    assert r.resolve(f"file://localhost{media}/sub/clip%2Emp4", param="p").path == target
    assert r.resolve("sub/../sub/clip.mp4", param="p").path == target  # stays inside: fine


@pytest.mark.parametrize("make_url", [
    lambda m, o: str(o / "passwd.mp4"),
    lambda m, o: f"{m}/../secret/passwd.mp4",
    lambda m, o: "../secret/passwd.mp4",
    lambda m, o: f"file://{m}/sub/../../secret/passwd.mp4",
    lambda m, o: "/etc/passwd",
])
def test_traversal_out_of_roots_is_refused(roots: tuple[Path, Path], tmp_path: Path,
                                           make_url) -> None:
    media, outside = roots
    with pytest.raises(APIError) as exc:
        _resolver(media, tmp_path).resolve(make_url(media, outside), param="messages[0]")
    assert _code(exc) == (400, "media_path_refused")
    assert exc.value.param == "messages[0]"


def test_symlink_escaping_root_is_refused_but_inner_symlink_works(roots: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    media, outside = roots
    os.symlink(outside / "passwd.mp4", media / "escape.mp4")
    os.symlink(outside, media / "escape_dir")
    os.symlink(media / "sub" / "clip.mp4", media / "alias.mp4")
    r = _resolver(media, tmp_path)
    for url in ("escape.mp4", "escape_dir/passwd.mp4", str(media / "escape.mp4")):
        with pytest.raises(APIError) as exc:
            r.resolve(url, param="p")
        assert _code(exc) == (400, "media_path_refused")
    assert r.resolve("alias.mp4", param="p").path == (media / "sub" / "clip.mp4").resolve()


def test_missing_file_and_no_roots(roots: tuple[Path, Path], tmp_path: Path) -> None:
    media, _ = roots
    with pytest.raises(APIError) as exc:
        _resolver(media, tmp_path).resolve("sub/nope.mp4", param="p")
    assert _code(exc) == (400, "media_not_found")
    with pytest.raises(APIError) as exc:
        _resolver(media, tmp_path).resolve("sub", param="p")  # a folder is not a file
    assert _code(exc) == (400, "media_not_found")
    closed = MediaResolver(MediaPolicy(media_roots=()), scratch=tmp_path / "s")
    with pytest.raises(APIError) as exc:
        closed.resolve(str(media / "sub" / "clip.mp4"), param="p")
    assert _code(exc) == (400, "media_path_refused")


def test_data_urls(tmp_path: Path) -> None:
    r = MediaResolver(MediaPolicy(max_media_bytes=100), scratch=tmp_path / "s")
    good = "data:video/mp4;base64," + base64.b64encode(b"abc123").decode()
    item = r.resolve(good, param="p")
    assert item.temporary and item.path.read_bytes() == b"abc123" and item.path.suffix == ".mp4"
    r.release([item])
    assert not item.path.exists()
    cases = {
        "data:video/mp4;base64,@@@@": "invalid_media",
        "data:video/mp4,rawbytes": "invalid_media",
        "data:text/html;base64,PGh0bWw+": "invalid_media",
        "data:video/mp4;base64": "invalid_media",
        "data:video/mp4;base64,": "invalid_media",
    }
    for url, code in cases.items():
        with pytest.raises(APIError) as exc:
            r.resolve(url, param="p")
        assert _code(exc) == (400, code), url
    big = "data:video/mp4;base64," + base64.b64encode(b"x" * 200).decode()
    with pytest.raises(APIError) as exc:
        r.resolve(big, param="p")
    assert _code(exc) == (413, "media_too_large")


def test_other_schemes_and_urls_refused_without_allow_url(tmp_path: Path) -> None:
    r = MediaResolver(MediaPolicy(), scratch=tmp_path / "s")
    with pytest.raises(APIError) as exc:
        r.resolve("http://127.0.0.1:1/clip.mp4", param="p")
    assert _code(exc) == (400, "media_url_refused")
    for url in ("ftp://host/x.mp4", "gopher://x", "file://evil.example.com/etc/passwd"):
        with pytest.raises(APIError) as exc:
            r.resolve(url, param="p")
        assert exc.value.status == 400
    for bad in ("", "   ", None, 5, "a\x00b"):
        with pytest.raises(APIError):
            r.resolve(bad, param="p")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/small.mp4":
            body = b"v" * 50
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/big.mp4":  # no Content-Length: the limit must hold while streaming
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x" * 1000)
        elif self.path == "/declared-big.mp4":
            self.send_response(200)
            self.send_header("Content-Length", "999999999")
            self.end_headers()
        elif self.path == "/slow.mp4":
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"s")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_allowed_urls_obey_size_and_time_limits(http_base: str, tmp_path: Path) -> None:
    r = MediaResolver(MediaPolicy(allow_url=True, max_media_bytes=10_000, url_timeout_s=1.0),
                      scratch=tmp_path / "s")
    item = r.resolve(f"{http_base}/small.mp4", param="p")
    assert item.path.read_bytes() == b"v" * 50 and item.temporary
    for path, want in (("/big.mp4", (413, "media_too_large")),
                       ("/declared-big.mp4", (413, "media_too_large")),
                       ("/slow.mp4", (400, "media_fetch_timeout")),
                       ("/missing.mp4", (400, "media_fetch_failed"))):
        with pytest.raises(APIError) as exc:
            r.resolve(http_base + path, param="p")
        assert _code(exc) == want, path
    leftovers = [p for p in (tmp_path / "s").iterdir() if p != item.path]
    assert leftovers == []  # failed downloads leave no temporary files
