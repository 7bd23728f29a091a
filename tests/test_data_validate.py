"""The LLaVA schema and `vidlm data validate` on good and bad records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidlm.cli import main
from vidlm.data.schema import RecordError, load_records, parse_record
from vidlm.data.validate import MediaChecker, length_function, validate_records


def conv(q: str = "<video>\nWhat happens?", a: str = "A square moves.") -> list[dict]:
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


@pytest.fixture()
def media_root(tmp_path: Path, small_mp4: Path) -> Path:
    root = tmp_path / "media"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "a.mp4").write_bytes(small_mp4.read_bytes())
    (root / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    return root


GOOD = [
    {"id": "v1", "video": "clips/a.mp4", "conversations": conv()},
    {"id": "v2", "video": ["clips/a.mp4", "clips/a.mp4"],
     "conversations": conv("<video> then <image>: same?", "Yes.")},
    {"id": "t1", "conversations": conv("Say hi.", "Hi.")},
    {"id": 7, "image": "clips/a.mp4",
     "conversations": [*conv("<image>\nColour?", "Red."), *conv("And now?", "Blue.")]},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_good_records_parse_and_validate(tmp_path: Path, media_root: Path) -> None:
    path = write_jsonl(tmp_path / "good.jsonl", GOOD)
    records, errors = load_records(path)
    assert errors == []
    assert [r.id for r in records] == ["v1", "v2", "t1", "7"]
    assert [len(r.media) for r in records] == [1, 2, 0, 1]
    assert records[3].messages()[2] == {"role": "user", "content": "And now?"}
    report = validate_records(path, MediaChecker(media_root))
    assert report.ok, [str(p) for p in report.problems]
    assert (report.num_records, report.num_valid, report.num_media) == (4, 4, 4)


def test_json_array_reports_line_numbers(tmp_path: Path) -> None:
    text = "[\n" + ",\n".join(json.dumps(r) for r in GOOD[:2]) + ",\n" + \
        json.dumps({"id": "bad", "conversations": conv("no marker", "x"), "video": "a.mp4"}) + "\n]"
    path = tmp_path / "d.json"
    path.write_text(text)
    report = validate_records(path, None)
    assert [(p.line, p.record_id, p.kind) for p in report.errors] == [(4, "bad", "placeholders")]


BAD = [
    ("{not json", None, "json", "invalid JSON"),
    ({"conversations": conv("hi", "ho")}, None, "fields", "missing 'id'"),
    ({"id": "r1", "video": "clips/a.mp4", "conversations": conv("no marker")}, "r1",
     "placeholders", "0 <image>/<video> placeholder(s) but 1 media"),
    ({"id": "r2", "conversations": conv()}, "r2", "placeholders", "1 <image>/<video>"),
    ({"id": "r3", "conversations": [{"from": "gpt", "value": "x"}]}, "r3", "fields",
     "alternate"),
    ({"id": "r4", "conversations": [{"from": "human", "value": "x"}]}, "r4", "fields",
     "no 'gpt' turn"),
    ({"id": "r5", "conversations": [{"from": "robot", "value": "x"}]}, "r5", "fields",
     "'from' must be"),
    ({"id": "r6", "video": "clips/missing.mp4", "conversations": conv()}, "r6", "media",
     "not found"),
    ({"id": "r7", "video": "clips/broken.mp4", "conversations": conv()}, "r7", "media", ""),
    ({"id": "r8", "image": "x.png", "video": "y.mp4", "conversations": conv()}, "r8", "fields",
     "both 'image' and 'video'"),
]


def test_bad_records_each_reported_with_line_and_id(tmp_path: Path, media_root: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD[0], *[b[0] for b in BAD]])
    report = validate_records(path, MediaChecker(media_root))
    assert report.num_records == 1 + len(BAD) and report.num_valid == 1
    got = {p.line: p for p in report.errors}
    assert sorted(got) == list(range(2, 2 + len(BAD)))
    for line, (_, rid, kind, text) in enumerate(BAD, start=2):
        assert got[line].record_id == rid and got[line].kind == kind, got[line]
        assert text in got[line].message, got[line]
    assert "broken.mp4" in got[2 + 8].message


def test_parse_record_error_is_typed() -> None:
    with pytest.raises(RecordError) as info:
        parse_record({"id": "q", "conversations": []}, line=3, source="f.jsonl")
    assert info.value.line == 3 and info.value.record_id == "q"
    assert str(info.value).startswith("f.jsonl:3 (id q): ")


def test_length_against_context(tmp_path: Path, media_root: Path) -> None:
    from vidlm.testing import tiny_videolm

    model = tiny_videolm(num_frames=4)  # 4 frames x 16 patch tokens = 64 visual tokens
    path = write_jsonl(tmp_path / "len.jsonl", GOOD[:1])
    fn = length_function(model)
    report = validate_records(path, MediaChecker(media_root, sampling=model.config.sampling),
                              length_fn=fn, context=2048)
    assert report.ok and report.length_checked
    assert 64 < report.max_length < 120
    tight = validate_records(path, MediaChecker(media_root, sampling=model.config.sampling),
                             length_fn=fn, context=report.max_length - 1)
    assert [p.kind for p in tight.errors] == ["length"]


def test_cli_exit_codes_and_output(tmp_path: Path, media_root: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    assert main(["data", "validate", str(good), "--media-root", str(media_root)]) == 0
    out = capsys.readouterr().out
    assert "4 records, 4 valid, 0 error(s)" in out
    bad = write_jsonl(tmp_path / "bad.jsonl", [GOOD[0], BAD[2][0], BAD[7][0]])
    assert main(["data", "validate", str(bad), "--media-root", str(media_root)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: line 2 (id r1): error: [placeholders]" in captured.out
    assert f"{bad}: line 3 (id r6): error: [media]" in captured.out
    assert "3 records, 1 valid, 2 error(s)" in captured.err
    assert main(["data", "validate", str(tmp_path / "nope.json")]) == 1
    assert "cannot read dataset" in capsys.readouterr().err


def test_synth_then_validate_through_the_cli(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--num-train", "2", "--num-val", "0",
                 "--num-test", "0", "--size", "32", "--seconds", "2", "--no-progress"]) == 0
    assert main(["data", "validate", str(out / "train.json"), "--media-root", str(out)]) == 0
    assert "2 records, 2 valid, 0 error(s)" in capsys.readouterr().out
    assert main(["data", "validate", str(out / "train.json"), "--context", "10"]) == 1
    assert "--context needs --model" in capsys.readouterr().err
    from vidlm.testing import tiny_videolm

    tiny_videolm(num_frames=2).save_pretrained(tmp_path / "model")
    args = ["data", "validate", str(out / "train.json"), "--media-root", str(out),
            "--model", str(tmp_path / "model")]
    assert main(args) == 0
    assert "longest" in capsys.readouterr().out
    assert main([*args, "--context", "20"]) == 1
    captured = capsys.readouterr()
    assert "[length]" in captured.out and "exceed the context of 20" in captured.out
