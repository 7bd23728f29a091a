"""The frame index of a video stream: every frame's real pts and keyframe flag.

Built by demuxing (reading packets, no decoding): about a second for an hour of
360p H.264. Policies resolve against it, the decoder plans seeks with its
keyframes, and it gives exact frame counts where the container stores none.
Indices of recently read files are kept in a small in-process cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from vidlm.video.container import open_video
from vidlm.video.errors import CorruptVideoError

_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, int, int], FrameIndex] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass
class FrameIndex:
    """Frames of one stream in presentation order.

    ``pts``: int64 ``(N,)`` sorted presentation timestamps in ``time_base`` units.
    ``dts``: int64 ``(N,)`` each frame's decode timestamp (its pts where it has none);
    seeks in demuxers that search by dts (MP4, MPEG-TS) aim at a keyframe's dts.
    ``keyframe``: bool ``(N,)``, frames a decoder can start from.
    ``origin``: the pts that is time 0 (the stream's ``start_time``).
    ``end``: pts where the last frame stops being shown.
    ``truncated``: the file ends before the container says the stream does.
    ``demux_error``: the reason demuxing stopped early, if it did.
    """

    pts: np.ndarray
    dts: np.ndarray
    keyframe: np.ndarray
    time_base: Fraction
    origin: int
    end: int
    declared_frames: int
    truncated: bool = False
    demux_error: str | None = None
    _position: dict[int, int] | None = field(default=None, repr=False)
    _keys: np.ndarray | None = field(default=None, repr=False)
    _times: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> np.ndarray:
        """float64 ``(N,)`` seconds from the stream's start."""
        if self._times is None:
            self._times = (self.pts - self.origin).astype(np.float64) * float(self.time_base)
        return self._times

    @property
    def duration(self) -> float:
        """Seconds from the start to the end of the last frame."""
        return float((self.end - self.origin) * self.time_base)

    def seconds(self, pts: int) -> float:
        return float((pts - self.origin) * self.time_base)

    def position(self, pts: int) -> int | None:
        """Index of the frame with this pts, or ``None`` if no indexed frame has it."""
        if self._position is None:
            self._position = {int(p): i for i, p in enumerate(self.pts.tolist())}
        return self._position.get(pts)

    def keyframe_at_or_before(self, i: int) -> int:
        """Index of the last keyframe at or before frame ``i`` (0 if none is flagged)."""
        keys = self.keyframe_positions()
        k = int(np.searchsorted(keys, i, side="right")) - 1
        return int(keys[k]) if k >= 0 else 0

    def keyframe_positions(self) -> np.ndarray:
        """int64 ``(K,)`` indices of the keyframes."""
        if self._keys is None:
            self._keys = np.flatnonzero(self.keyframe).astype(np.int64)
        return self._keys


def frame_index(path: str | Path) -> FrameIndex:
    """The :class:`FrameIndex` of ``path``'s first video stream (cached by path, size, mtime)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    with _cache_lock:
        if key is not None and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    index = build_index(path)
    if key is not None:
        with _cache_lock:
            _cache[key] = index
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return index


def build_index(path: str | Path) -> FrameIndex:
    """Demux every packet of the first video stream and collect pts and keyframe flags."""
    with open_video(path) as (container, stream):
        pts, dts, keys, durations, error = _demux(container, stream, Path(path))
        tb = stream.time_base or Fraction(1, 1)
        declared = int(stream.frames or 0)
        start = stream.start_time
    if not pts:
        raise CorruptVideoError(path, f"the video stream has no readable packets"
                                      f"{f' ({error})' if error else ''}")
    order = np.argsort(np.asarray(pts, np.int64), kind="stable")
    sorted_pts = np.asarray(pts, np.int64)[order]
    unique = np.concatenate([[True], np.diff(sorted_pts) > 0])
    sorted_pts, keyframe = sorted_pts[unique], np.asarray(keys, bool)[order][unique]
    sorted_dts = np.asarray(dts, np.int64)[order][unique]
    last_duration = np.asarray(durations, np.int64)[order][unique][-1]
    if last_duration <= 0:
        last_duration = int(np.median(np.diff(sorted_pts))) if len(sorted_pts) > 1 else 0
    origin = int(start) if start is not None and start <= sorted_pts[0] else int(sorted_pts[0])
    return FrameIndex(
        pts=sorted_pts, dts=sorted_dts, keyframe=keyframe, time_base=tb, origin=origin,
        end=int(sorted_pts[-1] + max(int(last_duration), 0)), declared_frames=declared,
        truncated=bool(error) or (declared > 0 and len(sorted_pts) < declared),
        demux_error=error,
    )


def _demux(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
           path: Path) -> tuple[list[int], list[int], list[bool], list[int], str | None]:
    """Packets' pts (dts when pts is missing), dts, keyframe flags and durations, in file
    order, and the reason demuxing stopped early, if it did."""
    pts: list[int] = []
    dts: list[int] = []
    keys: list[bool] = []
    durations: list[int] = []
    # Every real packet holds at least one byte, so this bound is never reached by
    # a well-formed file; it stops a demuxer that loops on a damaged one.
    budget = path.stat().st_size + 1024
    error: str | None = None
    try:
        for packet in container.demux(stream):
            budget -= 1
            if budget < 0:
                error = "demuxer did not reach the end of the file"
                break
            if packet.size == 0 or packet.is_discard:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            pts.append(ts)
            dts.append(packet.dts if packet.dts is not None else ts)
            keys.append(packet.is_keyframe)
            durations.append(packet.duration or 0)
    except (av.error.InvalidDataError, av.error.EOFError, av.error.OSError) as exc:
        error = f"reading stopped at packet {len(pts)}: {exc.strerror}"
    return pts, dts, keys, durations, error
