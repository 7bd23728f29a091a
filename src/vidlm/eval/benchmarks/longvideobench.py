"""LongVideoBench (validation): ``lvb_val.json``.

Fields: ``id``, ``video_path``, ``duration_group`` (15/60/600/3600 s),
``question_category``, ``question``, ``option0``..``option4`` (unused slots hold
``"N/A"``, dropped), ``correct_choice`` (index into the options). A ``candidates`` list
is accepted in place of ``option0``..``option4``. Videos: ``<videos>/<video_path>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import VideoFinder, as_int, field, make_item, read_records
from vidlm.eval.items import LETTERS, EvalItem
from vidlm.eval.prompts import ANSWER_DIRECTLY, PromptTemplate

PADDING = "N/A"


def _raw_options(rec: dict[str, Any], where: str) -> list[str]:
    if "candidates" in rec and "option0" not in rec:
        return [str(c) for c in rec["candidates"]]
    options = [str(rec[f"option{i}"]) for i in range(5) if rec.get(f"option{i}") is not None]
    if not options:
        raise DataError(f"{where}: no option0..option4 fields")
    return options


@register_benchmark
class LongVideoBench(Benchmark):
    name = "longvideobench"
    description = "LongVideoBench val: accuracy overall, by duration group and category"
    template = PromptTemplate("{question}\n{options}\n" + ANSWER_DIRECTLY + "\n")
    report_by = ("duration_group", "question_category")

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        finder = VideoFinder(videos)
        items = []
        for n, rec in enumerate(read_records(annotations)):
            where = f"{annotations}: record {n}"
            raw = _raw_options(rec, where)
            kept = [i for i, o in enumerate(raw) if o != PADDING]
            correct = as_int(field(rec, "correct_choice", where), where)
            if correct not in kept:
                raise DataError(f"{where}: correct_choice {correct} is not a real option")
            items.append(make_item(
                where,
                id=str(rec.get("id", n)),
                video=finder.find(str(field(rec, "video_path", where))),
                question=str(field(rec, "question", where)),
                options=tuple(raw[i] for i in kept),
                gold=LETTERS[kept.index(correct)],
                categories={"duration_group": str(field(rec, "duration_group", where)),
                            "question_category": str(rec.get("question_category", ""))},
            ))
        return items
