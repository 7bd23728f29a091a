"""The LLaVA conversation format: records, parsing and reading JSON / JSONL files.

A record looks like::

    {"id": "x1", "video": "clips/a.mp4",
     "conversations": [{"from": "human", "value": "<video>\\nWhat happens?"},
                       {"from": "gpt", "value": "A man flips a pancake."}]}

``image`` may replace ``video``; either may be a list. Paths are relative to a
media root. ``<image>`` and ``<video>`` are both accepted as placeholders for any
medium (LLaVA-Video keeps ``<image>`` for videos); the i-th placeholder stands for
the i-th media entry. Text-only records have neither key nor placeholders.

:func:`read_records` yields ``(line, record_or_error)`` so a validator can report
every problem with its line number, while training code can skip bad records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidlm.errors import DataError

PLACEHOLDER_RE = re.compile(r"<image>|<video>")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
SYSTEM_ROLES = {"system"}

MediaKind = Literal["image", "video"]


class RecordError(DataError):
    """One record is invalid. Carries ``source``, ``line``, ``record_id`` and ``reason``."""

    def __init__(self, reason: str, *, source: str = "", line: int = 0,
                 record_id: str | None = None) -> None:
        self.source, self.line, self.record_id, self.reason = source, line, record_id, reason
        where = f"{source}:{line}" if source else f"line {line}"
        rid = f" (id {record_id})" if record_id is not None else ""
        super().__init__(f"{where}{rid}: {reason}")


@dataclass(frozen=True)
class MediaRef:
    """One picture or clip referenced by a record; ``path`` is relative to the media root."""

    kind: MediaKind
    path: str

    def resolve(self, media_root: str | Path) -> Path:
        return Path(media_root) / self.path


@dataclass(frozen=True)
class Turn:
    """One message. ``role`` is ``"system"``, ``"user"`` or ``"assistant"``."""

    role: str
    text: str


@dataclass
class Record:
    """A parsed, structurally valid conversation record."""

    id: str
    turns: list[Turn]
    media: list[MediaRef] = field(default_factory=list)
    line: int = 0

    @property
    def num_placeholders(self) -> int:
        return sum(len(PLACEHOLDER_RE.findall(t.text)) for t in self.turns)

    def messages(self) -> list[dict[str, str]]:
        """The turns as ``[{"role", "content"}]`` chat messages (placeholders left in)."""
        return [{"role": t.role, "content": t.text} for t in self.turns]


def _media_list(raw: dict[str, Any]) -> list[MediaRef]:
    present = [k for k in ("video", "image") if raw.get(k) is not None]
    if len(present) == 2:
        raise ValueError("has both 'image' and 'video'; use one key (a list is allowed)")
    if not present:
        return []
    kind: MediaKind = present[0]  # type: ignore[assignment]
    value = raw[kind]
    paths = value if isinstance(value, list) else [value]
    if not paths:
        raise ValueError(f"'{kind}' is an empty list")
    for p in paths:
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"'{kind}' entries must be non-empty path strings, got {p!r}")
    return [MediaRef(kind, p) for p in paths]


def _turns(raw: dict[str, Any]) -> list[Turn]:
    convs = raw.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise ValueError("'conversations' must be a non-empty list")
    turns: list[Turn] = []
    for i, msg in enumerate(convs):
        at = f"conversations[{i}]"
        if not isinstance(msg, dict):
            raise ValueError(f"{at} must be an object with 'from' and 'value'")
        who, value = msg.get("from"), msg.get("value")
        if who in SYSTEM_ROLES and i == 0:
            role = "system"
        elif who in ROLES:
            role = ROLES[who]
        else:
            raise ValueError(f"{at}: 'from' must be 'human' or 'gpt', got {who!r}")
        if not isinstance(value, str):
            raise ValueError(f"{at}: 'value' must be a string")
        turns.append(Turn(role, value))
    dialogue = [t for t in turns if t.role != "system"]
    for i, t in enumerate(dialogue):
        want = "user" if i % 2 == 0 else "assistant"
        if t.role != want:
            raise ValueError(f"turns must alternate human/gpt starting with human; "
                            f"turn {i} is {t.role!r}")
    if not any(t.role == "assistant" for t in dialogue):
        raise ValueError("no 'gpt' turn, so nothing to learn from")
    return turns


def parse_record(raw: Any, *, line: int = 0, source: str = "") -> Record:
    """Check the structure of one raw record and return it parsed.

    Raises :class:`RecordError` naming the source, the line, the record id and the
    reason. Placeholder count against media count is checked here too.
    """
    has_id = isinstance(raw, dict) and isinstance(raw.get("id"), (str, int))
    rid = str(raw["id"]) if has_id else None
    try:
        return _parse(raw, line)
    except ValueError as exc:
        raise RecordError(str(exc), source=source, line=line, record_id=rid) from None


def _parse(raw: Any, line: int) -> Record:
    if not isinstance(raw, dict):
        raise ValueError(f"a record must be a JSON object, got {type(raw).__name__}")
    rid = raw.get("id")
    if rid is None:
        raise ValueError("missing 'id'")
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise ValueError("'id' must be a string or an integer")
    record = Record(id=str(rid), turns=_turns(raw), media=_media_list(raw), line=line)
    n_ph, n_media = record.num_placeholders, len(record.media)
    if n_ph != n_media:
        raise ValueError(f"{n_ph} <image>/<video> placeholder(s) but {n_media} media file(s)")
    for t in record.turns:
        if t.role != "user" and PLACEHOLDER_RE.search(t.text):
            raise ValueError("placeholders may only appear in human turns")
    return record


def _json_array_items(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """Items of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    idx = ws.match(text, 0).end()  # type: ignore[union-attr]
    if text[idx:idx + 1] != "[":
        raise DataError(f"{source}: a .json dataset must be a JSON array of records")
    idx = ws.match(text, idx + 1).end()  # type: ignore[union-attr]
    while idx < len(text) and text[idx] != "]":
        line = text.count("\n", 0, idx) + 1
        try:
            item, idx = decoder.raw_decode(text, idx)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{line}: invalid JSON: {exc.msg}") from exc
        yield line, item
        idx = ws.match(text, idx).end()  # type: ignore[union-attr]


def read_raw(path: str | Path) -> Iterator[tuple[int, Any | DataError]]:
    """``(line, raw_object)`` per record of a ``.json`` array or a JSONL file.

    A JSONL line that is not valid JSON yields a :class:`DataError` in place of the
    object, so one bad line does not hide the rest. A broken JSON array raises.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read dataset: {exc}") from exc
    if text.lstrip().startswith("["):
        yield from _json_array_items(text, str(path))
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, RecordError(f"invalid JSON: {exc.msg}", source=str(path), line=n)


def read_records(path: str | Path) -> Iterator[tuple[int, Record | DataError]]:
    """``(line, Record)`` per valid record and ``(line, DataError)`` per invalid one."""
    for line, raw in read_raw(path):
        if isinstance(raw, DataError):
            yield line, raw
            continue
        try:
            yield line, parse_record(raw, line=line, source=str(path))
        except DataError as exc:
            yield line, exc


def load_records(path: str | Path, *, strict: bool = False) -> tuple[list[Record], list[DataError]]:
    """All valid records of a file and the errors of the others (``strict``: raise the first)."""
    records: list[Record] = []
    errors: list[DataError] = []
    for _, item in read_records(path):
        if isinstance(item, DataError):
            if strict:
                raise item
            errors.append(item)
        else:
            records.append(item)
    return records, errors
