"""End-to-end metric arithmetic for every benchmark, with a scripted-reply test double.

``ScriptedModel`` is a test double, used only here: it answers with a fixed reply per
item (chosen by a substring of the prompt) so the expected metrics can be worked out
by hand. Real decoding runs: the runner reads each fixture clip with PyAV in worker
threads, and missing or corrupt videos are exercised for real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from vidlm.errors import ConfigError
from vidlm.eval.runner import EvalSettings, read_predictions, run_eval
from vidlm.model.config import SamplingConfig

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


class ScriptedModel:
    """Test double with VideoLM's ``ask`` interface: reply = script[the one key in the prompt]."""

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.calls: list[tuple[int, str]] = []  # (frames received, key)

    def ask(self, video: Any, question: str, **gen: Any) -> str:
        keys = [k for k in self.script if k in question]
        assert len(keys) == 1, f"script keys {keys} match prompt {question!r}"
        self.calls.append((len(video), keys[0]))
        return self.script[keys[0]]


def place(videos: Path, clip: Path, names: list[str], corrupt: tuple[str, ...] = ()) -> None:
    for name in names:
        target = videos / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, target)
    for name in corrupt:
        target = videos / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)


def evaluate(tmp_path: Path, benchmark: str, annotations: str, model: Any,
             **kw: Any) -> dict[str, Any]:
    settings = EvalSettings(benchmark=benchmark, annotations=FIXTURES / annotations,
                            videos=tmp_path / "videos", out=tmp_path / "out",
                            model_id="scripted", progress=False,
                            sampling=SamplingConfig(mode="uniform", num_frames=3), **kw)
    return run_eval(model, settings).metrics


def by(metrics: dict[str, Any], field: str) -> dict[str, float | None]:
    return {k: v["accuracy"] for k, v in metrics["by"][field].items()}


def test_videomme_by_duration_with_missing_videos(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["vmShortAAA1.mp4", "vmMediumBB1.mp4"])
    model = ScriptedModel({"How many planets": "The answer is (B).",  # B, correct
                           "Which planet appears": "A",  # gold C
                           "goalkeeper": "A. Saves the ball.",  # A, correct
                           "after the goal": "I am not sure."})  # no letter
    m = evaluate(tmp_path, "videomme", "videomme/videomme.json", model)
    assert m["accuracy"] == pytest.approx(100 * 2 / 6, abs=1e-3)  # missing videos count as wrong
    assert by(m, "duration") == {"long": 0.0, "medium": 50.0, "short": 50.0}
    assert list(m["by"]["duration"]) == ["short", "medium", "long"]  # the benchmark's order
    assert m["counts"] == {"items": 6, "scored": 6, "not_scored": 0, "correct": 2, "failed": 2,
                           "no_answer": 1, "failures_by_kind": {"missing": 2}}
    assert m["accuracy_excluding_failures"] == 50.0
    assert m["accuracy_answered_only"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert [f["id"] for f in m["failures"]] == ["601-1", "601-2"]
    assert all(n == 3 for n, _ in model.calls) and len(model.calls) == 4
    assert m["headline"] == {"name": "accuracy", "value": m["accuracy"]}


def test_mvbench_corrupt_video_is_a_counted_failure(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4,
          ["ssv2_video_mp4/166583.webm", "ssv2_video_mp4/91471.webm",
           "perception/videos/video_10006.mp4"], corrupt=("perception/videos/video_10011.mp4",))
    model = ScriptedModel({"(A) Not sure": "(C) Piling something up",
                           "(A) Pushing something from left": "B",
                           "(A) Under the first object": "Under the second object from the left."})
    m = evaluate(tmp_path, "mvbench", "mvbench", model)
    assert m["accuracy"] == 50.0
    assert by(m, "task") == {"action_antonym": 50.0, "object_shuffle": 50.0}
    assert m["counts"]["failures_by_kind"] == {"unreadable": 1}
    (failure,) = m["failures"]
    assert failure["id"] == "object_shuffle/1" and "video_10011.mp4" in failure["reason"]


def test_longvideobench_by_duration_group(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["86CxyhFV9MI.mp4", "Jq3r9yZcEo0.mp4"])
    model = ScriptedModel({"which subtitles": "B", "mug": "E", "chef": "The answer is C"})
    m = evaluate(tmp_path, "longvideobench", "longvideobench/lvb_val.json", model)
    assert m["accuracy"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert by(m, "duration_group") == {"15": 0.0, "600": 100.0}
    assert list(m["by"]["duration_group"]) == ["15", "600"]  # numbers by value


def test_mlvu_headline_is_unweighted_mean_of_tasks(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["movie101_66.mp4", "movie101_70.mp4", "count_13.mp4",
                                           "surveil_4.mp4", "surveil_9.mp4"])
    model = ScriptedModel({"main character's car": "C)", "story begin": "A",
                           "opens the door": "A) The boy", "man jump": "B",
                           "(A) Shoplifting": "C", "(A) Explosion": "B"})
    m = evaluate(tmp_path, "mlvu", "mlvu", model)
    tasks = by(m, "task_type")
    assert tasks == pytest.approx({"anomaly_reco": 50.0, "count": 100.0,
                                   "plotQA": 100 * 2 / 3}, abs=1e-3)
    assert m["headline"]["value"] == pytest.approx((50 + 100 + 200 / 3) / 3, abs=1e-3)
    assert m["accuracy"] == pytest.approx(100 * 4 / 6, abs=1e-3)  # differs from the headline


def test_egoschema_subset_accuracy(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["0074f737-11cb-497d-8d07-77c3a8127391.mp4",
                                           "00b9a0de-c59e-49cb-a127-6081e2fb8c8e.mp4"])
    model = ScriptedModel({"primary objective": "D", "cup of water": "To thin the paint."})
    m = evaluate(tmp_path, "egoschema", "egoschema/questions.json", model)
    assert m["accuracy"] == 50.0 and m["counts"]["items"] == 2


def test_nextqa_accuracy_by_type_family(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["1001/4010069381.mp4", "0003/3379081813.mp4",
                                           "1025/6233408665.mp4"])
    model = ScriptedModel({"why did the boy": "D", "after he picked": "unwrap it",
                           "before he started": "B", "how many people": "C",
                           "where are the people": ""})
    m = evaluate(tmp_path, "nextqa", "nextqa/val.csv", model)
    assert m["accuracy"] == 60.0
    assert by(m, "type_family") == {"causal": 100.0, "descriptive": 50.0, "temporal": 50.0}
    assert by(m, "type") == {"CW": 100.0, "DC": 100.0, "DL": 0.0, "TN": 100.0, "TP": 0.0}
    assert m["counts"]["no_answer"] == 1


def test_perceptiontest_by_area(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["video_10909.mp4", "video_7560.mp4"])
    model = ScriptedModel({"camera moving": "C", "How many objects": "A", "lets go": "A"})
    m = evaluate(tmp_path, "perceptiontest", "perceptiontest/mc_question_valid.json", model)
    assert m["accuracy"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert by(m, "area") == {"memory": 0.0, "physics": 100.0}
    assert by(m, "reasoning") == {"counterfactual": 100.0, "descriptive": 50.0}


def test_outputs_provenance_and_rule_choice(tmp_path: Path, small_mp4: Path) -> None:
    place(tmp_path / "videos", small_mp4, ["video_10909.mp4", "video_7560.mp4"])
    model = ScriptedModel({"camera moving": "C", "How many objects": "At first, two",
                           "lets go": "it falls"})
    m = evaluate(tmp_path, "perceptiontest", "perceptiontest/mc_question_valid.json", model,
                 rule="lmms_eval_first_capital")
    rows = read_predictions(tmp_path / "out" / "predictions.jsonl")
    assert [(r["reply"], r["extracted"], r["gold"], r["correct"]) for r in rows] == [
        ("C", "C", "C", True), ("At first, two", "A", "B", False), ("it falls", "", "A", False)]
    prov = m["provenance"]
    assert prov["scoring"]["extraction"]["rule"] == "lmms_eval_first_capital"
    assert prov["scoring"]["extraction"]["version"].startswith("1.1 (lmms-eval Video-MME")
    assert prov["sampling"] == {"mode": "uniform", "fps": 1.0, "max_frames": 64, "num_frames": 3}
    assert prov["prompt_template"]["text"].startswith("{question}\n{options}")
    assert prov["model"]["id"] == "scripted" and prov["vidlm_version"]
    assert len(prov["annotations"]["sha256"]) == 64 and prov["date"].endswith("+00:00")
    assert "commit" in prov["git"]
    png = (tmp_path / "out" / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["accuracy"] == m["accuracy"]


def test_resume_skips_finished_items_and_retries_failures(tmp_path: Path, small_mp4: Path) -> None:
    videos = tmp_path / "videos"
    place(videos, small_mp4, ["vmShortAAA1.mp4", "vmMediumBB1.mp4"])
    script = {"How many planets": "B", "Which planet appears": "C", "goalkeeper": "A",
              "after the goal": "C", "mainly about": "B", "road sign": "D"}
    first = ScriptedModel(script)
    m1 = evaluate(tmp_path, "videomme", "videomme/videomme.json", first, limit=5)
    assert m1["counts"]["items"] == 5 and m1["counts"]["failed"] == 1 and len(first.calls) == 4
    place(videos, small_mp4, ["vmLongCCCC1.mp4"])  # the missing video turns up
    second = ScriptedModel(script)
    m2 = evaluate(tmp_path, "videomme", "videomme/videomme.json", second)
    assert [k for _, k in second.calls] == ["mainly about", "road sign"]
    assert m2["accuracy"] == 100.0 and m2["counts"]["failed"] == 0
    assert m2["provenance"]["resumed_rows"] == 5
    with pytest.raises(ConfigError, match="different settings"):
        evaluate(tmp_path, "videomme", "videomme/videomme.json", ScriptedModel(script),
                 rule="lmms_eval_ranked")


@pytest.mark.parametrize(("extra", "message"), [
    (["--max-frames", "8"], "--max-frames goes with --fps"),
    (["--fps", "0"], "--fps must be > 0"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--prompt-template", "{question} {gold}"], "unknown field(s) ['gold']"),
])
def test_cli_rejects_bad_options_in_one_line(tmp_path: Path, capsys: Any, extra: list[str],
                                            message: str) -> None:
    from vidlm.cli import main

    code = main(["eval", "--benchmark", "nextqa", "--annotations",
                 str(FIXTURES / "nextqa/val.csv"), "--videos", str(tmp_path),
                 "--model", str(tmp_path / "no-model"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 1 and message in err and "\n" not in err


def test_model_description_hashes_checkpoint_and_external_gguf(tmp_path: Path) -> None:
    import hashlib

    from vidlm.eval.provenance import checkpoint_hash, model_description
    from vidlm.model.config import LanguageModelConfig, VideoLMConfig

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights")
    (ckpt / "vidlm_config.json").write_text("{}")
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    (lm_dir / "m.gguf").write_bytes(b"gguf bytes")

    class WithConfig:
        config = VideoLMConfig(language_model=LanguageModelConfig(
            name_or_path=str(lm_dir), gguf_file="m.gguf"))

    desc = model_description(WithConfig(), "my-model", ckpt)
    assert desc["language_model_sha256"] == hashlib.sha256(b"gguf bytes").hexdigest()
    assert desc["checkpoint_sha256"] == checkpoint_hash(ckpt)
    (ckpt / "model.safetensors").write_bytes(b"other weights")
    assert checkpoint_hash(ckpt) != desc["checkpoint_sha256"]  # any weight change shows
    assert desc["resolution"]["image_size"] == 336 and desc["id"] == "my-model"


def test_cli_frame_options_become_sampling_configs() -> None:
    import argparse

    from vidlm.commands.eval import register, sampling_from_args

    parser = argparse.ArgumentParser()
    register(parser)
    base = ["--benchmark", "mlvu", "--annotations", "a", "--videos", "v", "--model", "m"]
    assert sampling_from_args(parser.parse_args([*base, "--fps", "2", "--max-frames", "3"])) == \
        SamplingConfig(mode="fps", fps=2.0, max_frames=3)
    assert sampling_from_args(parser.parse_args([*base, "--num-frames", "8"])) == \
        SamplingConfig(mode="uniform", num_frames=8)
    assert sampling_from_args(parser.parse_args(base)) is None  # the model's own config
    with pytest.raises(SystemExit):  # argparse: mutually exclusive
        parser.parse_args([*base, "--fps", "1", "--num-frames", "8"])


def test_likelihood_scoring_needs_a_videolm(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="likelihood scoring needs a VideoLM"):
        evaluate(tmp_path, "egoschema", "egoschema", ScriptedModel({}), scoring="likelihood")


def test_prefetch_keeps_order_and_bounds_work_in_flight() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from vidlm.eval.items import EvalItem
    from vidlm.eval.runner import prefetch

    items = [EvalItem(id=str(i), video=Path(f"{i}.mp4"), question="q", options=("a", "b"),
                      gold="A") for i in range(12)]
    lock = threading.Lock()
    running, peak, started = [0], [0], []

    def work(item: EvalItem) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.append(item.id)
        time.sleep(0.01 * (int(item.id) % 3))  # finish out of order
        with lock:
            running[0] -= 1
        return item.id

    with ThreadPoolExecutor(4) as pool:
        out = []
        for item, result in prefetch(pool, items, work, window=3):
            out.append((item.id, result))
            assert len(started) <= len(out) + 3  # never more than `window` ahead
    assert out == [(str(i), str(i)) for i in range(12)]
    assert peak[0] <= 3
