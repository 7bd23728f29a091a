"""``vidlm chat``: multi-turn, encoded once, streamed, /reset and /frames; driven through stdin."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vidlm.cli import main
from vidlm.commands.chat import chat_loop
from vidlm.feature_cache import FeatureCache
from vidlm.serve.encoding import CachedEncoder
from vidlm.serve.session import ChatSession
from vidlm.testing import tiny_videolm

GEN = {"max_new_tokens": 6}


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_videolm("slowfast", num_frames=4, slow_frames=2)


@pytest.fixture(scope="module")
def checkpoint(model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    model.save_pretrained(folder)
    return folder


def _count_encodes(model: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    original = model.encode_video

    def counting(video: Any, sampling: Any = None) -> Any:
        calls.append(video)
        return original(video, sampling=sampling)

    monkeypatch.setattr(model, "encode_video", counting)
    return calls


def test_session_encodes_once_and_keeps_history(model: Any, small_mp4: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_encodes(model, monkeypatch)
    session = ChatSession(model, small_mp4, generation=GEN)
    first = "".join(session.ask("What happens?"))
    second = "".join(session.ask("And then?"))
    assert len(calls) == 1 and session.turns == 2
    assert session.history[0]["content"].startswith("<video>")
    assert session.history[1]["content"] == first and session.history[3]["content"] == second
    direct = model.ask(session.visual, "What happens?", stream=False, **GEN)
    assert first == direct  # the first turn is exactly a single-question ask
    session.reset()
    assert session.history == [] and "".join(session.ask("What happens?")) == first
    assert len(calls) == 1


def test_chat_loop_over_stdin(model: Any, small_mp4: Path, tmp_path: Path) -> None:
    session = ChatSession(model, small_mp4, generation=GEN)
    session.start()
    grid = tmp_path / "grid.png"
    stdin = io.StringIO(f"What happens?\n\n/frames {grid}\nWhat next?\n/reset\nWhat happens?\n"
                        "/bogus\n/quit\nnever read\n")
    out = io.StringIO()
    assert chat_loop(session, stdin, out) == 0
    text = out.getvalue()
    assert text.count("vidlm> ") == 3
    first = model.ask(session.visual, "What happens?", stream=False, **GEN)
    assert text.count(f"vidlm> {first}\n") == 2  # /reset: same question, same answer again
    assert session.history[1]["content"] == first and session.turns == 1
    frame_lines = [line for line in text.splitlines() if line.strip().startswith("frame ")
                   and " t=" in line]
    stamps = [float(line.split("t=")[1].split()[0]) for line in frame_lines]
    np.testing.assert_allclose(stamps, session.visual.frames.timestamps, atol=1e-3)
    assert len(stamps) == 4 and stamps == sorted(stamps) and 0 <= stamps[0] < stamps[-1] <= 4
    marks = [line.split()[-1] for line in frame_lines]
    assert "slow" in marks  # slow-pathway frames are labelled
    with Image.open(grid) as img:
        assert img.format == "PNG" and img.width > 100
    assert "unknown command /bogus" in text and "never read" not in text
    assert "conversation cleared" in text


def test_cli_main_in_process(checkpoint: Path, small_mp4: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["chat", str(small_mp4), "--model", str(checkpoint), "--cache-dir",
            str(tmp_path / "cache"), "--max-new-tokens", "5", "--num-frames", "3"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("Describe it.\n/reset\nDescribe it.\n"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 frames ->" in out and out.count("vidlm> ") == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("Describe it.\n"))
    assert main(args) == 0
    assert "(from the cache)" in capsys.readouterr().out
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    assert main(["chat", str(bad), "--model", str(checkpoint), "--no-cache"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vidlm chat: error:") and "broken.mp4" in err[0]
    assert main([*args[:-2], "--num-frames", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--num-frames" in err[0]


@pytest.mark.slow
def test_cli_chat_streams_and_second_run_hits_cache(checkpoint: Path, small_mp4: Path,
                                                    tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "vidlm.cli", "chat", str(small_mp4), "--model", str(checkpoint),
           "--cache-dir", str(tmp_path / "cache"), "--max-new-tokens", "5", "--num-frames", "3"]
    feed = f"Describe it.\n/frames {tmp_path / 'g.png'}\n/reset\nDescribe it.\n"
    first = subprocess.run(cmd, input=feed, capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "3 frames ->" in first.stdout and "in " in first.stdout.splitlines()[0]
    answers = [ln for ln in first.stdout.splitlines() if ln.startswith("vidlm> ")]
    assert len(answers) == 2 and answers[0] == answers[1]
    assert (tmp_path / "g.png").is_file()
    assert len(FeatureCache(tmp_path / "cache")) == 1
    second = subprocess.run(cmd, input="Describe it.\n", capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "(from the cache)" in second.stdout.splitlines()[0]
    assert [ln for ln in second.stdout.splitlines() if ln.startswith("vidlm> ")] == answers[:1]


@pytest.mark.slow
def test_cli_chat_bad_video_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    proc = subprocess.run([sys.executable, "-m", "vidlm.cli", "chat", str(bad), "--model",
                           str(checkpoint), "--no-cache"], input="hi\n", capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidlm chat: error:")
    assert "broken.mp4" in lines[0]
    assert "Traceback" not in proc.stderr


def test_cache_makes_a_new_session_skip_encoding(model: Any, small_mp4: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path / "c")
    ChatSession(model, small_mp4, encoder=CachedEncoder(model, cache)).start()
    calls = _count_encodes(model, monkeypatch)
    again = ChatSession(model, small_mp4, encoder=CachedEncoder(model, cache), generation=GEN)
    report = again.start()
    assert report.from_cache and calls == []
    fresh = ChatSession(model, small_mp4, generation=GEN)
    assert "".join(again.ask("Hi?")) == "".join(fresh.ask("Hi?"))  # cached tokens are the same
