"""Benchmark adapters on hand-written fixture files in each benchmark's official format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidlm.errors import ConfigError, DataError
from vidlm.eval.benchmarks import get_benchmark, list_benchmarks
from vidlm.eval.prompts import PromptTemplate

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def load(name: str, annotations: str, videos: Path) -> list:
    return get_benchmark(name).load(FIXTURES / annotations, videos)


def test_registry_lists_all_seven() -> None:
    assert list_benchmarks() == ["egoschema", "longvideobench", "mlvu", "mvbench", "nextqa",
                                 "perceptiontest", "videomme"]
    with pytest.raises(ConfigError, match="unknown benchmark 'mmbench'"):
        get_benchmark("mmbench")


def test_videomme_fields_and_prompt(tmp_path: Path) -> None:
    items = load("videomme", "videomme/videomme.json", tmp_path)
    assert [it.id for it in items] == ["001-1", "001-2", "301-1", "301-2", "601-1", "601-2"]
    first = items[0]
    assert first.options == ("Two.", "Four.", "Six.", "Eight.")
    assert first.gold == "B"
    assert first.categories == {"duration": "short", "domain": "Knowledge",
                                "task_type": "Counting Problem"}
    assert first.video == tmp_path / "vmShortAAA1.mp4"
    assert get_benchmark("videomme").template.render(first) == (
        "Select the best answer to the following multiple-choice question based on the video "
        "and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.\n"
        "How many planets are shown?\nA. Two.\nB. Four.\nC. Six.\nD. Eight.\n\n"
        "Answer with the option's letter from the given choices directly.")


def test_videomme_parquet_reads_like_its_json(tmp_path: Path) -> None:
    """Video-MME ships as parquet: the same rows give the same items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads((FIXTURES / "videomme" / "videomme.json").read_text())
    parquet = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    from_json = load("videomme", "videomme/videomme.json", tmp_path)
    from_parquet = get_benchmark("videomme").load(parquet, tmp_path)
    assert from_parquet == from_json
    parquet.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not readable parquet"):
        get_benchmark("videomme").load(parquet, tmp_path)


def test_mvbench_gold_is_answer_position_and_videos_in_task_folders(tmp_path: Path) -> None:
    (tmp_path / "ssv2_video_mp4").mkdir()
    (tmp_path / "ssv2_video_mp4" / "166583.webm").write_bytes(b"x")
    items = load("mvbench", "mvbench", tmp_path)
    assert [(it.id, it.gold) for it in items] == [
        ("action_antonym/0", "C"), ("action_antonym/1", "A"),
        ("object_shuffle/0", "C"), ("object_shuffle/1", "A")]
    assert items[0].video == tmp_path / "ssv2_video_mp4" / "166583.webm"
    assert items[2].video == tmp_path / "perception/videos/video_10006.mp4"  # not there: missing
    assert get_benchmark("mvbench").template.render(items[0]) == (
        "Question:What is the action performed by the person in the video?\nOption:\n"
        "(A) Not sure\n(B) Scattering something down\n(C) Piling something up\n"
        "Only give the best option.\n")


def test_mvbench_answer_not_in_candidates_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "action_count.json"
    bad.write_text(json.dumps([{"video": "a.mp4", "question": "q?", "candidates": ["1", "2"],
                                "answer": "3"}]))
    with pytest.raises(DataError, match=r"action_count.json: record 0: answer '3' is not among"):
        get_benchmark("mvbench").load(bad, tmp_path)


def test_longvideobench_drops_na_padding(tmp_path: Path) -> None:
    items = load("longvideobench", "longvideobench/lvb_val.json", tmp_path)
    assert [len(it.options) for it in items] == [3, 5, 4]
    assert [it.gold for it in items] == ["B", "E", "A"]
    assert items[0].categories == {"duration_group": "600", "question_category": "TOS"}
    assert get_benchmark("longvideobench").template.render(items[0]).endswith(
        "A. promisc has come to an end\nB. run a command\nC. by doing true\n"
        "Answer with the option's letter from the given choices directly.\n")


def test_longvideobench_correct_choice_on_padding_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "lvb.json"
    bad.write_text(json.dumps([{"video_path": "v.mp4", "duration_group": 15, "question": "q",
                                "option0": "a", "option1": "N/A", "correct_choice": 1}]))
    with pytest.raises(DataError, match="correct_choice 1 is not a real option"):
        get_benchmark("longvideobench").load(bad, tmp_path)


def test_mlvu_embedded_options_and_prompt(tmp_path: Path) -> None:
    items = load("mlvu", "mlvu", tmp_path)
    assert [it.categories["task_type"] for it in items] == ["plotQA"] * 3 + ["count"] + \
        ["anomaly_reco"] * 2
    first = items[0]
    assert first.question == "What colour is the main character's car?"
    assert first.options == ("Red", "Black", "Yellow", "White")
    assert first.gold == "C"
    assert get_benchmark("mlvu").template.render(first) == (
        "What colour is the main character's car?\n(A) Red\n(B) Black\n(C) Yellow\n(D) White"
        "\nOnly give the best option.\nBest option: (")


def test_egoschema_only_subset_questions_with_answers(tmp_path: Path) -> None:
    items = load("egoschema", "egoschema/questions.json", tmp_path)
    assert [(it.id[:8], it.gold) for it in items] == [("0074f737", "D"), ("00b9a0de", "B")]
    assert items[0].options[3] == "C is cleaning dishes."
    assert items[0].video == tmp_path / "0074f737-11cb-497d-8d07-77c3a8127391.mp4"
    same = load("egoschema", "egoschema", tmp_path)  # the folder works too
    assert [it.id for it in same] == [it.id for it in items]


def test_nextqa_types_map_to_families_and_videos_via_map_file(tmp_path: Path) -> None:
    items = load("nextqa", "nextqa/val.csv", tmp_path)
    assert [it.categories["type_family"] for it in items] == [
        "causal", "temporal", "temporal", "descriptive", "descriptive"]
    assert [it.gold for it in items] == ["D", "B", "A", "C", "E"]
    assert items[0].id == "4010069381_6"
    assert items[0].video == tmp_path / "1001" / "4010069381.mp4"
    assert get_benchmark("nextqa").template.render(items[1]) == (
        "what did the boy do after he picked up the present\nA. cry\nB. unwrap it\n"
        "C. throw it away\nD. run outside\nE. dance")


def test_nextqa_unknown_type_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "val.csv"
    bad.write_text("video,question,answer,qid,type,a0,a1,a2,a3,a4\n1,q,0,1,XX,a,b,c,d,e\n")
    with pytest.raises(DataError, match=r"val.csv: row 2: unknown question type 'XX'"):
        get_benchmark("nextqa").load(bad, tmp_path)


def test_perceptiontest_official_nested_and_flat_forms(tmp_path: Path) -> None:
    items = load("perceptiontest", "perceptiontest/mc_question_valid.json", tmp_path)
    assert [(it.id, it.gold) for it in items] == [
        ("video_10909/0", "C"), ("video_10909/1", "B"), ("video_7560/0", "A")]
    assert items[2].categories == {"area": "physics", "reasoning": "counterfactual"}
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps([{"video_name": "video_1", "question": "q?",
                                 "options": ["x", "y", "z"], "answer_id": 2, "area": "semantics",
                                 "reasoning": "explanatory", "question_id": 5}]))
    (only,) = get_benchmark("perceptiontest").load(flat, tmp_path)
    assert (only.id, only.gold, only.video.name) == ("video_1/5", "C", "video_1.mp4")


def test_unreadable_annotation_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "videomme.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match=r"videomme\.json: not readable JSON"):
        get_benchmark("videomme").load(broken, tmp_path)
    with pytest.raises(DataError, match="missing field 'videoID'"):
        broken.write_text(json.dumps([{"question": "q"}]))
        get_benchmark("videomme").load(broken, tmp_path)
    record = {"videoID": "v", "duration": "short", "question": "q", "answer": "E",
              "options": ["A. a", "B. b", "C. c", "D. d"]}
    broken.write_text(json.dumps([record]))
    with pytest.raises(DataError, match=r"record 0: .*gold 'E' is not one of ABCD"):
        get_benchmark("videomme").load(broken, tmp_path)
    broken.write_text(json.dumps([{**record, "options": "A. a"}]))
    with pytest.raises(DataError, match="record 0: options must be a list of strings"):
        get_benchmark("videomme").load(broken, tmp_path)


def test_template_override_and_unknown_field() -> None:
    items = get_benchmark("perceptiontest").load(
        FIXTURES / "perceptiontest/mc_question_valid.json", Path("/nonexistent"))
    custom = PromptTemplate("Q: {question} [{letters}]\n{options}",
                            option_format="{letter}) {text}")
    assert custom.render(items[0]) == ("Q: Is the camera moving or static? [A, B, C]\n"
                                       "A) I don't know\nB) moving\nC) static or shaking")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['answer'\]"):
        PromptTemplate("{question} {answer}")
