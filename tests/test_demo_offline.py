"""``vidlm demo-offline``, the README's main job, run end to end on the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

from vidlm.cli import main


def test_main_job_answers_both_families_and_draws_the_frame_grids(tmp_path: Path,
                                                                    capsys) -> None:
    assert main(["demo-offline", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "answers.json").read_text())
    assert [r["family"] for r in results] == ["spatial", "temporal"]
    for r in results:
        # One of the allowed words, as every reply of the shipped model on the test split.
        assert r["answer"].lower().rstrip(".") in r["choices"], r
        assert r["correct"] == (r["answer"].lower().rstrip(".") == r["ground_truth"])
        assert (r["frames"], r["visual_tokens"], r["per_frame_tokens"]) == (16, 32, 1024)
        assert r["text_tokens"] > len(r["question"].split()), r  # the templated question
        grid = Path(r["frame_grid"])
        assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"A: {r['answer']}" in printed
    assert "Visual-token budget: slowfast" in printed


def test_missing_model_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no_model"
    assert main(["demo-offline", "--out", str(tmp_path), "--model", str(missing)]) != 0
    err = capsys.readouterr().err
    assert str(missing) in err and "vidlm_config.json" in err
