"""A real 10-minute 1280x720 H.264 file (18,000 frames): exact counts, seeks, streaming.

Marked ``slow``: making the file takes a minute or two on a shared 2-core machine.
It is cached between runs in :func:`media.cached_media_dir`.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import media
from vidlm import video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_720p() -> Path:
    return media.make_long_720p(media.cached_media_dir())


def test_probe_counts_match_ffprobe(long_720p: Path) -> None:
    ref = media.ffprobe_stream(long_720p)
    info = video.probe(long_720p)
    assert (info.width, info.height, info.codec) == (1280, 720, "h264")
    assert info.num_frames == int(ref["nb_frames"]) == 18000 and info.frames_exact
    assert info.duration == pytest.approx(600.0) and info.avg_fps == pytest.approx(30.0)
    assert info.keyframe_interval == pytest.approx(250 / 30)
    assert len(media.ffprobe_packet_times(long_720p)) == 18000


def test_uniform_seeks_land_on_exact_frames(long_720p: Path) -> None:
    frames = video.read(long_720p, video.uniform(16))
    times = np.asarray(media.ffprobe_packet_times(long_720p))
    # segment middles (k + 0.5) * 37.5 s -> the frames on screen at those times
    expected = np.floor((np.arange(16) + 0.5) * 37.5 * 30 + 1e-6).astype(int)
    np.testing.assert_array_equal(frames.indices, expected)
    np.testing.assert_allclose(frames.timestamps, times[expected], atol=1e-9)
    for k in (3, 15):  # pixels identical to ffmpeg's own frame there
        ref = media.ffmpeg_frame_rgb_after(long_720p, frames.timestamps[k] - 1e-4, 1280, 720)
        np.testing.assert_array_equal(frames.frames[k], np.frombuffer(ref, np.uint8)
                                      .reshape(720, 1280, 3))


def test_stream_one_fps_over_ten_minutes(long_720p: Path) -> None:
    one_frame = 384 * 384 * 3
    count, last = 0, -1.0
    tracemalloc.start()
    try:
        for chunk in video.stream(long_720p, video.fps(1.0, max_frames=10**6), chunk=32,
                                  size=(384, 384)):
            assert chunk.frames.shape[1:] == (384, 384, 3) and len(chunk) <= 32
            np.testing.assert_allclose(chunk.timestamps, np.arange(count, count + len(chunk)))
            count += len(chunk)
            last = float(chunk.timestamps[-1])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600 and last == 599.0
    assert peak < 100 * one_frame  # a few chunks, never the 600 frames


def test_keyframes_only_is_fast_path_on_keyframes(long_720p: Path) -> None:
    frames = video.read(long_720p, video.uniform(16), size=64, keyframes_only=True)
    assert len(frames) == 16 and (frames.indices % 250 == 0).all()
    np.testing.assert_allclose(frames.timestamps, frames.indices / 30.0, atol=1e-9)
