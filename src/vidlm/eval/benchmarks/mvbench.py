"""MVBench: 20 task JSON files of ``{video, question, candidates, answer}``.

The gold letter is the position of ``answer`` (a text) in ``candidates``. Pass the
folder of task files (task = file stem) or one file. Videos are looked up under the
task's source folder of the official release (e.g. ``star/Charades_segment/``), then
``<videos>/<task>/``, then ``<videos>/``.
"""

from __future__ import annotations

from pathlib import Path

from vidlm.errors import DataError
from vidlm.eval.benchmarks.base import Benchmark, register_benchmark
from vidlm.eval.benchmarks.files import VideoFinder, field, make_item, read_records, task_files
from vidlm.eval.items import LETTERS, EvalItem
from vidlm.eval.prompts import PromptTemplate

# Task -> video folder in the official MVBench release.
VIDEO_FOLDERS = {
    "object_interaction": "star/Charades_segment",
    "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment",
    "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation",
    "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos",
    "object_shuffle": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "moving_direction": "clevrer/video_validation",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "scene_transition": "scene_qa/video",
    "state_change": "perception/videos",
    "moving_attribute": "clevrer/video_validation",
    "action_antonym": "ssv2_video_mp4",
    "unexpected_action": "FunQA_test/test",
    "counterfactual_inference": "clevrer/video_validation",
    "object_existence": "clevrer/video_validation",
    "action_count": "perception/videos",
}


@register_benchmark
class MVBench(Benchmark):
    name = "mvbench"
    description = "MVBench: 20 tasks; accuracy overall and by task"
    template = PromptTemplate(
        "Question:{question}\nOption:\n{options}\nOnly give the best option.\n",
        option_format="({letter}) {text}")
    report_by = ("task",)

    def load(self, annotations: Path, videos: Path) -> list[EvalItem]:
        finder = VideoFinder(videos)
        items = []
        for path in task_files(annotations):
            task = path.stem
            for n, rec in enumerate(read_records(path)):
                where = f"{path}: record {n}"
                candidates = [str(c) for c in field(rec, "candidates", where)]
                answer = str(field(rec, "answer", where))
                if answer not in candidates:
                    raise DataError(f"{where}: answer {answer!r} is not among the candidates")
                video = str(field(rec, "video", where))
                folder = VIDEO_FOLDERS.get(task, task)
                items.append(make_item(
                where,
                    id=f"{task}/{n}",
                    video=finder.find(f"{folder}/{video}", f"{task}/{video}", video),
                    question=str(field(rec, "question", where)),
                    options=tuple(candidates),
                    gold=LETTERS[candidates.index(answer)],
                    categories={"task": task},
                ))
        return items
