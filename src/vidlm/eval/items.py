"""The uniform multiple-choice item every benchmark adapter yields.

Adapters turn each benchmark's own annotation format into :class:`EvalItem`; the
prompt renderer, answer extraction, scoring and metrics only ever see this type.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

LETTERS = string.ascii_uppercase


def letters_for(num_options: int) -> str:
    """The option letters of an item with ``num_options`` options: 3 -> ``"ABC"``."""
    if not 1 <= num_options <= len(LETTERS):
        raise ValueError(f"an item needs 1..{len(LETTERS)} options, got {num_options}")
    return LETTERS[:num_options]


@dataclass(frozen=True)
class EvalItem:
    """One multiple-choice question about one video.

    ``id``: unique within the benchmark (the resume key).
    ``video``: the resolved local path (it may not exist: missing videos are
    recorded as failures, never dropped).
    ``question``: the question stem, without options.
    ``options``: option texts, without letter prefixes; letter ``i`` is ``LETTERS[i]``.
    ``gold``: the correct letter.
    ``categories``: reporting fields, e.g. ``{"duration": "short", "task_type": "OCR"}``.
    ``raw_question``: the question text exactly as the annotation file gives it
    (MLVU embeds its options in it; templates may use it as ``{raw_question}``).
    """

    id: str
    video: Path
    question: str
    options: tuple[str, ...]
    gold: str
    categories: dict[str, str] = field(default_factory=dict)
    raw_question: str = ""

    def __post_init__(self) -> None:
        letters = letters_for(len(self.options))
        if self.gold not in letters:
            raise ValueError(f"item {self.id}: gold {self.gold!r} is not one of {letters}")

    @property
    def letters(self) -> str:
        return letters_for(len(self.options))

    def option_text(self, letter: str) -> str:
        return self.options[self.letters.index(letter)]
