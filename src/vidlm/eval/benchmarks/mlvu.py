"""MLVU dev, multiple choice: 7 task files, scored by the unweighted mean of task accuracies.

Records: ``video_name``, ``question`` with the options embedded as ``(A) ...`` lines,
``answer`` (a letter), ``task_type``, optionally ``question_id``/``duration``. The
GitHub release's form (``video``, ``question``, ``candidates``, ``answer`` as text,
``question_type``) is accepted too. Pass the folder of task files (or one file).
Videos: ``<videos>/<video_name>``, else ``<videos>/<task file stem>/<video_name>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import VideoFinder, field, make_item, read_records, task_files
from vidlm.eval.items import LETTERS, EvalItem
from vidlm.eval.prompts import PromptTemplate

_MARKER = re.compile(r"(?:^|\s)\(([A-Z])\)\s*")
_ANSWER = re.compile(r"\(?([A-Z])\)?(?:\s.*)?", re.DOTALL)  # "C", "(C)" or "(C) Yellow"
DEV_TASKS = ("plotQA", "needle", "ego", "count", "order", "anomaly_reco", "topic_reasoning")


def split_embedded_options(text: str, where: str) -> tuple[str, tuple[str, ...]]:
    """``"Q?\\n(A) x\\n(B) y"`` -> ``("Q?", ("x", "y"))``; letters must run A, B, C, ..."""
    marks = list(_MARKER.finditer(text))
    if not marks:
        raise DataError(f"{where}: no embedded '(A) ...' options in the question")
    letters = "".join(m.group(1) for m in marks)
    if letters != LETTERS[: len(marks)]:
        raise DataError(f"{where}: embedded options are lettered {letters!r}, expected A, B, ...")
    ends = [m.start() for m in marks[1:]] + [len(text)]
    options = tuple(text[m.end(): end].strip() for m, end in zip(marks, ends, strict=True))
    return text[: marks[0].start()].strip(), options


def _item_parts(rec: dict[str, Any], where: str) -> tuple[str, tuple[str, ...], str]:
    question = str(field(rec, "question", where))
    answer = str(field(rec, "answer", where)).strip()
    if "candidates" in rec:
        options = tuple(str(c) for c in rec["candidates"])
        if answer not in options:
            raise DataError(f"{where}: answer {answer!r} is not among the candidates")
        return question, options, LETTERS[options.index(answer)]
    stem, options = split_embedded_options(question, where)
    m = _ANSWER.fullmatch(answer)
    if m is None or m.group(1) not in LETTERS[: len(options)]:
        raise DataError(f"{where}: answer {answer!r} is not one of the option letters")
    return stem, options, m.group(1)


@register_benchmark
class MLVU(Benchmark):
    name = "mlvu"
    description = "MLVU dev multiple choice: unweighted mean of the 7 task accuracies"
    template = PromptTemplate("{raw_question}\nOnly give the best option.\nBest option: (",
                              option_format="({letter}) {text}")
    report_by = ("task_type",)
    headline = "mean_of_category_accuracies"

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        finder = VideoFinder(videos)
        items = []
        for path in task_files(annotations):
            for n, rec in enumerate(read_records(path)):
                where = f"{path}: record {n}"
                stem, options, gold = _item_parts(rec, where)
                task = str(rec.get("task_type") or rec.get("question_type") or path.stem)
                name = str(rec.get("video_name") or field(rec, "video", where))
                question = str(rec["question"])
                if "candidates" in rec:  # GitHub form: embed the options as lmms-eval shows them
                    lines = [f"({LETTERS[i]}) {o}" for i, o in enumerate(options)]
                    question = "\n".join([question, *lines])
                items.append(make_item(
                where,
                    id=str(rec.get("question_id", f"{path.stem}/{n}")),
                    video=finder.find(name, f"{path.stem}/{name}"),
                    question=stem, options=options, gold=gold,
                    categories={"task_type": task}, raw_question=question,
                ))
        return items
