"""Likelihood scoring: the log-probability a VideoLM gives each candidate continuation.

No text is generated or parsed. The prompt (video + question as one user turn, with
the assistant's generation prompt) is built once; each continuation's tokens are
appended and all continuations are scored in one batched forward pass through
``VideoLM.forward``, keeping only the logits that predict continuation tokens::

    rows (K, S + C_max) = prompt ids (S,) + continuation ids (C_k,) + right padding
    logits (K, C_max + 1, V) = forward(rows, visual_tokens=[tokens] * K, logits_to_keep=C_max + 1)
    score_k = sum_j log_softmax(logits)[k, j, cont_k[j]]

Right padding never changes the scores: attention is causal, so padded positions
come after every position that is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vidlm.errors import VidlmError


@dataclass(frozen=True)
class ContinuationScore:
    """``logprob``: summed log-probability of the continuation's tokens; ``num_tokens``;
    ``is_greedy``: every token is the argmax at its position."""

    logprob: float
    num_tokens: int
    is_greedy: bool


def continuation_ids(tokenizer: Any, continuation: str) -> list[int]:
    ids = list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    if not ids:
        raise VidlmError(f"continuation {continuation!r} has no tokens to score")
    return ids


@torch.no_grad()
def score_continuations(model: Any, visuals: Sequence[Any], prompt: str,
                        continuations: Sequence[str]) -> list[ContinuationScore]:
    """Score each continuation after ``prompt`` about ``visuals`` (paths, Frames or
    VisualTokens; may be empty) with ``model`` (a :class:`vidlm.model.videolm.VideoLM`)."""
    encoded = [model.encode_video(v) for v in visuals]
    inputs = model.build_inputs([{"role": "user", "content": prompt}], encoded)
    prompt_ids = inputs["input_ids"][0].tolist()
    conts = [continuation_ids(model.tokenizer, c) for c in continuations]
    width = max(len(c) for c in conts)
    rows = torch.zeros(len(conts), len(prompt_ids) + width, dtype=torch.long)
    mask = torch.zeros_like(rows)
    for k, cont in enumerate(conts):
        n = len(prompt_ids) + len(cont)
        rows[k, :n] = torch.tensor(prompt_ids + cont)
        mask[k, :n] = 1
    out = model.forward(rows, attention_mask=mask,
                        visual_tokens=list(inputs["visual_tokens"]) * len(conts),
                        logits_to_keep=width + 1)
    # logits[:, j] predicts the token at position S + j  (j = 0 .. width-1)
    logprobs = torch.log_softmax(out.logits[:, :width].float(), dim=-1)  # (K, width, V)
    scores = []
    for k, cont in enumerate(conts):
        target = torch.tensor(cont, device=logprobs.device)
        picked = logprobs[k, : len(cont)].gather(-1, target[:, None])[:, 0]
        greedy = bool((logprobs[k, : len(cont)].argmax(-1) == target).all())
        scores.append(ContinuationScore(float(picked.sum()), len(cont), greedy))
    return scores
