"""The OpenAI-compatible server, live on loopback, driven by the official ``openai`` client.

One tiny random-weight VideoLM serves every test in this module; answers are greedy, so
a request's reply is a deterministic function of its prompt and visual tokens.
"""

from __future__ import annotations

import base64
import http.server
import io
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from vidlm.feature_cache import FeatureCache
from vidlm.serve.app import ServerSettings
from vidlm.serve.protocol import RequestLimits
from vidlm.serve.server import BackgroundServer, ServeOptions, build_app
from vidlm.testing import tiny_videolm

KEY = "sk-test-key"
NAME = "tiny-vidlm"


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_videolm("slowfast", num_frames=4, slow_frames=2)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, small_mp4: Path) -> Path:
    root = tmp_path_factory.mktemp("served")
    (root / "clips").mkdir()
    (root / "clips" / "small.mp4").write_bytes(small_mp4.read_bytes())
    (root / "broken.mp4").write_bytes(b"this is not a video at all" * 50)
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(root / "still.png")
    secret = tmp_path_factory.mktemp("secret")
    (secret / "private.mp4").write_bytes(small_mp4.read_bytes())
    os.symlink(secret / "private.mp4", root / "escape.mp4")
    return root


@pytest.fixture(scope="module")
def server(model: Any, media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = ServerSettings(api_key=KEY, max_body_bytes=2 * 1024 * 1024, max_queue=4,
                              limits=RequestLimits(max_frames_limit=16, max_tokens_limit=64))
    cache = FeatureCache(tmp_path_factory.mktemp("cache"), max_bytes=50 * 1024**2)
    app = build_app(model, ServeOptions(model_name=NAME, media_roots=(media,), settings=settings,
                                        max_media_mb=1.0), cache=cache)
    with BackgroundServer(app) as url:
        app.state.base_url = url
        yield app


@pytest.fixture()
def client(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.state.base_url + "/v1", api_key=KEY, max_retries=0,
                         timeout=60)


def _video_msg(url: str, text: str = "What happens in the video?",
               kind: str = "video_url") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": kind, kind: {"url": url}},
                                         {"type": "text", "text": text}]}]


def _ask(client: openai.OpenAI, url: str = "clips/small.mp4", **kw: Any) -> Any:
    kw.setdefault("max_tokens", 6)
    return client.chat.completions.create(model=NAME, messages=_video_msg(url), **kw)


def _error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


# ---- happy paths -------------------------------------------------------------------------
def test_models_and_health(server: Any, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [NAME]
    health = httpx.get(server.state.base_url + "/health").json()
    assert health["status"] == "ok" and health["model"] == NAME


def test_non_streaming_answer_with_usage(client: openai.OpenAI, model: Any) -> None:
    reply = _ask(client, max_tokens=5)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == NAME
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.message.content  # random weights still emit text
    assert choice.finish_reason in ("stop", "length")
    visual = model.num_visual_tokens(4)
    assert reply.usage.prompt_tokens > visual  # text + the video's visual tokens
    assert 1 <= reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    full = _ask(client, max_tokens=8).choices[0].message.content
    chunks = list(_ask(client, max_tokens=8, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_raw_sse_framing(server: Any) -> None:
    body = {"model": NAME, "messages": _video_msg("clips/small.mp4"), "stream": True,
            "max_tokens": 4}
    with httpx.stream("POST", server.state.base_url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]" and len(events) >= 3


def test_media_forms_data_url_file_url_and_images(client: openai.OpenAI, media: Path) -> None:
    by_path = _ask(client, max_tokens=6).choices[0].message.content
    b64 = base64.b64encode((media / "clips" / "small.mp4").read_bytes()).decode()
    by_data = _ask(client, f"data:video/mp4;base64,{b64}", max_tokens=6).choices[0].message
    by_file = _ask(client, f"file://{media}/clips/small.mp4", max_tokens=6).choices[0].message
    assert by_data.content == by_path and by_file.content == by_path
    png = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(png, format="PNG")
    data_png = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    for url in (data_png, "still.png"):
        reply = client.chat.completions.create(
            model=NAME, max_tokens=4, messages=_video_msg(url, "Describe.", kind="image_url"))
        assert reply.choices[0].message.content is not None
    assert reply.usage.prompt_tokens < _ask(client, max_tokens=4).usage.prompt_tokens


def test_per_request_sampling_is_honoured(client: openai.OpenAI, model: Any) -> None:
    def prompt_tokens(**extra: Any) -> int:
        return _ask(client, max_tokens=1, extra_body=extra).usage.prompt_tokens

    base = prompt_tokens()  # the model's default: 4 uniform frames
    two = prompt_tokens(num_frames=2)
    eight = prompt_tokens(num_frames=8)
    assert base - two == model.num_visual_tokens(4) - model.num_visual_tokens(2)
    assert eight - base == model.num_visual_tokens(8) - model.num_visual_tokens(4)
    assert prompt_tokens(mm_processor_kwargs={"num_frames": 2}) == two
    # the clip is 4 s long: 1 fps gives 4 frames, capped to 3 by max_frames
    assert prompt_tokens(fps=1.0) - two == model.num_visual_tokens(4) - model.num_visual_tokens(2)
    assert prompt_tokens(fps=2.0, max_frames=3) - two == \
        model.num_visual_tokens(3) - model.num_visual_tokens(2)


def test_second_request_on_a_video_hits_the_feature_cache(server: Any,
                                                          client: openai.OpenAI) -> None:
    cache = server.state.backend.encoder.cache
    _ask(client, extra_body={"num_frames": 5})
    hits = cache.stats.hits
    _ask(client, extra_body={"num_frames": 5})
    assert cache.stats.hits == hits + 1


def test_concurrent_requests_get_their_own_answers(client: openai.OpenAI) -> None:
    frames = [1, 2, 3, 4, 5, 6, 2, 3, 1, 5, 4, 6]

    def one(n: int) -> tuple[str, int]:
        r = _ask(client, max_tokens=6, extra_body={"num_frames": n})
        return r.choices[0].message.content, r.usage.prompt_tokens

    serial = {n: one(n) for n in set(frames)}
    with ThreadPoolExecutor(5) as pool:  # 1 running + max_queue=4 waiting: all admitted
        results = list(pool.map(one, frames))
    assert results == [serial[n] for n in frames]


# ---- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "param"), [
    ({"num_frames": 0}, "num_frames"),
    ({"num_frames": 17}, "num_frames"),
    ({"fps": -1}, "fps"),
    ({"fps": 1, "num_frames": 2}, "num_frames"),
    ({"max_frames": "many"}, "max_frames"),
    ({"mm_processor_kwargs": {"do_sample_frames": False}}, "mm_processor_kwargs.do_sample_frames"),
    ({"mm_processor_kwargs": {"resize": 2}}, "mm_processor_kwargs.resize"),
    ({"logit_bias": {"1": 3}}, "logit_bias"),
])
def test_invalid_sampling_and_fields_get_400(client: openai.OpenAI, extra: dict[str, Any],
                                             param: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        _ask(client, extra_body=extra)
    err = _error(exc.value)
    assert err["param"] == param and err["type"] == "invalid_request_error"


@pytest.mark.parametrize(("url", "code"), [
    ("broken.mp4", "invalid_media"),
    ("clips/missing.mp4", "media_not_found"),
    ("../secret/private.mp4", "media_path_refused"),
    ("/etc/passwd", "media_path_refused"),
    ("escape.mp4", "media_path_refused"),
    ("file:///etc/hostname", "media_path_refused"),
    ("https://example.com/clip.mp4", "media_url_refused"),
    ("ftp://example.com/clip.mp4", "unsupported_media_url"),
    ("data:video/mp4;base64,!!!notbase64", "invalid_media"),
    ("data:video/mp4;base64," + base64.b64encode(b"\x00garbage" * 64).decode(), "invalid_media"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_bad_media_gets_400_naming_the_part(client: openai.OpenAI, url: str, code: str,
                                            stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        _ask(client, url, stream=stream)
    err = _error(exc.value)
    assert err["code"] == code
    assert err["param"] == "messages[0].content[0].video_url.url"


def test_bad_requests_in_openai_shape(server: Any, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=_video_msg("clips/small.mp4"))
    assert _error(exc.value)["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=NAME, messages=[
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])
    assert _error(exc.value)["code"] == "unsupported_content_type"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=NAME, messages=[])
    assert _error(exc.value)["param"] == "messages"
    url = server.state.base_url + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {KEY}"}
    bad_json = httpx.post(url, content=b"{not json", headers=auth)
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    unknown = httpx.get(server.state.base_url + "/v1/nothing", headers=auth)
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_oversized_bodies_and_media_get_413(server: Any, client: openai.OpenAI) -> None:
    huge = "data:video/mp4;base64," + "A" * (3 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as exc:
        _ask(client, huge)
    assert exc.value.status_code == 413 and _error(exc.value)["code"] == "request_too_large"
    chunked = httpx.post(server.state.base_url + "/v1/chat/completions",
                         content=iter([b"{" + b" " * 1024 * 1024] * 3),
                         headers={"Authorization": f"Bearer {KEY}"})
    assert chunked.status_code == 413  # no Content-Length: counted while streaming
    big_media = "data:video/mp4;base64," + base64.b64encode(b"x" * 1_200_000).decode()
    with pytest.raises(openai.APIStatusError) as exc:  # body fits, the item exceeds 1 MB
        _ask(client, big_media)
    assert exc.value.status_code == 413 and _error(exc.value)["code"] == "media_too_large"


def test_api_key_is_required(server: Any) -> None:
    for key in ("wrong", ""):
        c = openai.OpenAI(base_url=server.state.base_url + "/v1", api_key=key or "x",
                          max_retries=0, default_headers={} if key else {"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as exc:
            c.models.list()
        assert _error(exc.value)["code"] == "invalid_api_key"
    r = httpx.post(server.state.base_url + "/v1/chat/completions", json={})
    assert r.status_code == 401


def test_full_queue_gets_503_with_retry_after(server: Any, client: openai.OpenAI) -> None:
    worker = server.state.worker
    release = threading.Event()
    blockers = [worker.submit(lambda: release.wait(30)) for _ in range(worker.max_queue + 1)]
    try:
        with pytest.raises(openai.InternalServerError) as exc:
            _ask(client)
        assert exc.value.status_code == 503 and exc.value.response.headers["retry-after"]
        assert _error(exc.value)["code"] == "queue_full"
    finally:
        release.set()
        for b in blockers:
            b.result(timeout=30)
    assert _ask(client).choices[0].message.content is not None  # recovers once drained


def test_server_stays_up_after_errors(server: Any, client: openai.OpenAI) -> None:
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            _ask(client, "broken.mp4")
    assert httpx.get(server.state.base_url + "/health").json()["status"] == "ok"
    assert _ask(client).choices[0].message.content is not None


# ---- URLs when allowed -------------------------------------------------------------------------
class _ClipHandler(http.server.BaseHTTPRequestHandler):
    clip = b""

    def do_GET(self) -> None:
        if self.path == "/slow.mp4":  # trickles: only the total time limit stops it
            self.send_response(200)
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"s")
                self.wfile.flush()
                time.sleep(0.1)
            return
        body = self.clip if self.path == "/clip.mp4" else b"z" * 3_000_000
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_allow_url_fetches_with_limits(model: Any, small_mp4: Path) -> None:
    _ClipHandler.clip = small_mp4.read_bytes()
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ClipHandler)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{origin.server_address[1]}"
    app = build_app(model, ServeOptions(model_name=NAME, allow_url=True, max_media_mb=1.0,
                                        url_timeout_s=1.0))
    try:
        with BackgroundServer(app) as url:
            c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
            reply = _ask(c, f"{base}/clip.mp4")
            assert reply.usage.prompt_tokens > model.num_visual_tokens(4)
            with pytest.raises(openai.APIStatusError) as exc:
                _ask(c, f"{base}/big.mp4")
            assert exc.value.status_code == 413
            with pytest.raises(openai.BadRequestError) as exc:
                _ask(c, f"{base}/slow.mp4")
            assert _error(exc.value)["code"] == "media_fetch_timeout"
            with pytest.raises(openai.BadRequestError) as exc:  # no media root: paths refused
                _ask(c, str(small_mp4))
            assert _error(exc.value)["code"] == "media_path_refused"
    finally:
        origin.shutdown()
        origin.server_close()


def test_client_disconnect_stops_generation(server: Any, client: openai.OpenAI,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import vidlm.serve.backend as backend_module

    steps: list[int] = []
    original = backend_module.decode_steps

    def counting(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for step in original(*args, **kwargs):
            steps.append(step[0])
            yield step

    monkeypatch.setattr(backend_module, "decode_steps", counting)
    full = _ask(client, max_tokens=64, extra_body={"num_frames": 3})
    assert full.usage.completion_tokens == len(steps) > 20  # long enough to cut short
    steps.clear()
    body = {"model": NAME, "messages": _video_msg("clips/small.mp4"), "stream": True,
            "max_tokens": 64, "num_frames": 3}
    with httpx.stream("POST", server.state.base_url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as resp:
        lines = resp.iter_lines()
        next(lines)
        next(lines)  # role chunk, first content chunk: then hang up
    worker = server.state.worker
    deadline = time.monotonic() + 30
    while worker.load and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.load == 0
    assert len(steps) < full.usage.completion_tokens  # it stopped early
    assert _ask(client).choices[0].message.content is not None


def test_serve_command_rejects_bad_flags_in_one_line(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    from vidlm.cli import main

    assert main(["serve", "--model", "unused", "--media-root", str(tmp_path / "none")]) == 1
    assert main(["serve", "--model", "unused", "--max-queue", "-1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("vidlm serve: error:") for line in err)
    assert "none" in err[0] and "--max-queue" in err[1]


def test_prompt_over_the_context_gets_400(media: Path) -> None:
    small = tiny_videolm("mlp2x_gelu", num_frames=2, max_context=128)  # 16 tokens per frame
    app = build_app(small, ServeOptions(model_name=NAME, media_roots=(media,)))
    with BackgroundServer(app) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        assert _ask(c, max_tokens=4).usage.prompt_tokens > small.num_visual_tokens(2)
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as exc:
                _ask(c, max_tokens=4, stream=stream, extra_body={"num_frames": 8})
            err = _error(exc.value)
            assert err["code"] == "context_length_exceeded" and "128" in err["message"]
        assert _ask(c, max_tokens=4).choices[0].message.content is not None


def test_internal_failure_is_a_500_in_openai_shape_and_server_lives(
        server: Any, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(server.state.backend.encoder, "encode", broken)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as exc:
            _ask(client, stream=stream)
        err = _error(exc.value)
        assert exc.value.status_code == 500 and err["code"] == "internal_error"
        assert "simulated bug" not in err["message"]  # no internals leak to clients
    monkeypatch.undo()
    assert _ask(client).choices[0].message.content is not None
