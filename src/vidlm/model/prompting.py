"""Prompts: chat messages with ``<video>``/``<image>`` markers -> token ids with placeholders.

A message is ``{"role": ..., "content": ...}`` where content is a string that may hold
the markers ``<video>`` or ``<image>`` (both mean "one visual input here"), or a list of
parts in the ``transformers`` style: ``{"type": "text", "text": ...}``,
``{"type": "video", ...}``, ``{"type": "image", ...}`` (also ``video_url``/``image_url``).

The chat template is the tokenizer's own (``apply_chat_template``). Only when a
tokenizer has none, :data:`FALLBACK_TEMPLATE` is used: plain ``Role: text`` blocks
separated by blank lines, ending with ``Assistant:``.

After templating, the text is split at the markers; the pieces are tokenised without
extra special tokens and each marker becomes ``L_i`` copies of the placeholder id,
``L_i`` being the length of the i-th visual input's tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from vidlm.errors import VidlmError

MARKERS = ("<video>", "<image>")
MARKER_RE = re.compile("|".join(re.escape(m) for m in MARKERS))
_VISUAL_PART_TYPES = {"video": "<video>", "video_url": "<video>", "image": "<image>",
                      "image_url": "<image>"}

FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


class PromptError(VidlmError):
    """Messages and visual inputs do not match (count, roles, content form)."""


Message = dict[str, Any]


def normalise_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Messages with string content; visual parts become ``<video>``/``<image>`` markers."""
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise PromptError(f"message {i} must be a dict with 'role' and 'content', got {msg!r}")
        content = msg["content"]
        if isinstance(content, list):
            content = "".join(_part_text(part, i) for part in content)
        elif not isinstance(content, str):
            raise PromptError(f"message {i}: content must be a string or a list of parts")
        out.append({"role": str(msg["role"]), "content": content})
    return out


def _part_text(part: Any, index: int) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return str(part.get("text", ""))
    if kind in _VISUAL_PART_TYPES:
        return _VISUAL_PART_TYPES[kind] + "\n"
    raise PromptError(f"message {index}: unsupported content part {part!r}")


def count_markers(messages: Sequence[dict[str, str]]) -> int:
    return sum(len(MARKER_RE.findall(m["content"])) for m in messages)


def with_markers(messages: list[dict[str, str]], kinds: Sequence[str]) -> list[dict[str, str]]:
    """Messages whose markers match ``kinds`` (``"video"``/``"image"`` per visual input).

    Without any marker, one per visual input is put at the start of the first user
    message. Otherwise the marker count must equal the number of visual inputs.
    """
    found = count_markers(messages)
    if found == len(kinds):
        return messages
    if found:
        raise PromptError(f"the messages hold {found} <video>/<image> marker(s) but "
                          f"{len(kinds)} visual input(s) were given")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise PromptError("visual inputs were given but there is no user message to hold them")
    first = users[0]
    prefix = "".join(f"<{k}>\n" for k in kinds)
    out = [dict(m) for m in messages]
    out[first]["content"] = prefix + out[first]["content"]
    return out


def render_chat(tokenizer: Any, messages: list[dict[str, str]], *,
                add_generation_prompt: bool = True) -> str:
    """The templated prompt text (markers kept as text)."""
    template = None if getattr(tokenizer, "chat_template", None) else FALLBACK_TEMPLATE
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def ensure_placeholder(tokenizer: Any, token: str) -> int:
    """Add ``token`` as a special token (if missing) and return its id."""
    if token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [token]},
                                     replace_additional_special_tokens=False)
    return int(tokenizer.convert_tokens_to_ids(token))


def text_pieces(text: str) -> list[str]:
    """``"a<video>b<image>c"`` -> ``["a", "b", "c"]`` (pieces between markers)."""
    return MARKER_RE.split(text)


def tokenize_with_placeholders(tokenizer: Any, text: str, *, placeholder_id: int,
                               lengths: Sequence[int]) -> list[int]:
    """Token ids of ``text`` with the i-th marker replaced by ``lengths[i]`` placeholders."""
    pieces = text_pieces(text)
    if len(pieces) - 1 != len(lengths):
        raise PromptError(f"the prompt holds {len(pieces) - 1} visual marker(s) but "
                          f"{len(lengths)} visual input(s) were given")
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if piece:
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            if placeholder_id in piece_ids:
                raise PromptError("the prompt text contains the reserved visual placeholder "
                                  f"token {tokenizer.convert_ids_to_tokens(placeholder_id)!r}; "
                                  "use <video> or <image> markers instead")
            ids.extend(piece_ids)
        if i < len(lengths):
            ids.extend([placeholder_id] * int(lengths[i]))
    return ids
