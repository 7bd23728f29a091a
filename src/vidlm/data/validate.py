"""Check a LLaVA-format dataset before training: ``vidlm data validate FILE --media-root DIR``.

Every record is checked for

* structure: ``id``, ``conversations`` with alternating ``human``/``gpt`` turns;
* placeholders: as many ``<image>``/``<video>`` markers as media entries;
* media: each file exists and decodes (probed, and one frame decoded);
* length: text tokens plus visual tokens fit the context (needs a model's tokenizer).

Each problem is reported with its line number and record id; the caller prints a
summary and exits non-zero when there are errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidlm.data.schema import MediaRef, Record, RecordError, parse_record, read_raw
from vidlm.errors import DataError, VidlmError

Severity = Literal["error", "warning"]

# (record, frames per media entry) -> total sequence length in tokens
LengthFn = Callable[[Record, list[int]], int]


@dataclass(frozen=True)
class Problem:
    """One finding: where (line, record id) and what."""

    line: int
    record_id: str | None
    severity: Severity
    kind: str
    message: str

    def __str__(self) -> str:
        rid = f" (id {self.record_id})" if self.record_id is not None else ""
        return f"line {self.line}{rid}: {self.severity}: [{self.kind}] {self.message}"


@dataclass
class ValidationReport:
    """All problems of a file plus counts for the summary line."""

    path: str
    num_records: int = 0
    num_valid: int = 0
    num_media: int = 0
    max_length: int = 0
    length_checked: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        kinds = Counter(p.kind for p in self.errors)
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        length = (f"longest {self.max_length} tokens" if self.length_checked
                  else "length not checked (pass --model)")
        head = (f"{self.path}: {self.num_records} records, {self.num_valid} valid, "
                f"{len(self.errors)} error(s), "
                f"{len(self.problems) - len(self.errors)} warning(s); "
                f"{self.num_media} media; {length}")
        return head + (f" [{by_kind}]" if by_kind else "")


def _kind_of(reason: str) -> str:
    if "placeholder" in reason:
        return "placeholders"
    if "invalid JSON" in reason:
        return "json"
    return "fields"


class MediaChecker:
    """Probes each media file once (by resolved path) and decodes one frame.

    ``frames_for(ref)`` returns how many frames the model's sampling would take
    (images count as one frame), or raises :class:`VidlmError` when unreadable.
    """

    def __init__(self, media_root: str | Path, *, sampling: object | None = None,
                 decode: bool = True) -> None:
        self.media_root = Path(media_root)
        self.sampling = sampling
        self.decode = decode
        self._memo: dict[Path, int | VidlmError] = {}

    def frames_for(self, ref: MediaRef) -> int:
        path = ref.resolve(self.media_root)
        if path not in self._memo:
            try:
                self._memo[path] = self._check(path, ref)
            except VidlmError as exc:
                self._memo[path] = exc
        found = self._memo[path]
        if isinstance(found, VidlmError):
            raise found
        return found

    def _check(self, path: Path, ref: MediaRef) -> int:
        from vidlm import video

        if not path.exists():
            raise DataError(f"{path}: media file not found (relative path {ref.path!r})")
        info = video.probe(path)
        if self.decode:
            frames = video.read(path, video.uniform(1))
            if len(frames.frames) != 1:
                raise DataError(f"{path}: decoded no frame")
        if ref.kind == "image" or info.num_frames <= 1:
            return 1
        return sampled_frame_count(info, self.sampling)


def sampled_frame_count(info: object, sampling: object | None) -> int:
    """Frames the sampling config takes from a video described by ``info`` (a ``VideoInfo``).

    The policy runs on evenly spaced frame times at the average frame rate: exact for
    constant-frame-rate video, an estimate for variable frame rate.
    """
    import numpy as np

    from vidlm.model.config import SamplingConfig
    from vidlm.video.sampling import policy_from_config

    cfg = sampling if isinstance(sampling, SamplingConfig) else SamplingConfig()
    count = max(1, int(getattr(info, "num_frames", 1) or 1))
    rate = float(getattr(info, "avg_fps", 0.0) or 0.0) or 25.0
    duration = float(getattr(info, "duration", 0.0) or 0.0) or count / rate
    pts = np.arange(count, dtype=np.float64) / rate
    return max(1, len(policy_from_config(cfg).select(pts, duration)))


def length_function(model: Any) -> LengthFn:
    """Sequence length of a record under ``model``: the training collator's tokenisation
    (chat template, ``num_visual_tokens(frames)`` placeholders per medium)."""
    from vidlm.data.collator import tokenize_example

    def length(record: Record, frames: list[int]) -> int:
        ids, _ = tokenize_example(model.tokenizer, record.messages(),
                                  placeholder_id=model.placeholder_id,
                                  lengths=[model.num_visual_tokens(n) for n in frames])
        return len(ids)

    return length


def validate_records(path: str | Path, media: MediaChecker | None, *,
                     length_fn: LengthFn | None = None, context: int | None = None,
                     progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None
                     ) -> ValidationReport:
    """Check every record of ``path``; media checks need ``media``, length needs both
    ``length_fn`` and ``context``."""
    checked = length_fn is not None and bool(context)
    report = ValidationReport(path=str(path), length_checked=checked)
    items: Iterable[tuple[int, Any]] = list(read_raw(path))
    if progress is not None:
        items = progress(items)
    for line, raw in items:
        report.num_records += 1
        if isinstance(raw, DataError):
            reason = raw.reason if isinstance(raw, RecordError) else str(raw)
            report.problems.append(Problem(line, None, "error", "json", reason))
            continue
        try:
            record = parse_record(raw, line=line, source=str(path))
        except RecordError as exc:
            report.problems.append(Problem(line, exc.record_id, "error", _kind_of(exc.reason),
                                           exc.reason))
            continue
        problems = list(_check_record(record, media, length_fn, context, report))
        report.problems.extend(problems)
        if not any(p.severity == "error" for p in problems):
            report.num_valid += 1
    return report


def _check_record(record: Record, media: MediaChecker | None, length_fn: LengthFn | None,
                  context: int | None, report: ValidationReport) -> Iterator[Problem]:
    frames: list[int] = []
    for ref in record.media:
        report.num_media += 1
        if media is None:
            continue
        try:
            frames.append(media.frames_for(ref))
        except VidlmError as exc:
            yield Problem(record.line, record.id, "error", "media", str(exc))
    if media is None or len(frames) != len(record.media) or length_fn is None or not context:
        return
    try:
        length = length_fn(record, frames)
    except VidlmError as exc:
        yield Problem(record.line, record.id, "error", "template", str(exc))
        return
    report.max_length = max(report.max_length, length)
    if length > context:
        yield Problem(record.line, record.id, "error", "length",
                      f"{length} tokens (text + visual, {sum(frames)} frame(s)) exceed the "
                      f"context of {context}")
