"""EgoSchema subset: ``questions.json`` plus ``subset_answers.json``.

``questions.json``: a list of ``{q_uid, question, "option 0", ..., "option 4"}``
(``google_drive_id`` ignored). ``subset_answers.json``: ``{q_uid: correct option index}``
for the 500-question public subset; only those questions are evaluated. Pass the
questions file (the answers file is looked up beside it) or the folder holding both.
Videos: ``<videos>/<q_uid>.mp4``.
"""

from __future__ import annotations

from pathlib import Path

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import (
    VideoFinder,
    as_int,
    field,
    make_item,
    read_json,
    read_records,
)
from vidlm.eval.items import LETTERS, EvalItem
from vidlm.eval.prompts import ANSWER_DIRECTLY, PromptTemplate

ANSWERS_FILE = "subset_answers.json"
QUESTIONS_FILE = "questions.json"


@register_benchmark
class EgoSchema(Benchmark):
    name = "egoschema"
    description = "EgoSchema public subset (500): accuracy"
    template = PromptTemplate("{question}\n{options}\n" + ANSWER_DIRECTLY)
    report_by = ()

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        questions_file = annotations / QUESTIONS_FILE if annotations.is_dir() else annotations
        answers_file = questions_file.with_name(ANSWERS_FILE)
        answers = read_json(answers_file)
        if not isinstance(answers, dict):
            raise DataError(f"{answers_file}: expected an object {{q_uid: answer index}}")
        finder = VideoFinder(videos)
        items = []
        for n, rec in enumerate(read_records(questions_file)):
            where = f"{questions_file}: record {n}"
            uid = str(field(rec, "q_uid", where))
            if uid not in answers:
                continue
            options = tuple(str(field(rec, f"option {i}", where)) for i in range(5))
            correct = as_int(answers[uid], f"{answers_file}: {uid}")
            if not 0 <= correct < len(options):
                raise DataError(f"{answers_file}: {uid}: answer {correct} is not an option index")
            items.append(make_item(where, id=uid, video=finder.find(f"{uid}.mp4"),
                                  question=str(field(rec, "question", where)),
                                  options=options, gold=LETTERS[correct]))
        if not items:
            raise DataError(f"{questions_file}: no question has an answer in {answers_file}")
        return items
