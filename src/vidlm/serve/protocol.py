"""Parse and validate OpenAI chat-completion requests into a :class:`ChatJob`.

Every field is either honoured or rejected with a 400 naming it; nothing is
silently ignored. Per-request frame sampling (top-level, as the ``openai`` client's
``extra_body`` sends them, or inside vLLM-style ``mm_processor_kwargs``):

=============  =========================================================  ==============
field          meaning                                                    limits
=============  =========================================================  ==============
``num_frames`` ``n`` uniform frames (mode ``uniform``)                    1..max_frames_limit
``fps``        frames per second (mode ``fps``), capped by ``max_frames``  0 < fps <= 30
``max_frames`` cap on the frame count (fps mode: the uniform fallback;    1..max_frames_limit
               uniform mode: ``num_frames = min(num_frames, max_frames)``)
=============  =========================================================  ==============

With none given, the model's own sampling config applies. ``num_frames`` and
``fps`` are mutually exclusive (as in ``transformers``). ``mm_processor_kwargs``
may also carry ``do_sample_frames: true``; ``false`` is refused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vidlm.model.config import SamplingConfig
from vidlm.serve.api_errors import APIError, bad_request

MAX_FPS = 30.0
SAMPLING_FIELDS = ("fps", "max_frames", "num_frames")
KNOWN_FIELDS = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "n", "seed", "user", "mm_processor_kwargs",
    "presence_penalty", "frequency_penalty", *SAMPLING_FIELDS,
}
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class RequestLimits:
    """Server-side bounds on what a request may ask for."""

    max_frames_limit: int = 128
    max_tokens_limit: int = 2048
    default_max_tokens: int = 256
    max_media_items: int = 8
    max_messages: int = 256


@dataclass
class MediaRef:
    """One ``image_url``/``video_url`` part: its kind, raw URL, and request field name."""

    kind: str  # "video" | "image"
    url: str
    param: str


@dataclass
class GenerationParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class ChatJob:
    """A validated request: text messages with ``<video>``/``<image>`` markers, in order."""

    model: str
    messages: list[dict[str, str]]
    media: list[MediaRef]
    sampling: SamplingConfig
    generation: GenerationParams
    stream: bool = False
    include_usage: bool = False


def parse_chat_request(body: Any, *, default_sampling: SamplingConfig,
                       limits: RequestLimits = RequestLimits()) -> ChatJob:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise bad_request(f"unsupported field(s) {unknown}; this server does not implement them",
                          param=unknown[0], code="unsupported_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a string", param="model")
    messages, media = _parse_messages(body.get("messages"), limits)
    stream = _typed(body, "stream", bool, False)
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise bad_request("stream_options supports only include_usage", param="stream_options")
        include_usage = bool(_typed(options, "include_usage", bool, False))
        if not stream:
            raise bad_request("stream_options is only allowed with stream=true",
                              param="stream_options")
    _check_unsupported_values(body)
    return ChatJob(model=model, messages=messages, media=media,
                   sampling=parse_sampling(body, default_sampling, limits),
                   generation=_parse_generation(body, limits), stream=stream,
                   include_usage=include_usage)


def _typed(body: dict[str, Any], name: str, tp: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    bad_bool = tp in (int, float, (int, float)) and isinstance(value, bool)
    if bad_bool or not isinstance(value, tp):
        names = tp.__name__ if isinstance(tp, type) else "number"
        raise bad_request(f"'{name}' must be a {names}", param=name)
    return value


def _check_unsupported_values(body: dict[str, Any]) -> None:
    if body.get("n", 1) != 1:
        raise bad_request("only n=1 is supported", param="n", code="unsupported_value")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name, 0) not in (0, 0.0, None):
            raise bad_request(f"'{name}' is not supported (only 0)", param=name,
                              code="unsupported_value")


# ---- messages ------------------------------------------------------------------------
def _parse_messages(raw: Any, limits: RequestLimits) -> tuple[list[dict[str, str]], list[MediaRef]]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    if len(raw) > limits.max_messages:
        raise bad_request(f"at most {limits.max_messages} messages", param="messages")
    messages: list[dict[str, str]] = []
    media: list[MediaRef] = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad_request(f"{where} must be an object", param=where)
        role = msg.get("role")
        if role not in ROLES:
            raise bad_request(f"{where}.role must be one of {list(ROLES)}, got {role!r}",
                              param=f"{where}.role")
        text = _parse_content(msg.get("content"), role, f"{where}.content", media)
        messages.append({"role": role, "content": text})
    if len(media) > limits.max_media_items:
        raise bad_request(f"at most {limits.max_media_items} image/video parts per request",
                          param="messages", code="too_many_media_items")
    if messages[-1]["role"] != "user":
        raise bad_request("the last message must have role 'user'", param="messages")
    return messages, media


def _parse_content(content: Any, role: str, where: str, media: list[MediaRef]) -> str:
    if isinstance(content, str):
        return content
    if content is None and role == "assistant":
        return ""
    if not isinstance(content, list):
        raise bad_request(f"{where} must be a string or a list of content parts", param=where)
    pieces: list[str] = []
    for j, part in enumerate(content):
        pw = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad_request(f"{pw} must be an object", param=pw)
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise bad_request(f"{pw}.text must be a string", param=f"{pw}.text")
            pieces.append(part["text"])
        elif kind in ("image_url", "video_url"):
            if role != "user":
                raise bad_request(f"{pw}: images and videos are only allowed in user messages",
                                  param=pw)
            holder = part.get(kind)
            url = holder.get("url") if isinstance(holder, dict) else holder
            if not isinstance(url, str) or not url:
                raise bad_request(f"{pw}.{kind}.url must be a non-empty string",
                                  param=f"{pw}.{kind}.url")
            media_kind = "video" if kind == "video_url" else "image"
            media.append(MediaRef(media_kind, url, f"{pw}.{kind}.url"))
            pieces.append(f"<{media_kind}>")
        else:
            raise bad_request(f"{pw}: unsupported content part type {kind!r} "
                              "(use text, image_url or video_url)", param=f"{pw}.type",
                              code="unsupported_content_type")
    return "\n".join(pieces)


# ---- sampling --------------------------------------------------------------------------
def parse_sampling(body: dict[str, Any], default: SamplingConfig,
                   limits: RequestLimits = RequestLimits()) -> SamplingConfig:
    """The request's frame sampling (see the module docstring), validated against ``limits``."""
    values = _collect_sampling_fields(body)
    num_frames = _bounded_int(values, "num_frames", limits.max_frames_limit)
    max_frames = _bounded_int(values, "max_frames", limits.max_frames_limit)
    fps = values.get("fps")
    if fps is not None:
        ok = isinstance(fps, (int, float)) and not isinstance(fps, bool) and math.isfinite(fps)
        if not ok or not 0 < fps <= MAX_FPS:
            raise bad_request(f"'fps' must be a number in (0, {MAX_FPS:g}], got {fps!r}",
                              param="fps")
    if fps is not None and num_frames is not None:
        raise bad_request("'fps' and 'num_frames' are mutually exclusive", param="num_frames")
    if num_frames is not None and max_frames is not None and num_frames > max_frames:
        raise bad_request("'num_frames' exceeds 'max_frames'", param="num_frames")
    out = dataclasses.replace(default)
    if num_frames is not None:
        out = dataclasses.replace(out, mode="uniform", num_frames=num_frames)
    if fps is not None:
        out = dataclasses.replace(out, mode="fps", fps=float(fps))
    if max_frames is not None:
        out = dataclasses.replace(out, max_frames=max_frames,
                                  num_frames=min(out.num_frames, max_frames))
    if out.mode == "uniform" and out.num_frames > limits.max_frames_limit:
        out = dataclasses.replace(out, num_frames=limits.max_frames_limit)
    if out.max_frames > limits.max_frames_limit:
        out = dataclasses.replace(out, max_frames=limits.max_frames_limit)
    return out


def _collect_sampling_fields(body: dict[str, Any]) -> dict[str, Any]:
    values = {k: body[k] for k in SAMPLING_FIELDS if body.get(k) is not None}
    kwargs = body.get("mm_processor_kwargs")
    if kwargs is None:
        return values
    if not isinstance(kwargs, dict):
        raise bad_request("'mm_processor_kwargs' must be an object", param="mm_processor_kwargs")
    extra = sorted(set(kwargs) - {*SAMPLING_FIELDS, "do_sample_frames"})
    if extra:
        raise bad_request(f"unsupported mm_processor_kwargs {extra}; supported: "
                          f"{[*SAMPLING_FIELDS, 'do_sample_frames']}",
                          param=f"mm_processor_kwargs.{extra[0]}", code="unsupported_parameter")
    if kwargs.get("do_sample_frames", True) is not True:
        raise bad_request("do_sample_frames=false is not supported: vidlm always samples frames",
                          param="mm_processor_kwargs.do_sample_frames", code="unsupported_value")
    for k in SAMPLING_FIELDS:
        if kwargs.get(k) is None:
            continue
        if k in values and values[k] != kwargs[k]:
            raise bad_request(f"'{k}' given twice with different values (top level and "
                              "mm_processor_kwargs)", param=f"mm_processor_kwargs.{k}")
        values[k] = kwargs[k]
    return values


def _bounded_int(values: dict[str, Any], name: str, upper: int) -> int | None:
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise bad_request(f"'{name}' must be an integer in [1, {upper}], got {value!r}",
                          param=name)
    return value


# ---- generation ------------------------------------------------------------------------
def _parse_generation(body: dict[str, Any], limits: RequestLimits) -> GenerationParams:
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise bad_request("give max_tokens or max_completion_tokens, not both",
                          param="max_completion_tokens")
    name = "max_tokens" if body.get("max_completion_tokens") is None else "max_completion_tokens"
    max_new = _typed(body, name, int, min(limits.default_max_tokens, limits.max_tokens_limit))
    if not 1 <= max_new <= limits.max_tokens_limit:
        raise bad_request(f"'{name}' must be in [1, {limits.max_tokens_limit}]", param=name)
    temperature = float(_typed(body, "temperature", (int, float), 0.0))
    if not 0 <= temperature <= 2:
        raise bad_request("'temperature' must be in [0, 2]", param="temperature")
    top_p = float(_typed(body, "top_p", (int, float), 1.0))
    if not 0 < top_p <= 1:
        raise bad_request("'top_p' must be in (0, 1]", param="top_p")
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        stops = list(stop)
    else:
        raise bad_request("'stop' must be a string or a list of at most 4 strings", param="stop")
    if any(not s for s in stops):
        raise bad_request("'stop' strings must be non-empty", param="stop")
    seed = _typed(body, "seed", int, None)
    _typed(body, "user", str, None)
    return GenerationParams(max_new_tokens=max_new, temperature=temperature, top_p=top_p,
                            stop=stops, seed=seed)


def model_not_found(name: str, served: str) -> APIError:
    return APIError(404, f"model {name!r} is not served here; this server serves {served!r}",
                    param="model", code="model_not_found", type="invalid_request_error")
