"""``vidlm batch``: answers, error records, resume, parallel decoding, cache, summary."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from vidlm.cli import main
from vidlm.feature_cache import FeatureCache
from vidlm.serve.batch import BatchRunner
from vidlm.serve.encoding import CachedEncoder
from vidlm.testing import tiny_videolm

GEN = {"max_new_tokens": 5}


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_videolm("slowfast", num_frames=4, slow_frames=2)


@pytest.fixture()
def job(tmp_path: Path, small_mp4: Path, bikes_mp4: Path) -> Path:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "small.mp4").write_bytes(small_mp4.read_bytes())
    (tmp_path / "clips" / "broken.mp4").write_bytes(b"definitely not a video" * 40)
    lines = [
        json.dumps({"id": "a", "video": "clips/small.mp4", "question": "What happens?"}),
        json.dumps({"id": 2, "video": str(bikes_mp4), "questions": ["Who?", "Where?"]}),
        json.dumps({"id": "bad", "video": "clips/broken.mp4", "question": "What?"}),
        json.dumps({"id": "gone", "video": "clips/missing.mp4", "question": "What?"}),
        "{this is not json",
        json.dumps({"id": "noq", "video": "clips/small.mp4"}),
        json.dumps({"id": "a", "video": "clips/small.mp4", "question": "Again?"}),
        "",
        json.dumps({"id": "z", "video": "clips/small.mp4", "question": "Colours?"}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(path: Path) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in map(json.loads, path.read_text().splitlines())
            if not r.get("duplicate")}


def test_answers_errors_and_summary(model: Any, job: Path, tmp_path: Path,
                                    bikes_mp4: Path) -> None:
    out = tmp_path / "out.jsonl"
    seen: list[tuple[int, int]] = []
    summary = BatchRunner(model, generation=GEN, workers=2).run(
        job, out, progress=lambda d, t: seen.append((d, t)))
    recs = _records(out)
    assert set(recs) == {"a", "2", "bad", "gone", "line-5", "noq", "z"}
    assert recs["a"]["answer"] == model.ask(tmp_path / "clips" / "small.mp4", "What happens?",
                                            **GEN)
    assert recs["a"]["num_frames"] == 4 and recs["a"]["question"] == "What happens?"
    assert recs["2"]["questions"] == ["Who?", "Where?"] and len(recs["2"]["answers"]) == 2
    assert recs["2"]["answers"][1] == model.ask(bikes_mp4, "Where?", **GEN)
    assert recs["bad"]["error"]["type"].endswith("Error")
    assert "broken.mp4" in recs["bad"]["error"]["message"]
    assert "missing.mp4" in recs["gone"]["error"]["message"]
    assert "line 5" in recs["line-5"]["error"]["message"]
    assert "question" in recs["noq"]["error"]["message"]
    dup = [r for r in map(json.loads, out.read_text().splitlines()) if r.get("duplicate")]
    assert len(dup) == 1 and "duplicate id 'a'" in dup[0]["error"]["message"]
    assert (summary.total, summary.done, summary.errors, summary.skipped) == (8, 3, 5, 0)
    assert summary.error_kinds["DataError"] == 3
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    assert "8 records: 3 answered, 5 failed" in summary.line()


def test_resume_skips_finished_ids_and_repairs_a_torn_line(model: Any, job: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    runner = BatchRunner(model, generation=GEN)
    runner.run(job, out)
    full = out.read_text()
    again = runner.run(job, out)
    assert out.read_text() == full and again.skipped == 8 and again.done == 0
    lines = full.splitlines(keepends=True)
    z_line = next(i for i, ln in enumerate(lines) if json.loads(ln)["id"] == "z")
    torn = "".join(lines[:z_line]) + lines[z_line][:15]  # crashed while writing "z"
    out.write_text(torn)
    resumed = runner.run(job, out)
    assert (resumed.done, resumed.skipped) == (1, 7)
    assert _records_from(out.read_text())["z"] == _records_from(full)["z"]
    assert all(json.loads(ln) for ln in out.read_text().splitlines())  # every line valid


def _records_from(text: str) -> dict[str, dict[str, Any]]:
    recs = {}
    for r in map(json.loads, text.splitlines()):
        if not r.get("duplicate"):
            r.pop("seconds", None)
            recs[str(r["id"])] = r
    return recs


def test_retry_errors_redoes_only_failed_records(model: Any, job: Path, tmp_path: Path,
                                                 small_mp4: Path) -> None:
    out = tmp_path / "out.jsonl"
    runner = BatchRunner(model, generation=GEN)
    runner.run(job, out)
    (tmp_path / "clips" / "missing.mp4").write_bytes(small_mp4.read_bytes())  # fixed now
    summary = runner.run(job, out, retry_errors=True)
    assert summary.skipped == 4  # a, 2, z were fine (and the duplicate of a)
    assert "answer" in _records(out)["gone"]  # the newer record supersedes the error
    assert "error" in _records(out)["bad"]


def test_decoding_runs_in_worker_threads_and_model_on_caller(model: Any, job: Path,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    decode_threads: set[str] = set()
    encode_threads: set[str] = set()
    read, encode = model.read_video, model.encode_video

    def reading(*a: Any, **k: Any) -> Any:
        decode_threads.add(threading.current_thread().name)
        return read(*a, **k)

    def encoding(*a: Any, **k: Any) -> Any:
        encode_threads.add(threading.current_thread().name)
        return encode(*a, **k)

    monkeypatch.setattr(model, "read_video", reading)
    monkeypatch.setattr(model, "encode_video", encoding)
    BatchRunner(model, generation=GEN, workers=3).run(job, tmp_path / "out.jsonl")
    assert decode_threads and all(n.startswith("vidlm-decode") for n in decode_threads)
    assert encode_threads == {threading.current_thread().name}


def test_cache_hits_skip_decoding(model: Any, job: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path / "cache")
    BatchRunner(model, encoder=CachedEncoder(model, cache), generation=GEN).run(
        job, tmp_path / "first.jsonl")
    reads: list[Any] = []
    read = model.read_video
    monkeypatch.setattr(model, "read_video", lambda *a, **k: reads.append(a) or read(*a, **k))
    BatchRunner(model, encoder=CachedEncoder(model, cache), generation=GEN).run(
        job, tmp_path / "second.jsonl")
    # only the failures are read again (by the decode pool, so in either order)
    assert sorted(Path(a[0]).name for a in reads) == ["broken.mp4", "missing.mp4"]
    assert _records_from((tmp_path / "first.jsonl").read_text()) == \
        _records_from((tmp_path / "second.jsonl").read_text())


def test_cli_batch(job: Path, tmp_path: Path, model: Any,
                   capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    args = ["batch", str(job), str(tmp_path / "o.jsonl"), "--model", str(ckpt), "--no-cache",
            "--max-new-tokens", "3", "--num-frames", "2", "--workers", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "8 records: 3 answered, 5 failed" in captured.out
    assert "ETA" in captured.err  # the progress bar
    assert _records(tmp_path / "o.jsonl")["a"]["num_frames"] == 2
    assert main(args) == 0
    assert "8 already done" in capsys.readouterr().out
    assert main(["batch", str(tmp_path / "nope.jsonl"), "o.jsonl", "--model", str(ckpt)]) == 1
    assert "nope.jsonl" in capsys.readouterr().err
