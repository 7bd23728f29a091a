"""Video-MME: 2,700 four-option questions on 900 videos, short/medium/long.

Official fields: ``videoID``, ``duration`` (short/medium/long), ``domain``,
``sub_category``, ``task_type``, ``question_id``, ``question``, ``options`` (a list of
``"A. ..."`` strings), ``answer`` (a letter). Accepts a JSON list or JSON Lines of
such records, or the nested form where each video record holds a ``questions`` list.
Videos: ``<videos>/<videoID>.mp4`` (or ``.MP4``/``.mkv``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import VideoFinder, field, make_item, read_records
from vidlm.eval.items import EvalItem
from vidlm.eval.prompts import ANSWER_DIRECTLY, PromptTemplate

_LETTER_PREFIX = re.compile(r"^\s*\(?([A-Z])[\.\)]\s*")


def strip_letter(option: str, letter: str, where: str) -> str:
    """``"B. a dog"`` -> ``"a dog"``; the prefix must be the expected letter."""
    m = _LETTER_PREFIX.match(option)
    if m is None:
        return option.strip()
    if m.group(1) != letter:
        raise DataError(f"{where}: option {option!r} should start with {letter}")
    return option[m.end():].strip()


def _flatten(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for rec in records:
        if "questions" in rec:
            video = {k: v for k, v in rec.items() if k != "questions"}
            flat.extend({**video, **q} for q in rec["questions"])
        else:
            flat.append(rec)
    return flat


@register_benchmark
class VideoMME(Benchmark):
    name = "videomme"
    description = "Video-MME (no subtitles): accuracy overall and by duration"
    template = PromptTemplate(
        "Select the best answer to the following multiple-choice question based on the video "
        "and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.\n"
        "{question}\n{options}\n\n" + ANSWER_DIRECTLY)
    report_by = ("duration", "domain", "task_type")
    category_order: ClassVar[dict[str, tuple[str, ...]]] = {"duration": ("short", "medium", "long")}

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        finder = VideoFinder(videos)
        items = []
        for n, rec in enumerate(_flatten(read_records(annotations))):
            where = f"{annotations}: record {n}"
            video_id = str(field(rec, "videoID", where))
            raw_options = field(rec, "options", where)
            if not (isinstance(raw_options, list) and all(isinstance(o, str) for o in raw_options)):
                raise DataError(f"{where}: options must be a list of strings")
            letters = "ABCDEFGH"[: len(raw_options)]
            options = tuple(strip_letter(o, lt, where) for o, lt in zip(raw_options, letters,
                                                                        strict=True))
            items.append(make_item(
                where,
                id=str(rec.get("question_id", f"{video_id}-{n}")),
                video=finder.find(f"{video_id}.mp4"),
                question=str(field(rec, "question", where)),
                options=options,
                gold=str(field(rec, "answer", where)).strip().upper(),
                categories={"duration": str(field(rec, "duration", where)),
                            "domain": str(rec.get("domain", "")),
                            "task_type": str(rec.get("task_type", ""))},
            ))
        return items
