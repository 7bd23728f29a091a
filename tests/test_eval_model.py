"""Evaluation through the real (tiny, random-weight) VideoLM: likelihood arithmetic and
``vidlm eval`` end to end from a saved checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from vidlm.cli import main
from vidlm.eval.extraction import get_rule
from vidlm.eval.likelihood import continuation_ids, score_continuations
from vidlm.testing import random_frames, tiny_videolm

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


@pytest.fixture(scope="module")
def tiny() -> Any:
    return tiny_videolm(num_frames=2)


@pytest.fixture(scope="module")
def checkpoint(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    tiny.save_pretrained(folder)
    return folder


def reference_logprob(model: Any, frames: Any, prompt: str, continuation: str) -> float:
    """Independent check: -(mean CE loss from forward(labels=...)) x continuation length."""
    visual = model.encode_video(frames)
    inputs = model.build_inputs([{"role": "user", "content": prompt}], [visual])
    cont = continuation_ids(model.tokenizer, continuation)
    ids = torch.cat([inputs["input_ids"], torch.tensor([cont])], dim=1)
    labels = ids.clone()
    labels[:, : inputs["input_ids"].shape[1]] = -100
    with torch.no_grad():
        out = model.forward(ids, labels=labels, visual_tokens=inputs["visual_tokens"])
    return -float(out.loss) * len(cont)


def test_batched_likelihood_matches_per_option_loss(tiny: Any) -> None:
    frames = random_frames(2, seed=3)
    prompt = "What is shown?\nA. a cat\nB. a dog running fast"
    conts = ["A", "B", "a dog running fast", "a cat"]
    scores = score_continuations(tiny, [frames], prompt, conts)
    for cont, score in zip(conts, scores, strict=True):
        assert score.num_tokens == len(continuation_ids(tiny.tokenizer, cont))
        assert score.logprob == pytest.approx(reference_logprob(tiny, frames, prompt, cont),
                                              abs=1e-4)
    assert all(s.logprob < 0 for s in scores)


def test_likelihood_depends_on_the_video(tiny: Any) -> None:
    a = score_continuations(tiny, [random_frames(2, seed=1)], "Q?", ["A"])[0].logprob
    b = score_continuations(tiny, [random_frames(2, seed=2)], "Q?", ["A"])[0].logprob
    assert a != pytest.approx(b, abs=1e-6)


def _videos(tmp_path: Path, clip: Path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("video_10909.mp4", "video_7560.mp4"):
        shutil.copyfile(clip, videos / name)
    return videos


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_cli_eval_with_real_tiny_model_generate(tmp_path: Path, checkpoint: Path,
                                                small_mp4: Path, capsys: Any) -> None:
    videos = _videos(tmp_path, small_mp4)
    out = tmp_path / "out"
    code = main(["eval", "--benchmark", "perceptiontest",
                 "--annotations", str(FIXTURES / "perceptiontest/mc_question_valid.json"),
                 "--videos", str(videos), "--model", str(checkpoint), "--num-frames", "2",
                 "--out", str(out), "--workers", "2", "--max-new-tokens", "4", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "perceptiontest: accuracy" in printed and "area" in printed
    rows = _rows(out)
    assert len(rows) == 3 and all(r["failure"] is None and r["num_frames"] == 2 for r in rows)
    rule = get_rule("robust")
    options = {"video_10909/0": ["I don't know", "moving", "static or shaking"],
               "video_10909/1": ["2", "3", "4"],
               "video_7560/0": ["it falls", "it floats", "nothing"]}
    for r in rows:
        assert r["extracted"] == rule(r["reply"], options[r["id"]])
        assert r["correct"] == (r["extracted"] == r["gold"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(100 * sum(r["correct"] for r in rows) / 3,
                                                abs=1e-3)
    prov = metrics["provenance"]
    assert prov["model"]["checkpoint_sha256"] and len(prov["model"]["checkpoint_sha256"]) == 64
    assert prov["model"]["connector"]["name"] == "mlp2x_gelu"
    assert prov["model"]["resolution"]["image_size"] == 32 and prov["decode_size"] == 32
    assert prov["sampling"]["num_frames"] == 2


def test_cli_eval_likelihood_scoring_picks_the_argmax(tmp_path: Path, checkpoint: Path,
                                                      small_mp4: Path, tiny: Any) -> None:
    videos = _videos(tmp_path, small_mp4)
    out = tmp_path / "out"
    assert main(["eval", "--benchmark", "perceptiontest",
                 "--annotations", str(FIXTURES / "perceptiontest/mc_question_valid.json"),
                 "--videos", str(videos), "--model", str(checkpoint), "--num-frames", "2",
                 "--scoring", "likelihood", "--out", str(out), "--quiet"]) == 0
    rows = _rows(out)
    for r in rows:
        lls = r["loglikelihoods"]
        assert set(lls) == {"A", "B", "C"} and r["reply"] is None
        assert r["extracted"] == max(lls, key=lls.__getitem__)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["scoring"] == {
        "method": "likelihood", "target": "letter", "choice": "highest summed log-probability",
        "extraction": None}


def test_cli_eval_bad_input_is_one_line_error(tmp_path: Path, checkpoint: Path,
                                              capsys: Any) -> None:
    code = main(["eval", "--benchmark", "videomme", "--annotations", str(tmp_path / "no.json"),
                 "--videos", str(tmp_path), "--model", str(checkpoint), "--out",
                 str(tmp_path / "o"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no.json: annotation file not found" in err


@pytest.mark.slow
def test_real_smollm2_language_model_end_to_end(tmp_path: Path, small_mp4: Path) -> None:
    """SmolLM2-135M-Instruct (real weights, chat template) behind a tiny vision tower."""
    from vidlm.eval.runner import EvalSettings, run_eval
    from vidlm.testing import smollm2_videolm

    videos = tmp_path / "videos"
    for name in ("1001/4010069381.mp4", "0003/3379081813.mp4"):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(small_mp4, videos / name)
    model = smollm2_videolm(num_frames=2)
    result = run_eval(model, EvalSettings(
        benchmark="nextqa", annotations=FIXTURES / "nextqa/val.csv", videos=videos,
        out=tmp_path / "out", model_id="smollm2-tiny-vision", limit=3, max_new_tokens=12,
        progress=False))
    rows = _rows(tmp_path / "out")
    rule = get_rule("robust")
    options = {"4010069381_6": ["share with the girl", "approach lady sitting there", "unwrap it",
                                "playing with toy train", "gift for baby"],
               "4010069381_7": ["cry", "unwrap it", "throw it away", "run outside", "dance"],
               "3379081813_2": ["playing guitar", "eating", "sleeping", "reading", "swimming"]}
    assert [r["id"] for r in rows] == list(options)
    for r in rows:
        assert isinstance(r["reply"], str) and r["reply"].strip()
        assert r["extracted"] == rule(r["reply"], options[r["id"]])
    assert result.metrics["counts"]["correct"] == sum(r["correct"] for r in rows)
    assert result.metrics["provenance"]["model"]["language_model_sha256"]
