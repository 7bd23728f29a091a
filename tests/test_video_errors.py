"""Bad input: typed errors naming the file; damaged files give what decodes, or fail if strict."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import media
from vidlm import video
from vidlm.errors import VideoError, VidlmError
from vidlm.video import (
    CorruptFramesWarning,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    TruncatedVideoWarning,
    UnsupportedCodecError,
    VideoNotFoundError,
)
from vidlm.video.container import open_video
from vidlm.video.decode import DecodeReport, decode_selected
from vidlm.video.index import frame_index

EVERY_FRAME = video.fps(1000.0, max_frames=10**9)


def assert_typed(exc_info: pytest.ExceptionInfo, path: Path, words: str) -> None:
    err = exc_info.value
    assert isinstance(err, VideoError) and isinstance(err, VidlmError)
    assert err.path == str(path) and words in err.reason and str(path) in str(err)


@pytest.mark.parametrize("call", [video.probe, lambda p: video.read(p, video.uniform(2))])
def test_missing_file(tmp_path: Path, call) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoNotFoundError) as exc_info:
        call(path)
    assert_typed(exc_info, path, "no such file")


@pytest.mark.parametrize("call", [video.probe, lambda p: video.read(p, video.uniform(2))])
def test_zero_byte_file(media_dir: Path, call) -> None:
    path = media.make_zero_bytes(media_dir)
    with pytest.raises(EmptyVideoError) as exc_info:
        call(path)
    assert_typed(exc_info, path, "empty")


@pytest.mark.parametrize("call", [video.probe, lambda p: video.read(p, video.uniform(2))])
def test_random_bytes_are_not_a_video(media_dir: Path, call) -> None:
    path = media.make_random_bytes(media_dir)
    with pytest.raises(NotAVideoError) as exc_info:
        call(path)
    assert_typed(exc_info, path, "not a video")


def test_text_file_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(NotAVideoError):
        video.read(path, video.uniform(2))


@pytest.mark.parametrize("call", [video.probe, lambda p: video.read(p, video.uniform(2))])
def test_audio_only_has_no_video_stream(media_dir: Path, call) -> None:
    path = media.make_audio_only(media_dir)
    with pytest.raises(NoVideoStreamError) as exc_info:
        call(path)
    assert_typed(exc_info, path, "no video stream (audio)")


@pytest.mark.parametrize("call", [video.probe, lambda p: video.read(p, video.uniform(2))])
def test_unknown_codec(media_dir: Path, call) -> None:
    path = media.make_unsupported_codec_avi(media_dir)
    with pytest.raises(UnsupportedCodecError) as exc_info:
        call(path)
    assert_typed(exc_info, path, "no decoder")


def test_broken_image_and_empty_folder(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(VideoError) as exc_info:
        video.read(bad, video.uniform(1))
    assert exc_info.value.path == str(bad)
    empty = tmp_path / "no_frames"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(EmptyVideoError, match="no images"):
        video.read(empty, video.uniform(1))


def test_truncated_file_returns_what_decodes(media_dir: Path) -> None:
    path = media.make_truncated_mp4(media_dir, keep=0.6)
    decodable = media.ffprobe_count_frames(path)
    assert 0 < decodable < 100  # the intact file has 100 frames
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = video.read(path, EVERY_FRAME, size=16)
    kinds = {w.category for w in caught}
    assert TruncatedVideoWarning in kinds  # and the partial last packet is reported too
    assert any("truncated" in str(w.message) for w in caught)
    assert len(frames) == decodable
    np.testing.assert_allclose(frames.timestamps, media.ffprobe_frame_times(path), atol=1e-9)
    with pytest.raises(TruncatedVideoError) as exc_info:
        video.read(path, EVERY_FRAME, size=16, strict=True)
    assert_typed(exc_info, path, "truncated")
    assert isinstance(exc_info.value, CorruptVideoError)


def test_corrupt_packets_are_skipped(media_dir: Path) -> None:
    path = media.make_corrupt_ts(media_dir)
    decodable = media.ffprobe_frame_times(path)
    assert 50 < len(decodable) < 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = video.read(path, EVERY_FRAME, size=16)
    assert any(issubclass(w.category, CorruptFramesWarning) for w in caught)
    assert len(frames) == len(decodable)
    np.testing.assert_allclose(frames.timestamps, decodable, atol=1e-9)
    with pytest.raises(CorruptVideoError) as exc_info:
        video.read(path, EVERY_FRAME, size=16, strict=True)
    assert_typed(exc_info, path, "replaced by the next frame")


def test_decode_loop_stops_at_its_packet_budget(media_dir: Path) -> None:
    path = media.make_cfr_mp4(media_dir)
    index = frame_index(path)
    report = DecodeReport()
    with open_video(path) as (container, stream):
        got = list(decode_selected(container, stream, index, np.arange(len(index)), report,
                                   packet_budget=20))
    assert report.budget_exhausted and report.packets == 21
    assert 0 < len(got) < 20 and report.missing == len(index) - len(got)


def test_cli_prints_one_line_errors(media_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from vidlm.cli import main

    path = media.make_audio_only(media_dir)
    assert main(["probe", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vidlm probe: error: {path}: the file has no video stream (audio)"]
    assert main(["frames", str(media_dir / "missing.mkv"), "--num-frames", "4"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_unseekable_input_decodes_through(media_dir: Path, monkeypatch) -> None:
    from vidlm.video import decode

    path = media.make_cfr_mp4(media_dir)
    normal = video.read(path, video.uniform(4), size=16, seek_gap=0.0)

    def refuse(self, index, key: int) -> bool:
        self.report.seek_failed = True
        return False

    monkeypatch.setattr(decode._Decoder, "seek", refuse)
    through = video.read(path, video.uniform(4), size=16, seek_gap=0.0)
    np.testing.assert_array_equal(through.indices, normal.indices)
    np.testing.assert_array_equal(through.frames, normal.frames)


def test_cli_reports_damage_as_one_line_warning(media_dir: Path, capsys) -> None:
    from vidlm.cli import main

    path = media.make_truncated_mp4(media_dir, keep=0.6)
    assert main(["frames", str(path), "--num-frames", "2"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vidlm frames: warning: {path}: the file is")
    assert main(["frames", str(path), "--num-frames", "2", "--strict"]) == 1
    assert "truncated" in capsys.readouterr().err
