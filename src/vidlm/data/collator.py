"""Examples -> padded training batches, with labels on assistant tokens only.

Prompt building is the model's own (:mod:`vidlm.model.prompting`): the tokenizer's
chat template renders the conversation, and each ``<video>``/``<image>`` marker
becomes ``L_i`` placeholder ids, ``L_i = model.num_visual_tokens(frames_i)``.

Label masking: for each assistant turn ``k`` the template is rendered twice — the
turns before it with the generation prompt, and the turns up to and including it.
The second must extend the first; the extra text (the reply and its end-of-turn
marker) is the assistant span. Token ids are built span by span, and only assistant
spans get labels; everything else (system, user, template scaffolding, placeholders
and padding) is ``-100``.

Sequences longer than ``max_length`` are never cut: cutting would drop visual
tokens or the answer. The record is dropped (``on_overflow="drop"``, counted) or
raises :class:`~vidlm.errors.ContextLengthError` (``"error"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from vidlm.data.dataset import Example, Skipped, Visual
from vidlm.errors import ContextLengthError, DataError
from vidlm.model.prompting import render_chat, tokenize_with_placeholders

IGNORE_INDEX = -100


@dataclass
class Batch:
    """A padded micro-batch (right padding).

    ``input_ids``/``attention_mask``/``labels``: ``(B, S)``. ``visuals``: every
    example's visual inputs in order, matching the placeholder runs left to right.
    ``skipped``: ``(record id, reason)`` of examples dropped while building it.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    visuals: list[Visual]
    ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_label_tokens(self) -> int:
        """Tokens that contribute to the loss (after the causal shift)."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def __len__(self) -> int:
        return len(self.ids)


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered conversation as ``(text, is_assistant)`` pieces, in order.

    Raises :class:`DataError` when the chat template does not render prefixes
    consistently (then assistant tokens cannot be located reliably).
    """
    full = render_chat(tokenizer, messages, add_generation_prompt=False)
    pieces: list[tuple[str, bool]] = []
    done = 0
    for k, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = render_chat(tokenizer, messages[:k], add_generation_prompt=True)
        upto = render_chat(tokenizer, messages[:k + 1], add_generation_prompt=False)
        if not (upto.startswith(prompt) and full.startswith(upto) and len(prompt) >= done):
            raise DataError("the chat template does not render conversation prefixes "
                            "consistently, so assistant tokens cannot be masked")
        pieces.append((full[done:len(prompt)], False))
        pieces.append((upto[len(prompt):], True))
        done = len(upto)
    pieces.append((full[done:], False))
    return [(text, is_assistant) for text, is_assistant in pieces if text]


def tokenize_example(tokenizer: Any, messages: list[dict[str, str]], *, placeholder_id: int,
                     lengths: Sequence[int]) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a conversation; ``lengths[i]`` placeholders per marker."""
    ids: list[int] = []
    labels: list[int] = []
    remaining = list(lengths)
    for text, is_assistant in assistant_spans(tokenizer, messages):
        n_markers = text.count("<video>") + text.count("<image>")
        if is_assistant and n_markers:
            raise DataError("visual markers may only appear in user turns")
        piece = tokenize_with_placeholders(tokenizer, text, placeholder_id=placeholder_id,
                                           lengths=remaining[:n_markers])
        remaining = remaining[n_markers:]
        ids += piece
        labels += piece if is_assistant else [IGNORE_INDEX] * len(piece)
    if remaining:
        raise DataError(f"{len(remaining)} visual input(s) have no marker in the conversation")
    return ids, labels


class Collator:
    """Tokenises, masks and pads :class:`Example`s; a ``DataLoader`` ``collate_fn``.

    ``visual_length(num_frames) -> L`` is the model's pure token count
    (``model.num_visual_tokens``). Runs in DataLoader workers.
    """

    def __init__(self, *, tokenizer: Any, placeholder_id: int,
                 visual_length: Callable[[int], int], max_length: int,
                 on_overflow: Literal["drop", "error"] = "drop", pad_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.placeholder_id = placeholder_id
        self.visual_length = visual_length
        self.max_length = max_length
        self.on_overflow = on_overflow
        pad = pad_id if pad_id is not None else tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id)

    @classmethod
    def for_model(cls, model: Any, *, max_length: int | None = None,
                  on_overflow: Literal["drop", "error"] = "drop") -> Collator:
        return cls(tokenizer=model.tokenizer, placeholder_id=model.placeholder_id,
                   visual_length=model.num_visual_tokens,
                   max_length=max_length or model.context_length, on_overflow=on_overflow)

    def encode(self, example: Example) -> tuple[list[int], list[int]]:
        """Token ids and labels of one example; raises on overflow when configured to."""
        lengths = [self.visual_length(v.num_frames) for v in example.visuals]
        ids, labels = tokenize_example(self.tokenizer, example.messages,
                                       placeholder_id=self.placeholder_id, lengths=lengths)
        if len(ids) > self.max_length:
            raise ContextLengthError(
                f"record {example.id}: {len(ids)} tokens ({sum(lengths)} visual) exceed "
                f"max_length {self.max_length}; visual tokens are never truncated")
        return ids, labels

    def __call__(self, items: Sequence[Example | Skipped]) -> Batch:
        rows: list[tuple[Example, list[int], list[int]]] = []
        skipped: list[tuple[str, str]] = []
        for item in items:
            if isinstance(item, Skipped):
                skipped.append((item.id, item.reason))
                continue
            try:
                ids, labels = self.encode(item)
            except ContextLengthError as exc:
                if self.on_overflow == "error":
                    raise
                skipped.append((item.id, f"overflow: {exc}"))
                continue
            except DataError as exc:
                skipped.append((item.id, str(exc)))
                continue
            rows.append((item, ids, labels))
        return self._pad(rows, skipped)

    def _pad(self, rows: list[tuple[Example, list[int], list[int]]],
             skipped: list[tuple[str, str]]) -> Batch:
        width = max((len(ids) for _, ids, _ in rows), default=0)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, (_, ids, lab) in enumerate(rows):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            labels[i, :len(lab)] = torch.tensor(lab)
            mask[i, :len(ids)] = 1
        visuals = [v for ex, _, _ in rows for v in ex.visuals]
        return Batch(input_ids, mask, labels, visuals, [ex.id for ex, _, _ in rows], skipped)
