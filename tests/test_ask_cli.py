"""``vidlm ask``: streams the model's answer; a missing model is one sentence, exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vidlm.cli import main
from vidlm.model.config import SamplingConfig
from vidlm.testing import tiny_videolm


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    tiny_videolm("slowfast", slow_frames=2, fast_grid=2, seed=3).save_pretrained(folder)
    return folder


def test_ask_prints_the_models_answer(checkpoint: Path, small_mp4: Path, capsys) -> None:
    from vidlm.model.videolm import VideoLM

    rc = main(["ask", str(small_mp4), "What happens?", "--model", str(checkpoint),
               "--num-frames", "3", "--max-new-tokens", "6"])
    out = capsys.readouterr().out
    assert rc == 0
    expected = VideoLM.from_pretrained(checkpoint).ask(
        small_mp4, "What happens?", sampling=SamplingConfig(mode="uniform", num_frames=3),
        max_new_tokens=6)
    assert out == expected + "\n"


def test_ask_overrides_reach_the_model(checkpoint: Path, small_mp4: Path, capsys) -> None:
    rc = main(["ask", str(small_mp4), "What happens?", "--model", str(checkpoint),
               "--num-frames", "40", "--max-new-tokens", "4",
               "--set", "language_model.max_context=120",
               "--set", "context.on_overflow=drop_frames"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "note:" in captured.err and "of 40 frames to fit the 120-token context" in \
        captured.err


def test_context_overflow_is_one_line(checkpoint: Path, small_mp4: Path, capsys) -> None:
    rc = main(["ask", str(small_mp4), "What happens?", "--model", str(checkpoint),
               "--num-frames", "40", "--set", "language_model.max_context=120"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("vidlm ask: error: the prompt needs") and err.count("\n") == 1


def test_missing_model_is_one_sentence_without_traceback(tmp_path: Path, small_mp4: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "vidlm.cli", "ask", str(small_mp4), "Hi?",
                           "--model", "llava-hf/llava-1.5-7b-hf"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "llava-hf/llava-1.5-7b-hf" in lines[0]
    assert "huggingface-cli download llava-hf/llava-1.5-7b-hf" in lines[0]


def test_missing_video_is_one_line(checkpoint: Path, tmp_path: Path, capsys) -> None:
    rc = main(["ask", str(tmp_path / "nope.mp4"), "Hi?", "--model", str(checkpoint)])
    err = capsys.readouterr().err
    assert rc == 1 and "nope.mp4" in err and err.count("\n") == 1
