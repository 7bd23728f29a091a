"""``read`` and ``stream``: sampled, resized, upright frames from a video, image or folder.

Memory is bounded by what is returned: ``read`` fills one preallocated
``(T, H, W, 3)`` array, ``stream`` one ``(chunk, H, W, 3)`` array at a time, and
the decoder itself holds only its reference frames (plus one per thread).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import av.error
import numpy as np

from vidlm.video.container import check_file, open_video
from vidlm.video.decode import DEFAULT_SEEK_GAP, DecodeReport, decode_selected, nearest_keyframes
from vidlm.video.errors import (
    CorruptFramesWarning,
    CorruptVideoError,
    TruncatedVideoError,
    TruncatedVideoWarning,
    UnsupportedCodecError,
)
from vidlm.video.frames import Frames
from vidlm.video.images import (
    DEFAULT_FOLDER_FPS,
    convert_image,
    folder_images,
    is_image_file,
    load_image,
)
from vidlm.video.index import FrameIndex, frame_index
from vidlm.video.resize import FrameConverter, Resize, SizeSpec, as_resize
from vidlm.video.sampling import SamplingPolicy

# One decoded frame: (source index, seconds from the start, (H, W, 3) uint8)
Decoded = tuple[int, float, np.ndarray]


def read(path: str | Path, policy: SamplingPolicy, size: SizeSpec = None, *,
         strict: bool = False, keyframes_only: bool = False,
         folder_fps: float = DEFAULT_FOLDER_FPS, seek_gap: float = DEFAULT_SEEK_GAP,
         threads: int = 0) -> Frames:
    """Decode the frames ``policy`` picks from ``path`` into one :class:`Frames`.

    ``size``: see :mod:`vidlm.video.resize` (``None`` keeps the native size).
    ``strict``: raise on a truncated file or undecodable packets instead of warning.
    ``keyframes_only``: fast and approximate, see :mod:`vidlm.video.decode`.
    ``folder_fps``: frame rate that gives a folder of images its timestamps.
    ``seek_gap``: seconds of frames to skip before seeking beats decoding through.
    ``threads``: decoder threads, 0 for one per core.
    """
    count, decoded = _open_source(Path(path), policy, as_resize(size), strict=strict,
                                  keyframes_only=keyframes_only, folder_fps=folder_fps,
                                  seek_gap=seek_gap, threads=threads)
    out: np.ndarray | None = None
    times = np.zeros(count, np.float64)
    indices = np.zeros(count, np.int64)
    n = 0
    for i, t, rgb in decoded:
        if out is None:
            out = np.empty((count, *rgb.shape), np.uint8)
        out[n], times[n], indices[n] = rgb, t, i
        n += 1
    if out is None:
        return Frames.empty()
    return Frames(out[:n], times[:n], indices[:n])


def stream(path: str | Path, policy: SamplingPolicy, chunk: int = 16, size: SizeSpec = None, *,
           strict: bool = False, keyframes_only: bool = False,
           folder_fps: float = DEFAULT_FOLDER_FPS, seek_gap: float = DEFAULT_SEEK_GAP,
           threads: int = 0) -> Iterator[Frames]:
    """Like :func:`read`, but yield :class:`Frames` chunks of up to ``chunk`` frames as they
    decode, so an hour of frames never sits in memory at once."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    _, decoded = _open_source(Path(path), policy, as_resize(size), strict=strict,
                              keyframes_only=keyframes_only, folder_fps=folder_fps,
                              seek_gap=seek_gap, threads=threads)
    buf: np.ndarray | None = None
    times = np.zeros(chunk, np.float64)
    indices = np.zeros(chunk, np.int64)
    n = 0
    for i, t, rgb in decoded:
        if buf is None:
            buf = np.empty((chunk, *rgb.shape), np.uint8)
        buf[n], times[n], indices[n] = rgb, t, i
        n += 1
        if n == chunk:
            yield Frames(buf, times.copy(), indices.copy())
            buf, n = None, 0
    if buf is not None and n:
        yield Frames(buf[:n].copy(), times[:n].copy(), indices[:n].copy())


def _open_source(path: Path, policy: SamplingPolicy, resize: Resize | None, *, strict: bool,
                 keyframes_only: bool, folder_fps: float, seek_gap: float,
                 threads: int) -> tuple[int, Iterator[Decoded]]:
    """``(number of frames planned, iterator of decoded frames)`` for any kind of input."""
    check_file(path)
    converter = FrameConverter(resize)
    if path.is_dir():
        return _folder_frames(path, policy, converter, folder_fps)
    if is_image_file(path):
        return 1, iter([(0, 0.0, convert_image(load_image(path), converter))])
    index = frame_index(path)
    _check_truncation(path, index, strict)
    wanted = policy.select(index.times, index.duration)
    if keyframes_only:
        wanted = nearest_keyframes(index, wanted)
    return len(wanted), _video_frames(path, index, wanted, converter, strict=strict,
                                      keyframes_only=keyframes_only, seek_gap=seek_gap,
                                      threads=threads)


def _folder_frames(folder: Path, policy: SamplingPolicy, converter: FrameConverter,
                   folder_fps: float) -> tuple[int, Iterator[Decoded]]:
    if not folder_fps > 0:
        raise ValueError(f"folder_fps must be > 0, got {folder_fps}")
    images = folder_images(folder)
    times = np.arange(len(images), dtype=np.float64) / folder_fps
    wanted = policy.select(times, len(images) / folder_fps)
    decoded = ((int(i), float(times[i]), convert_image(load_image(images[i]), converter))
               for i in wanted)
    return len(wanted), decoded


def _video_frames(path: Path, index: FrameIndex, wanted: np.ndarray, converter: FrameConverter,
                  *, strict: bool, keyframes_only: bool, seek_gap: float,
                  threads: int) -> Iterator[Decoded]:
    report = DecodeReport()
    with open_video(path, threads=threads) as (container, stream):
        try:
            for i, frame in decode_selected(container, stream, index, wanted, report,
                                            keyframes_only=keyframes_only, seek_gap=seek_gap):
                yield i, index.seconds(frame.pts), converter(frame)
        except av.error.DecoderNotFoundError:
            raise UnsupportedCodecError(path, "this FFmpeg build has no decoder for its "
                                              "video codec") from None
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"decoding failed ({exc.strerror})") from None
    _check_report(path, report, strict)


def _check_truncation(path: Path, index: FrameIndex, strict: bool) -> None:
    if not index.truncated:
        return
    declared = f" of {index.declared_frames}" if index.declared_frames else ""
    reason = (f"the file is truncated: {len(index)}{declared} frames are readable"
              + (f" ({index.demux_error})" if index.demux_error else ""))
    if strict:
        raise TruncatedVideoError(path, reason)
    warnings.warn(f"{path}: {reason}; returning frames from the readable part",
                  TruncatedVideoWarning, stacklevel=4)


def _check_report(path: Path, report: DecodeReport, strict: bool) -> None:
    if report.requested and not report.returned:
        stop = f", {report.demux_error}" if report.demux_error else ""
        raise CorruptVideoError(path, f"no frame could be decoded ({report.bad_packets} bad "
                                      f"packets{stop})")
    problems = []
    if report.bad_packets:
        problems.append(f"{report.bad_packets} packets failed to decode")
    if report.substituted:
        problems.append(f"{report.substituted} requested frames were replaced by the next "
                        f"frame that decoded")
    if report.missing:
        problems.append(f"{report.missing} requested frames could not be decoded")
    if report.budget_exhausted:
        problems.append("decoding stopped at its packet limit")
    if report.demux_error:
        problems.append(f"reading stopped early ({report.demux_error})")
    if not problems:
        return
    reason = "; ".join(problems)
    if strict:
        raise CorruptVideoError(path, reason)
    warnings.warn(f"{path}: {reason}", CorruptFramesWarning, stacklevel=4)
