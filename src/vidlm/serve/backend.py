"""The model side of the server: validated :class:`ChatJob` in, text out.

Request threads call :meth:`ChatBackend.resolve` (media URLs -> checked local files,
probed so a broken video fails before it queues); the model thread runs
:meth:`ChatBackend.stream` (encode through the feature cache, then generate).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from vidlm.errors import VideoError, VidlmError
from vidlm.model.generation import (
    decode_steps,
    eos_token_ids,
    settings_from_kwargs,
    stream_text,
)
from vidlm.serve.api_errors import APIError, from_vidlm_error
from vidlm.serve.encoding import CachedEncoder
from vidlm.serve.media import MediaResolver, ResolvedMedia
from vidlm.serve.protocol import ChatJob, MediaRef

if TYPE_CHECKING:
    from vidlm.model.videolm import VideoLM


@dataclass
class Completion:
    """What one generation produced, for the response's ``choices`` and ``usage``."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    pieces: list[str] = field(default_factory=list)


class ChatBackend:
    def __init__(self, model: VideoLM, *, model_name: str, encoder: CachedEncoder,
                 resolver: MediaResolver) -> None:
        self.model = model
        self.model_name = model_name
        self.encoder = encoder
        self.resolver = resolver

    @property
    def default_sampling(self) -> Any:
        return self.model.config.sampling

    # ---- request thread ------------------------------------------------------------
    def resolve(self, job: ChatJob) -> list[ResolvedMedia]:
        """Local, checked files for every media part (temporary ones are released on error)."""
        from vidlm.video import probe

        resolved: list[ResolvedMedia] = []
        try:
            for ref in job.media:
                item = self.resolver.resolve(ref.url, param=ref.param)
                resolved.append(item)
                try:
                    probe(item.path)
                except VidlmError as exc:
                    raise _media_error(exc, ref) from exc
        except BaseException:
            self.resolver.release(resolved)
            raise
        return resolved

    # ---- model thread --------------------------------------------------------------
    def stream(self, job: ChatJob, media: list[ResolvedMedia], result: Completion) -> Iterator[str]:
        """Text pieces of the answer; fills ``result`` (tokens, finish reason) as it goes."""
        try:
            visuals = []
            for ref, item in zip(job.media, media, strict=True):
                try:
                    visuals.append(self.encoder.encode(item.path, job.sampling))
                except VidlmError as exc:
                    raise _media_error(exc, ref) from exc
            yield from self._generate(job, visuals, result)
        finally:
            self.resolver.release(media)

    def complete(self, job: ChatJob, media: list[ResolvedMedia]) -> Completion:
        result = Completion()
        for _ in self.stream(job, media, result):
            pass
        return result

    def _generate(self, job: ChatJob, visuals: list[Any], result: Completion) -> Iterator[str]:
        """Generate with the model's own decoding loop, counting the tokens it emits."""
        model, gen = self.model, job.generation
        try:
            prompt = model.prepare(job.messages, visuals, max_new_tokens=gen.max_new_tokens)
            settings = settings_from_kwargs(model.generation_defaults,
                                            max_new_tokens=gen.max_new_tokens,
                                            temperature=gen.temperature, top_p=gen.top_p,
                                            seed=gen.seed, stop=tuple(gen.stop))
        except VidlmError as exc:
            raise from_vidlm_error(exc) from exc
        result.prompt_tokens = int(prompt.input_ids.shape[-1])
        with torch.no_grad():
            embeds = model.embed(prompt.input_ids.to(model.device), prompt.visual_tokens)
        steps = decode_steps(model.language_model, embeds,
                             prompt.attention_mask.to(model.device), settings,
                             eos_token_ids(model.language_model, model.tokenizer))

        def counted() -> Iterator[int]:
            for token_id, _ in steps:
                result.completion_tokens += 1
                yield token_id

        for piece in stream_text(model.tokenizer, counted(), settings.stop):
            if piece:
                result.pieces.append(piece)
                yield piece
        result.text = "".join(result.pieces)
        result.finish_reason = "length" if result.completion_tokens >= gen.max_new_tokens \
            else "stop"


def _media_error(exc: VidlmError, ref: MediaRef) -> APIError:
    if isinstance(exc, VideoError):
        return APIError(400, f"cannot read {ref.kind}: {exc.reason}", param=ref.param,
                        code="invalid_media")
    return from_vidlm_error(exc, param=ref.param)
