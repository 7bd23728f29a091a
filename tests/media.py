"""Test media made with ffmpeg, and ffprobe ground truth to check decoders against.

Importable by any test: ``from tests.media import make_media, ffprobe_frame_times``
(or ``from media import ...`` with ``tests/`` on ``sys.path``). Each ``make_*``
writes into a folder, reuses a finished file, and writes atomically (a ``.part``
file renamed at the end), so parallel test runs never see half a file.
:func:`cached_media_dir` is a folder shared between runs for the expensive ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

_FFMPEG_TIMEOUT = 900


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise RuntimeError(f"{name} is not installed; run scripts/setup.sh")
    return exe


def run_ffmpeg(*args: str, timeout: float = _FFMPEG_TIMEOUT) -> None:
    """Run ffmpeg quietly; raise with its stderr on failure."""
    proc = subprocess.run([_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr}")


def ffprobe_json(path: Path, *args: str) -> dict:
    proc = subprocess.run([_tool("ffprobe"), "-v", "error", "-of", "json", *args, str(path)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"ffprobe {path} failed: {proc.stderr}")
    return json.loads(proc.stdout)


def ffprobe_stream(path: Path) -> dict:
    """The first video stream's ffprobe fields (``start_time``, ``nb_frames``, ...)."""
    return ffprobe_json(path, "-select_streams", "v:0", "-show_streams")["streams"][0]


def _stream_clock(path: Path) -> tuple[Fraction, int]:
    """``(time_base, start_pts)`` of the first video stream."""
    ref = ffprobe_stream(path)
    num, den = (int(v) for v in ref["time_base"].split("/"))
    return Fraction(num, den), int(ref.get("start_pts", 0))


def ffprobe_frame_times(path: Path) -> list[float]:
    """Presentation times (seconds from the stream start) of the decoded frames, sorted.

    From ``ffprobe -show_frames``: the integer ``best_effort_timestamp`` (what ffmpeg
    itself uses; it equals ``pts`` where a pts exists) minus the stream's ``start_pts``,
    times its ``time_base``, so the values are exact rather than printed to 6 digits.
    Frames ffprobe gives no time at all are left out (see :func:`ffprobe_count_frames`).
    """
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_frames",
                        "-show_entries", "frame=pts,best_effort_timestamp")
    tb, start = _stream_clock(path)
    ticks = [f.get("best_effort_timestamp", f.get("pts")) for f in data["frames"]]
    return sorted(float((t - start) * tb) for t in ticks if isinstance(t, int))


def ffprobe_packet_times(path: Path) -> list[float]:
    """Presentation times of every video packet (no decoding), seconds from the start, sorted."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts")
    tb, start = _stream_clock(path)
    return sorted(float((p["pts"] - start) * tb) for p in data["packets"]
                  if isinstance(p.get("pts"), int))


def ffprobe_count_frames(path: Path) -> int:
    """``ffprobe -count_frames``: how many frames the video stream decodes to."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-count_frames",
                        "-show_entries", "stream=nb_read_frames")
    return int(data["streams"][0]["nb_read_frames"])


def ffmpeg_frame_rgb(path: Path, index: int, width: int, height: int) -> bytes:
    """Frame ``index`` (presentation order) as ffmpeg decodes it, autorotated, raw RGB24.

    Selected by position (``select=eq(n,index)``), so it is independent of timestamps.
    """
    proc = subprocess.run(
        [_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-i", str(path),
         "-vf", f"select=eq(n\\,{index})", "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, timeout=120)
    if proc.returncode != 0 or len(proc.stdout) != width * height * 3:
        raise RuntimeError(f"ffmpeg could not extract a {width}x{height} frame {index} from "
                           f"{path}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def ffmpeg_frame_rgb_after(path: Path, time: float, width: int, height: int) -> bytes:
    """ffmpeg's first frame at or after ``time`` seconds (``-ss`` input seeking, exact on
    MP4), autorotated, as raw RGB24 bytes. Fast on long files, unlike selecting by index."""
    proc = subprocess.run(
        [_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-ss", f"{time:.6f}",
         "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, timeout=120)
    if proc.returncode != 0 or len(proc.stdout) != width * height * 3:
        raise RuntimeError(f"ffmpeg could not extract a {width}x{height} frame at {time} s "
                           f"from {path}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def cached_media_dir() -> Path:
    """A folder kept between test runs (``$VIDLM_TEST_MEDIA`` or the temp dir)."""
    default = Path(tempfile.gettempdir()) / "vidlm-test-media"
    root = Path(os.environ.get("VIDLM_TEST_MEDIA") or default)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _make(out: Path, build: Callable[[Path], None]) -> Path:
    if out.exists():
        return out
    part = out.with_name(f".{out.stem}.{os.getpid()}.part{out.suffix}")
    try:
        build(part)
        part.replace(out)
    finally:
        part.unlink(missing_ok=True)
    return out


def _encode(out: Path, source: str, *codec: str) -> Path:
    return _make(out, lambda part: run_ffmpeg("-f", "lavfi", "-i", source, *codec, str(part)))


H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def make_cfr_mp4(folder: Path) -> Path:
    """3 s, 25 fps, 160x120 H.264 with B-frames, a keyframe every 10 frames (75 frames)."""
    return _encode(folder / "cfr.mp4", "testsrc=size=160x120:rate=25:duration=3",
                   "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "10",
                   "-pix_fmt", "yuv420p", "-movflags", "+faststart")


def make_gop_clip(folder: Path, suffix: str) -> Path:
    """6 s, 25 fps, 96x64 in the container ``suffix`` names (``.mkv``, ``.ts``, ``.webm``,
    ``.avi``), a keyframe every 12 frames, B-frames where the codec has them: many seeks."""
    codec = {".webm": ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"),
             ".avi": ("-c:v", "mpeg4", "-q:v", "5", "-bf", "2")}.get(
        suffix, ("-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-pix_fmt", "yuv420p"))
    return _encode(folder / f"gop12{suffix}", "testsrc=size=96x64:rate=25:duration=6", *codec,
                   "-g", "12")


def make_long_720p(folder: Path) -> Path:
    """A real 10-minute 1280x720 30 fps H.264 (18,000 frames, keyframe every 250)."""
    return _encode(folder / "long_720p_10min.mp4", "testsrc2=size=1280x720:rate=30:duration=600",
                   *H264, "-g", "250", "-movflags", "+faststart")


def make_vfr_mp4(folder: Path) -> Path:
    """Variable frame rate: 30 fps source, every third frame kept except frames 30-60.

    Frames are 1/10 s apart for the first second, 1/30 s apart for one second, then
    1/10 s apart again (60 frames over 4 s).
    """
    return _encode(folder / "vfr.mp4", "testsrc=size=160x120:rate=30:duration=4",
                   "-vf", r"select='not(mod(n\,3))+between(n\,30\,60)'", "-fps_mode", "vfr",
                   *H264)


def make_rotated_mp4(folder: Path, degrees: int = 90) -> Path:
    """A 2 s 160x120 H.264 whose container says: display rotated by ``degrees``."""
    plain = _encode(folder / "plain_160x120.mp4", "testsrc=size=160x120:rate=25:duration=2", *H264)
    out = folder / f"rotated_{degrees}.mp4"
    return _make(out, lambda part: run_ffmpeg("-i", str(plain), "-c", "copy",
                                              "-metadata:s:v:0", f"rotate={degrees}", str(part)))


def make_vp9_webm(folder: Path) -> Path:
    """2 s 160x120 25 fps VP9 in WebM (the container stores no frame count)."""
    return _encode(folder / "vp9.webm", "testsrc=size=160x120:rate=25:duration=2",
                   "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "25")


def make_streamed_webm(folder: Path) -> Path:
    """VP9 WebM muxed to a pipe: no duration, no cues (a live recording's shape)."""
    out = folder / "streamed.webm"

    def build(part: Path) -> None:
        proc = subprocess.run(
            [_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
             "-i", "testsrc=size=160x120:rate=25:duration=2", "-c:v", "libvpx-vp9",
             "-deadline", "realtime", "-cpu-used", "8", "-g", "25", "-f", "webm", "pipe:1"],
            capture_output=True, timeout=_FFMPEG_TIMEOUT, check=True)
        part.write_bytes(proc.stdout)

    return _make(out, build)


def make_mpeg4_avi(folder: Path) -> Path:
    """2 s 160x120 25 fps MPEG-4 part 2 in AVI, with B-frames."""
    return _encode(folder / "mpeg4.avi", "testsrc=size=160x120:rate=25:duration=2",
                   "-c:v", "mpeg4", "-q:v", "5", "-bf", "2", "-g", "12")


def make_mpegts(folder: Path, offset: float = 10.0) -> Path:
    """4 s 25 fps H.264 in MPEG-TS starting at ``offset`` + 1.4 s (the muxer's delay)."""
    return _encode(folder / f"ts_offset_{offset:g}.ts", "testsrc=size=160x120:rate=25:duration=4",
                   *H264, "-g", "25", "-f", "mpegts", "-output_ts_offset", f"{offset}")


def make_audio_only(folder: Path) -> Path:
    """1 s of a sine tone in an MP4 (AAC): no video stream."""
    return _encode(folder / "audio_only.m4a", "sine=frequency=440:duration=1", "-c:a", "aac")


def make_truncated_mp4(folder: Path, keep: float = 0.6) -> Path:
    """The first ``keep`` of a faststart MP4's bytes (index intact, media data cut)."""
    full = _encode(folder / "to_truncate.mp4", "testsrc=size=160x120:rate=25:duration=4", *H264,
                   "-g", "25", "-movflags", "+faststart")
    out = folder / "truncated.mp4"
    data = full.read_bytes()
    return _make(out, lambda part: part.write_bytes(data[: int(len(data) * keep)]))


def make_corrupt_ts(folder: Path) -> Path:
    """MPEG-TS with a run of garbage bytes over the middle of its video data."""
    full = make_mpegts(folder, offset=0.0)
    data = bytearray(full.read_bytes())
    rng = random.Random(7)
    mid = len(data) // 2
    for i in range(mid, mid + 6000):
        data[i] = rng.randrange(256)
    return _make(folder / "corrupt.ts", lambda part: part.write_bytes(bytes(data)))


def make_unsupported_codec_avi(folder: Path) -> Path:
    """An AVI whose video FourCC names no codec FFmpeg knows ("QQZZ")."""
    src = _encode(folder / "for_fourcc.avi", "testsrc=size=64x48:rate=10:duration=1",
                  "-c:v", "mpeg4")
    data = src.read_bytes().replace(b"FMP4", b"QQZZ")
    return _make(folder / "unknown_codec.avi", lambda part: part.write_bytes(data))


def make_random_bytes(folder: Path, size: int = 64 * 1024) -> Path:
    rng = random.Random(1234)
    data = bytes(rng.randrange(256) for _ in range(size))
    return _make(folder / "random.mp4", lambda part: part.write_bytes(data))


def make_zero_bytes(folder: Path) -> Path:
    out = folder / "empty.mp4"
    out.touch()
    return out


def make_image(folder: Path, suffix: str, width: int = 96, height: int = 64) -> Path:
    """A test-pattern still image (``suffix`` ``.jpg``, ``.png`` or ``.webp``)."""
    return _encode(folder / f"still{suffix}", f"testsrc=size={width}x{height}:rate=1:duration=1",
                   "-frames:v", "1")


def make_frame_folder(folder: Path, count: int = 12) -> Path:
    """A folder of ``count`` PNG frames named ``frame_1.png`` .. ``frame_<count>.png``."""
    out = folder / "frames_dir"
    if not (out / f"frame_{count}.png").exists():
        out.mkdir(exist_ok=True)
        run_ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x48:rate=5:duration={count / 5}",
                   "-frames:v", str(count), "-start_number", "1", str(out / "frame_%d.png"))
    return out


def media_key(*parts: str) -> str:
    """A short stable name for cache files built from ``parts``."""
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]


def ffprobe_keyframe_times(path: Path) -> list[float]:
    """Presentation times of the keyframe packets (flag ``K``), seconds from the start."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts,flags")
    tb, start = _stream_clock(path)
    return sorted(float((p["pts"] - start) * tb) for p in data["packets"]
                  if "K" in p.get("flags", "") and isinstance(p.get("pts"), int))
