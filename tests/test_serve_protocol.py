"""Chat-completion request parsing: content parts, sampling fields, rejected inputs."""

from __future__ import annotations

from typing import Any

import pytest

from vidlm.model.config import SamplingConfig
from vidlm.serve.api_errors import APIError
from vidlm.serve.protocol import RequestLimits, parse_chat_request, parse_sampling

DEFAULT = SamplingConfig(mode="uniform", fps=1.0, max_frames=32, num_frames=16)
LIMITS = RequestLimits(max_frames_limit=32, max_tokens_limit=100, default_max_tokens=20)


def _body(**extra: Any) -> dict[str, Any]:
    content = [{"type": "video_url", "video_url": {"url": "clip.mp4"}},
               {"type": "text", "text": "What happens?"}]
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def _parse(body: Any):
    return parse_chat_request(body, default_sampling=DEFAULT, limits=LIMITS)


def _error(body: Any) -> APIError:
    with pytest.raises(APIError) as exc:
        _parse(body)
    assert exc.value.status == 400
    return exc.value


def test_parts_become_markers_in_order() -> None:
    body = {"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "Compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "video_url", "video_url": {"url": "file:///m/a.mp4"}}]},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "and?"}]}
    job = _parse(body)
    assert job.messages[1]["content"] == "Compare\n<image>\n<video>"
    assert [(m.kind, m.url, m.param) for m in job.media] == [
        ("image", "data:image/png;base64,AAAA", "messages[1].content[1].image_url.url"),
        ("video", "file:///m/a.mp4", "messages[1].content[2].video_url.url")]
    assert job.sampling == DEFAULT and job.generation.max_new_tokens == 20
    assert not job.stream


def test_generation_fields_are_honoured() -> None:
    job = _parse(_body(max_tokens=7, temperature=0.5, top_p=0.9, stop="END", seed=3, stream=True,
                       stream_options={"include_usage": True}))
    g = job.generation
    assert (g.max_new_tokens, g.temperature, g.top_p, g.stop, g.seed) == (7, 0.5, 0.9, ["END"], 3)
    assert job.stream and job.include_usage
    assert _parse(_body(max_completion_tokens=9)).generation.max_new_tokens == 9


def test_sampling_fields() -> None:
    assert parse_sampling({"num_frames": 8}, DEFAULT, LIMITS) == SamplingConfig(
        mode="uniform", fps=1.0, max_frames=32, num_frames=8)
    s = parse_sampling({"fps": 2, "max_frames": 10}, DEFAULT, LIMITS)
    assert (s.mode, s.fps, s.max_frames) == ("fps", 2.0, 10)
    s = parse_sampling({"max_frames": 4}, DEFAULT, LIMITS)  # caps the uniform count
    assert (s.mode, s.num_frames, s.max_frames) == ("uniform", 4, 4)
    s = parse_sampling({"mm_processor_kwargs": {"num_frames": 5, "do_sample_frames": True}},
                       DEFAULT, LIMITS)
    assert s.num_frames == 5
    s = parse_sampling({"fps": 1.5, "mm_processor_kwargs": {"fps": 1.5}}, DEFAULT, LIMITS)
    assert s.fps == 1.5
    big_default = SamplingConfig(mode="uniform", num_frames=100, max_frames=100)
    s = parse_sampling({}, big_default, LIMITS)  # the server limit bounds defaults too
    assert s.num_frames == 32 and s.max_frames == 32


@pytest.mark.parametrize(("extra", "param"), [
    ({"num_frames": 0}, "num_frames"),
    ({"num_frames": 33}, "num_frames"),
    ({"num_frames": 2.5}, "num_frames"),
    ({"num_frames": True}, "num_frames"),
    ({"num_frames": "8"}, "num_frames"),
    ({"max_frames": -1}, "max_frames"),
    ({"fps": 0}, "fps"),
    ({"fps": 31}, "fps"),
    ({"fps": float("nan")}, "fps"),
    ({"fps": "2"}, "fps"),
    ({"fps": 1, "num_frames": 4}, "num_frames"),
    ({"num_frames": 10, "max_frames": 5}, "num_frames"),
    ({"mm_processor_kwargs": {"num_frames": 4}, "num_frames": 5}, "mm_processor_kwargs.num_frames"),
    ({"mm_processor_kwargs": {"do_sample_frames": False}}, "mm_processor_kwargs.do_sample_frames"),
    ({"mm_processor_kwargs": {"size": 3}}, "mm_processor_kwargs.size"),
    ({"mm_processor_kwargs": [1]}, "mm_processor_kwargs"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 101}, "max_tokens"),
    ({"max_tokens": 5, "max_completion_tokens": 5}, "max_completion_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"n": 2}, "n"),
    ({"presence_penalty": 1.0}, "presence_penalty"),
    ({"tools": []}, "tools"),
    ({"logprobs": True}, "logprobs"),
    ({"stream": "yes"}, "stream"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": 3}, "model"),
])
def test_invalid_fields_are_rejected_by_name(extra: dict[str, Any], param: str) -> None:
    assert _error(_body(**extra)).param == param


@pytest.mark.parametrize(("messages", "param"), [
    (None, "messages"),
    ([], "messages"),
    ("hi", "messages"),
    ([{"role": "tool", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "input_audio"}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text"),
    ([{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}],
     "messages[0].content[0].video_url.url"),
    ([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": ""}}]}],
     "messages[0].content[0].video_url.url"),
    ([{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "a.png"}}]},
      {"role": "user", "content": "x"}], "messages[0].content[0]"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "messages"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a.png"}}] * 9}],
     "messages"),
])
def test_bad_messages_are_rejected(messages: Any, param: str) -> None:
    assert _error({"model": "m", "messages": messages}).param == param


def test_body_must_be_an_object() -> None:
    assert _error([1, 2]).code == "invalid_json"
