"""PerceptionTest multiple choice (``mc_question_valid.json``).

The official file maps each video id to ``{"metadata": {...}, "mc_question": [...]}``
whose questions carry ``id``, ``question``, ``options`` (3), ``answer_id``, ``area``,
``reasoning``, ``tag``. A flat list of ``{video_name, question, options, answer_id,
area, reasoning, ...}`` records (the lmms-eval form) is accepted too.
Videos: ``<videos>/<video id>.mp4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import VideoFinder, as_int, field, make_item, read_json
from vidlm.eval.items import LETTERS, EvalItem
from vidlm.eval.prompts import ANSWER_DIRECTLY, PromptTemplate


def _records(annotations: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(video id, question record)`` pairs from either file form."""
    data = read_json(annotations)
    if isinstance(data, dict):
        pairs = []
        for video, entry in data.items():
            if not isinstance(entry, dict):
                raise DataError(f"{annotations}: {video}: expected an object")
            pairs.extend((str(video), q) for q in entry.get("mc_question", []))
        return pairs
    if isinstance(data, list):
        return [(str(field(r, "video_name", f"{annotations}: record {n}")), r)
                for n, r in enumerate(data)]
    raise DataError(f"{annotations}: expected an object keyed by video id, or a list")


@register_benchmark
class PerceptionTest(Benchmark):
    name = "perceptiontest"
    description = "PerceptionTest multiple choice: accuracy overall, by area and reasoning"
    template = PromptTemplate("{question}\n{options}\n" + ANSWER_DIRECTLY)
    report_by = ("area", "reasoning")

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        finder = VideoFinder(videos)
        items = []
        for n, (video, rec) in enumerate(_records(annotations)):
            where = f"{annotations}: {video} question {rec.get('id', n)}"
            options = tuple(str(o) for o in field(rec, "options", where))
            answer = as_int(field(rec, "answer_id", where), where)
            if not 0 <= answer < len(options):
                raise DataError(f"{where}: answer_id {answer} is not an option index")
            items.append(make_item(
                where,
                id=f"{video}/{rec.get('id', rec.get('question_id', n))}",
                video=finder.find(f"{video}.mp4"),
                question=str(field(rec, "question", where)),
                options=options, gold=LETTERS[answer],
                categories={"area": str(rec.get("area", "")),
                            "reasoning": str(rec.get("reasoning", ""))},
            ))
        return items
