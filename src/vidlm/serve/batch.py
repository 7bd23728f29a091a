"""Answer a JSONL file of video questions: parallel decoding, resumable, error records.

Input lines: ``{"id": ..., "video": "path", "question": "..."}`` or with
``"questions": ["...", ...]``. Relative video paths are taken relative to
``media_root`` (default: the input file's folder).

Output lines (appended, one per input record, flushed as each finishes)::

    {"id": ..., "video": ..., "question": ..., "answer": ..., "num_frames": T, "seconds": s}
    {"id": ..., "video": ..., "questions": [...], "answers": [...], ...}
    {"id": ..., "video": ..., "error": {"type": "VideoError", "message": "..."}}

On a rerun, ids already in the output are skipped (records with an ``error`` too,
unless ``retry_errors``; then the newer record for an id supersedes the older).
A repeated id in the input gets an error record marked ``"duplicate": true``.
A partly written last line (a crash mid-write) is cut off before appending.

Decoding runs in a thread pool (PyAV releases the GIL while decoding), at most
``2 * workers`` videos ahead of the model; the vision tower, connector and language
model run on the calling thread, one record at a time. A feature-cache hit skips
decoding altogether.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlm.errors import DataError
from vidlm.model.config import SamplingConfig
from vidlm.serve.encoding import CachedEncoder

if TYPE_CHECKING:
    from vidlm.model.videolm import VideoLM, VisualTokens
    from vidlm.video.frames import Frames


@dataclass
class BatchItem:
    """One valid input record."""

    id: str
    video: str
    path: Path
    questions: list[str]
    single: bool  # the input used "question" (one answer), not "questions"


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    error_kinds: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.error_kinds.items()))
        extra = f" ({kinds})" if kinds else ""
        return (f"{self.total} records: {self.done} answered, {self.errors} failed{extra}, "
                f"{self.skipped} already done, in {self.seconds:.1f} s")


def read_input(path: Path, media_root: Path) -> Iterator[BatchItem | dict[str, Any]]:
    """Valid items, or ready error records for invalid lines (naming line and reason)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the batch input: {exc}") from exc
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = _parse_line(raw, media_root)
        except DataError as exc:
            yield {"id": _loose_id(raw, number), "error": {"type": "DataError",
                                                            "message": f"line {number}: {exc}"}}
            continue
        if item.id in seen:
            yield {"id": item.id, "error": {"type": "DataError",
                                            "message": f"line {number}: duplicate id {item.id!r}"},
                   "duplicate": True}
            continue
        seen.add(item.id)
        yield item


def _loose_id(raw: str, number: int) -> str:
    try:
        value = json.loads(raw).get("id")
    except (json.JSONDecodeError, AttributeError):
        value = None
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) \
        else f"line-{number}"


def _parse_line(raw: str, media_root: Path) -> BatchItem:
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise DataError("a record must be a JSON object")
    rid = rec.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
        raise DataError("'id' must be a non-empty string or an integer")
    video = rec.get("video")
    if not isinstance(video, str) or not video:
        raise DataError("'video' must be a non-empty path string")
    has_one, has_many = "question" in rec, "questions" in rec
    if has_one == has_many:
        raise DataError("give exactly one of 'question' or 'questions'")
    questions = [rec["question"]] if has_one else rec["questions"]
    if not isinstance(questions, list) or not questions or \
            not all(isinstance(q, str) and q.strip() for q in questions):
        raise DataError("questions must be non-empty strings ('questions' a non-empty list)")
    path = Path(video) if Path(video).is_absolute() else media_root / video
    return BatchItem(id=str(rid), video=video, path=path, questions=questions, single=has_one)


def finished_ids(out_path: Path, *, retry_errors: bool) -> set[str]:
    """Ids recorded in ``out_path``; repairs a torn last line so appending stays valid."""
    if not out_path.exists():
        return set()
    data = out_path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with out_path.open("r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    latest: dict[str, dict[str, Any]] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "id" in rec and not rec.get("duplicate"):
            latest[str(rec["id"])] = rec
    return {rid for rid, rec in latest.items() if not (retry_errors and "error" in rec)}


def _error_record(item: BatchItem, exc: BaseException) -> dict[str, Any]:
    reason = exc.reason if hasattr(exc, "reason") else str(exc)
    return {"id": item.id, "video": item.video,
            "error": {"type": type(exc).__name__, "message": f"{item.video}: {reason}"}}


class BatchRunner:
    """Runs one batch job; ``progress(done, total)`` is called after each record."""

    def __init__(self, model: VideoLM, *, encoder: CachedEncoder | None = None,
                 sampling: SamplingConfig | None = None, generation: dict[str, Any] | None = None,
                 workers: int = 2) -> None:
        if workers < 1:
            raise DataError(f"workers must be >= 1, got {workers}")
        self.model = model
        self.encoder = encoder or CachedEncoder(model)
        self.sampling = sampling or model.config.sampling
        self.generation = dict(generation or {})
        self.workers = workers

    def _prepare(self, item: BatchItem) -> VisualTokens | Frames:
        """Worker thread: a cache hit, or decoded frames (raises VideoError on a bad file)."""
        cached = self.encoder.lookup(item.path, self.sampling)
        if cached is not None:
            return cached
        return self.model.read_video(item.path, self.sampling)

    def _answer(self, item: BatchItem, prepared: VisualTokens | Frames) -> dict[str, Any]:
        t0 = time.perf_counter()
        if hasattr(prepared, "tokens"):
            visual = prepared
        else:
            visual = self.encoder.encode(item.path, self.sampling, decode=lambda: prepared)
        answers = [self.model.ask(visual, q, stream=False, **self.generation)
                   for q in item.questions]
        rec: dict[str, Any] = {"id": item.id, "video": item.video}
        if item.single:
            rec.update(question=item.questions[0], answer=answers[0])
        else:
            rec.update(questions=item.questions, answers=answers)
        rec.update(num_frames=int(visual.num_frames), seconds=round(time.perf_counter() - t0, 3))
        return rec

    def run(self, in_path: Path, out_path: Path, *, media_root: Path | None = None,
            retry_errors: bool = False,
            progress: Callable[[int, int], None] | None = None) -> BatchSummary:
        t0 = time.perf_counter()
        media_root = media_root or in_path.parent
        done_ids = finished_ids(out_path, retry_errors=retry_errors)
        summary = BatchSummary()
        todo: list[BatchItem | dict[str, Any]] = []
        for entry in read_input(in_path, media_root):
            summary.total += 1
            rid = entry.id if isinstance(entry, BatchItem) else entry["id"]
            if rid in done_ids:
                summary.skipped += 1
            else:
                todo.append(entry)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if progress is not None:
            progress(0, len(todo))
        with out_path.open("a", encoding="utf-8") as out, \
                ThreadPoolExecutor(self.workers, thread_name_prefix="vidlm-decode") as pool:
            for rec in self._records(todo, pool):
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                out.flush()
                if "error" in rec:
                    summary.errors += 1
                    summary.error_kinds[rec["error"]["type"]] += 1
                else:
                    summary.done += 1
                if progress is not None:
                    progress(summary.done + summary.errors, len(todo))
        summary.seconds = time.perf_counter() - t0
        return summary

    def _records(self, todo: list[BatchItem | dict[str, Any]],
                 pool: ThreadPoolExecutor) -> Iterator[dict[str, Any]]:
        ahead = 2 * self.workers
        pending: list[tuple[BatchItem | dict[str, Any], Future[Any] | None]] = []
        queue = iter(todo)

        def refill() -> None:
            while len(pending) < ahead:
                entry = next(queue, None)
                if entry is None:
                    return
                job = pool.submit(self._prepare, entry) if isinstance(entry, BatchItem) else None
                pending.append((entry, job))

        refill()
        while pending:
            entry, job = pending.pop(0)
            refill()
            if not isinstance(entry, BatchItem) or job is None:
                yield entry  # an invalid input line's error record
                continue
            try:
                yield self._answer(entry, job.result())
            except Exception as exc:  # bad video, context too long, ...: record it and go on
                yield _error_record(entry, exc)
