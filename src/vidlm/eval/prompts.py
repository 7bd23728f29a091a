"""Prompt templates for multiple-choice items.

A template is text with the fields ``{question}`` (the stem), ``{options}`` (the
option lines, each written with ``option_format``, joined by newlines),
``{raw_question}`` (the annotation's question text verbatim) and ``{letters}``
(``"A, B, C, D"``). Each benchmark's default reproduces lmms-eval's default prompt
for that task; every template is overridable and is recorded in ``metrics.json``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from vidlm.errors import ConfigError
from vidlm.eval.items import EvalItem

FIELDS = frozenset({"question", "options", "raw_question", "letters"})
OPTION_FIELDS = frozenset({"letter", "text"})
ANSWER_DIRECTLY = "Answer with the option's letter from the given choices directly."


def _fields(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"prompt template {text!r}: {exc}") from exc


@dataclass(frozen=True)
class PromptTemplate:
    """``text`` with ``{question}``/``{options}``/``{raw_question}``/``{letters}`` fields;
    ``option_format`` with ``{letter}``/``{text}`` writes one option line."""

    text: str = "{question}\n{options}\n" + ANSWER_DIRECTLY
    option_format: str = "{letter}. {text}"

    def __post_init__(self) -> None:
        unknown = _fields(self.text) - FIELDS
        if unknown:
            raise ConfigError(f"prompt template: unknown field(s) {sorted(unknown)}; "
                              f"known: {sorted(FIELDS)}")
        unknown = _fields(self.option_format) - OPTION_FIELDS
        if unknown:
            raise ConfigError(f"option format: unknown field(s) {sorted(unknown)}; "
                              f"known: {sorted(OPTION_FIELDS)}")

    def render(self, item: EvalItem) -> str:
        lines = [self.option_format.format(letter=letter, text=text)
                 for letter, text in zip(item.letters, item.options, strict=True)]
        return self.text.format(question=item.question, options="\n".join(lines),
                                raw_question=item.raw_question or item.question,
                                letters=", ".join(item.letters))

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "option_format": self.option_format}


GENERIC = PromptTemplate()
