"""``probe(path)``: a video's metadata without decoding it (one frame at most)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import numpy as np

from vidlm.video.container import check_file, open_video
from vidlm.video.errors import CorruptVideoError, UnsupportedCodecError
from vidlm.video.images import DEFAULT_FOLDER_FPS, folder_images, image_size, is_image_file
from vidlm.video.index import frame_index
from vidlm.video.resize import upright_rotation

# Packets read when the container has no full index, to judge VFR and the GOP length.
_PREFIX_PACKETS = 600
# Frame durations differing by more than this fraction mean a variable frame rate.
_VFR_TOLERANCE = 0.01


@dataclass
class VideoInfo:
    """What :func:`probe` found.

    ``num_frames`` is exact when ``frames_exact`` (the container's sample table or a
    full packet count), else ``duration * avg_fps`` rounded. ``width``/``height`` are
    of the upright picture (after ``rotation``, counter-clockwise degrees, is applied).
    ``variable_fps`` and ``keyframe_interval`` (median seconds between keyframes) come
    from the whole stream where the container indexes every frame, else from its
    first packets; ``keyframe_interval`` is ``None`` when fewer than two keyframes
    were seen. ``start_time`` is the stream's first pts in seconds (non-zero in
    MPEG-TS); all other times count from it.
    """

    path: str
    kind: Literal["video", "image", "folder"]
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    duration: float
    avg_fps: float
    num_frames: int
    frames_exact: bool
    variable_fps: bool
    keyframe_interval: float | None
    start_time: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(path: str | Path, *, exact: bool = False,
          folder_fps: float = DEFAULT_FOLDER_FPS) -> VideoInfo:
    """Metadata of a video, image or folder of images.

    ``exact=True`` counts every packet (about a second per hour of 360p) when the
    container stores no frame count, so ``num_frames`` is always exact.
    """
    path = Path(path)
    check_file(path)
    if path.is_dir():
        return _probe_folder(path, folder_fps)
    if is_image_file(path):
        w, h, fmt = image_size(path)
        return VideoInfo(str(path), "image", fmt, fmt, w, h, 0, 0.0, 0.0, 1, True, False,
                         None, 0.0)
    return _probe_video(path, exact)


def _probe_folder(path: Path, folder_fps: float) -> VideoInfo:
    images = folder_images(path)
    w, h, fmt = image_size(images[0])
    n = len(images)
    return VideoInfo(str(path), "folder", "folder", fmt, w, h, 0, n / folder_fps, folder_fps, n,
                     True, False, 1.0 / folder_fps, 0.0)


def _probe_video(path: Path, exact: bool) -> VideoInfo:
    with open_video(path) as (container, stream):
        tb = stream.time_base or Fraction(1, 1)
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        duration = _declared_duration(container, stream, tb, start)
        declared_frames = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate
        rotation, coded_w, coded_h, deltas, key_times = _scan_start(path, container, stream,
                                                                    declared_frames)
        fmt = container.format.name
        codec = stream.codec_context.name
    if duration is None or exact or not (declared_frames or rate):
        index = frame_index(path)  # the container lacks it: count every packet
        duration, num_frames, frames_exact = index.duration, len(index), True
        deltas = np.diff(index.pts) if len(index) > 1 else deltas
        key_times = index.pts[index.keyframe_positions()]
        tb = index.time_base
    elif declared_frames:
        num_frames, frames_exact = declared_frames, True
    else:
        num_frames, frames_exact = round(duration * float(rate)), False
    avg_fps = num_frames / duration if duration > 0 and frames_exact else float(rate or 0.0)
    width, height = (coded_h, coded_w) if rotation % 180 else (coded_w, coded_h)
    return VideoInfo(
        path=str(path), kind="video", container=fmt, codec=codec, width=width, height=height,
        rotation=rotation, duration=duration, avg_fps=avg_fps, num_frames=num_frames,
        frames_exact=frames_exact, variable_fps=_is_variable(deltas),
        keyframe_interval=_keyframe_interval(key_times, tb), start_time=start,
    )


def _declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                       tb: Fraction, start: float) -> float | None:
    if stream.duration:
        return float(stream.duration * tb)
    if container.duration:
        container_start = (container.start_time or 0) / av.time_base
        return container.duration / av.time_base - max(0.0, start - container_start)
    return None


def _scan_start(path: Path, container: av.container.InputContainer,
                stream: av.video.stream.VideoStream,
                declared_frames: int) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    """Decode the first frame (rotation, coded size; proves the codec is supported) and
    measure frame spacing: ``(rotation, width, height, dts deltas, keyframe times)``.

    Spacing comes from the container's sample index when it lists every frame
    (MP4/MOV), else from the first packets' pts.
    """
    entries = stream.index_entries
    full_index = bool(declared_frames) and len(entries) == declared_frames
    geometry: tuple[int, int, int] | None = None
    pts: list[int] = []
    keys: list[int] = []
    try:
        for packet in container.demux(stream):
            if geometry is None:
                for frame in _decode_quietly(stream, packet):
                    geometry = upright_rotation(frame.rotation), frame.width, frame.height
                    break
            if packet.size and packet.pts is not None:
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
            if geometry is not None and (full_index or len(pts) >= _PREFIX_PACKETS):
                break
    except av.error.DecoderNotFoundError:
        raise UnsupportedCodecError(path, "this FFmpeg build has no decoder for its "
                                          "video codec") from None
    except (av.error.EOFError, av.error.OSError, av.error.InvalidDataError):
        pass
    if geometry is None:
        raise CorruptVideoError(path, "no frame of the video stream decodes")
    if full_index:
        ts = np.fromiter((e.timestamp for e in entries), np.int64, len(entries))
        is_key = np.fromiter((e.is_keyframe for e in entries), bool, len(entries))
        return (*geometry, np.diff(ts), ts[is_key])
    return (*geometry, np.diff(np.sort(np.asarray(pts, np.int64))), np.asarray(keys, np.int64))


def _decode_quietly(stream: av.video.stream.VideoStream, packet: av.Packet) -> list[av.VideoFrame]:
    try:
        return stream.decode(packet)
    except av.error.InvalidDataError:
        return []


def _is_variable(deltas: np.ndarray) -> bool:
    deltas = deltas[deltas > 0]
    if len(deltas) < 2:
        return False
    lo, hi = int(deltas.min()), int(deltas.max())
    return hi - lo > max(1, _VFR_TOLERANCE * hi)


def _keyframe_interval(key_times: np.ndarray, tb: Fraction) -> float | None:
    if len(key_times) < 2:
        return None
    return float(np.median(np.diff(np.sort(key_times)))) * float(tb)
