"""Text generation from input embeddings: a KV-cached decoding loop, sampling, stop strings.

:func:`decode_steps` runs the language model once over the prompt embeddings
``(1, S, D_lm)`` (prefill), then feeds back one token at a time with the KV cache,
yielding each chosen token with the logits it was chosen from. :func:`stream_text`
turns those tokens into text deltas, holding back text that could still turn into a
stop string (or an incomplete UTF-8 character), and stops at the first stop string
(which is not part of the output) or an end-of-sequence token.

``temperature == 0`` is greedy decoding. Otherwise logits are divided by the
temperature, cut to the nucleus of probability ``top_p``, and sampled with a
``torch.Generator`` seeded by ``seed`` (reproducible for a fixed seed).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vidlm.errors import ConfigError


@dataclass
class GenerationSettings:
    """How to generate: length, sampling and stop strings."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(s for s in self.stop if s)
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


def settings_from_kwargs(defaults: GenerationSettings, **gen: Any) -> GenerationSettings:
    """``defaults`` with keyword overrides (``max_new_tokens=``, ``temperature=``, ...)."""
    known = {"max_new_tokens", "temperature", "top_p", "seed", "stop"}
    unknown = sorted(set(gen) - known)
    if unknown:
        raise ConfigError(f"unknown generation option(s) {unknown}; known: {sorted(known)}")
    values = {k: getattr(defaults, k) for k in known}
    values.update({k: v for k, v in gen.items() if v is not None})
    if isinstance(values["stop"], str):
        values["stop"] = (values["stop"],)
    values["stop"] = tuple(values["stop"])
    return GenerationSettings(**values)


def eos_token_ids(language_model: Any, tokenizer: Any) -> set[int]:
    """End-of-sequence ids from the tokenizer and the model's generation config."""
    ids: set[int] = set()
    for value in (getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(language_model, "generation_config", None), "eos_token_id",
                          None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def choose_next(logits: torch.Tensor, settings: GenerationSettings,
                generator: torch.Generator | None) -> torch.Tensor:
    """``(B, V)`` logits -> ``(B,)`` token ids (greedy, or temperature + top-p sampling)."""
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass strictly above each token
        sorted_p = sorted_p.masked_fill(before >= settings.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def decode_steps(language_model: Any, inputs_embeds: torch.Tensor,
                 attention_mask: torch.Tensor | None, settings: GenerationSettings,
                 eos_ids: set[int]) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(token_id, logits (V,))`` per new token; stops at EOS (not yielded) or the limit.

    ``inputs_embeds``: ``(1, S, D_lm)``; the prompt runs once, then each token is fed
    back alone with the KV cache.
    """
    if inputs_embeds.shape[0] != 1:
        raise ValueError(f"generation takes one prompt at a time, got batch "
                         f"{inputs_embeds.shape[0]}")
    device = inputs_embeds.device
    if attention_mask is None:
        attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=device)
    generator = None
    if settings.temperature > 0:
        generator = torch.Generator(device=device)
        generator.manual_seed(settings.seed if settings.seed is not None
                              else int(torch.randint(0, 2**62, (1,)).item()))
    out = language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                         use_cache=True, **_last_logits_only(language_model))
    for _ in range(settings.max_new_tokens):
        logits = out.logits[:, -1].float()  # (1, V)
        token = choose_next(logits, settings, generator)  # (1,)
        token_id = int(token.item())
        if token_id in eos_ids:
            return
        yield token_id, logits[0]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((1, 1))], dim=1)
        out = language_model(input_ids=token.view(1, 1), attention_mask=attention_mask,
                             past_key_values=out.past_key_values, use_cache=True)


def _last_logits_only(language_model: Any) -> dict[str, int]:
    """``logits_to_keep=1`` where the LM supports it: prefill skips the LM head elsewhere."""
    params = inspect.signature(language_model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def stream_text(tokenizer: Any, tokens: Iterator[int], stop: Sequence[str] = ()) -> Iterator[str]:
    """Text deltas for ``tokens``; ends before the first stop string, which is left out."""
    ids: list[int] = []
    emitted = 0
    longest = max((len(s) for s in stop), default=0)
    try:
        for token_id in tokens:
            ids.append(token_id)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            cut = _first_stop(text, stop, start=max(0, emitted - longest))
            if cut is not None:
                if cut > emitted:
                    yield text[emitted:cut]
                return
            if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
                continue
            safe = len(text) - _held_back(text, stop)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > emitted:
            yield text[emitted:]
    finally:
        close = getattr(tokens, "close", None)
        if close is not None:
            close()


def _first_stop(text: str, stop: Sequence[str], *, start: int) -> int | None:
    hits = [i for i in (text.find(s, start) for s in stop) if i >= 0]
    return min(hits) if hits else None


def _held_back(text: str, stop: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is the start of some stop string."""
    best = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best
