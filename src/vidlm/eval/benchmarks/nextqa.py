"""NExT-QA multiple choice: the official CSV (``val.csv`` / ``test.csv``).

Columns: ``video``, ``frame_count``, ``width``, ``height``, ``question``, ``answer``
(option index), ``qid``, ``type``, ``a0``..``a4``. ``type`` is a question code whose
first letter gives its family: ``CW``/``CH`` causal, ``TN``/``TC``/``TP`` temporal,
``DL``/``DC``/``DO`` (and open-ended ``DB``) descriptive, as lmms-eval and the official
evaluation group them (they also fold ``TP`` into ``TN``). Videos:
``<videos>/<video>.mp4``, or through ``map_vid_vidorID.json`` (video -> ``"0000/123"``)
found in the videos folder or beside the CSV, or by a unique file-name match below.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import VideoFinder, as_int, field, make_item, read_csv, read_json
from vidlm.eval.items import LETTERS, EvalItem
from vidlm.eval.prompts import PromptTemplate

FAMILIES = {"C": "causal", "T": "temporal", "D": "descriptive"}
MAP_FILE = "map_vid_vidorID.json"


def type_family(code: str, where: str) -> str:
    family = FAMILIES.get(code[:1].upper())
    if family is None:
        raise DataError(f"{where}: unknown question type {code!r} (expected C*, T* or D*)")
    return family


def _video_map(annotations: Path, videos: Path) -> dict[str, str]:
    for folder in (videos, annotations.parent):
        if (folder / MAP_FILE).is_file():
            mapping = read_json(folder / MAP_FILE)
            if isinstance(mapping, dict):
                return {str(k): str(v) for k, v in mapping.items()}
            raise DataError(f"{folder / MAP_FILE}: expected an object video -> folder/id")
    return {}


@register_benchmark
class NExTQA(Benchmark):
    name = "nextqa"
    description = "NExT-QA MC: accuracy overall and by type (causal/temporal/descriptive)"
    template = PromptTemplate("{question}\n{options}")
    report_by = ("type_family", "type")
    category_order: ClassVar[dict[str, tuple[str, ...]]] = {
        "type_family": ("causal", "temporal", "descriptive")}

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        finder = VideoFinder(videos)
        mapping = _video_map(annotations, videos)
        items = []
        for n, row in enumerate(read_csv(annotations)):
            where = f"{annotations}: row {n + 2}"
            video = str(field(row, "video", where))
            options = tuple(str(field(row, f"a{i}", where)).strip() for i in range(5))
            answer = as_int(field(row, "answer", where), where)
            if not 0 <= answer < len(options):
                raise DataError(f"{where}: answer {answer} is not an option index")
            code = str(field(row, "type", where)).strip()
            candidates = [f"{mapping[video]}.mp4"] if video in mapping else []
            items.append(make_item(
                where,
                id=f"{video}_{field(row, 'qid', where)}",
                video=finder.find(*candidates, f"{video}.mp4"),
                question=str(field(row, "question", where)).strip(),
                options=options, gold=LETTERS[answer],
                categories={"type_family": type_family(code, where), "type": code},
            ))
        return items
