"""The decode engine: the selected frames of a stream, seeking only where it pays.

Given the :class:`~vidlm.video.index.FrameIndex` and the sorted frame indices a
policy chose, :func:`decode_selected` yields ``(index, av.VideoFrame)`` in order.

* Dense targets: decode sequentially and drop the frames between targets.
* Sparse targets: when the keyframe before the next target lies more than
  ``seek_gap`` seconds past the decoder's position, seek to it and decode forward.
* ``keyframes_only``: each target moves to its nearest keyframe and only keyframe
  packets reach the decoder. Fast and approximate: the timestamps returned are the
  keyframes' real ones, not the targets'.

Damaged input never stops the loop: a packet that fails to decode is counted and
skipped, a demuxer error ends the stream, and the packets handled are bounded.
A target whose frame does not decode gets the next frame that does, with its own
real timestamp and index; the :class:`DecodeReport` counts every such case.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np

from vidlm.video.index import FrameIndex

DEFAULT_SEEK_GAP = 2.0  # seconds of frames to skip before a seek is worth its cost
_SEEK_RETRIES = 2  # a seek that lands past its target retries one keyframe earlier


@dataclass
class DecodeReport:
    """What happened while decoding; the reader turns it into warnings or errors."""

    requested: int = 0
    returned: int = 0
    substituted: int = 0  # targets served by a later frame because theirs did not decode
    missing: int = 0  # targets after the last frame that decoded
    bad_packets: int = 0
    demux_error: str | None = None
    packets: int = 0
    seeks: int = 0
    seek_failed: bool = False  # the container refused a seek: decoding went on sequentially
    budget_exhausted: bool = False


def nearest_keyframes(index: FrameIndex, wanted: np.ndarray) -> np.ndarray:
    """For ``keyframes_only``: each wanted frame's nearest keyframe by time (unique, sorted)."""
    keys = index.keyframe_positions()
    if len(keys) == 0:
        return wanted[:1] * 0
    key_times = index.times[keys]
    times = index.times[wanted]
    right = np.clip(np.searchsorted(key_times, times), 0, len(keys) - 1)
    left = np.clip(right - 1, 0, len(keys) - 1)
    closer_left = np.abs(key_times[left] - times) <= np.abs(key_times[right] - times)
    pick = np.where(closer_left, left, right)
    return np.unique(keys[pick]).astype(np.int64)


class _Decoder:
    """Packet-by-packet decoding of one stream with recovery and a packet budget."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 report: DecodeReport, *, budget: int, keyframes_only: bool) -> None:
        self.container, self.stream, self.report = container, stream, report
        self.budget = budget
        self.keyframes_only = keyframes_only
        # Packets with pts below this are never returned: the decoder may drop them
        # if no other frame references them ("NONREF"), which saves much of the work
        # of decoding up to a target. The target itself is always decoded in full.
        self.skip_before: int | None = None
        self._skip = "NONKEY" if keyframes_only else "NONE"
        stream.codec_context.skip_frame = self._skip
        self._packets: Iterator[av.Packet] | None = None  # the demuxer after a seek
        self._pending: av.Packet | None = None  # the packet read to check a seek's landing

    def seek(self, index: FrameIndex, key: int) -> bool:
        """Seek so that demuxing starts at keyframe ``key`` (or earlier); ``False`` if the
        container cannot seek.

        Demuxers search by pts (Matroska) or by dts (MP4, MPEG-TS), so the keyframe's pts
        is tried first and, if the first packet read comes after the keyframe in decode
        order, its dts and then earlier keyframes. The packet read to check is kept.
        """
        aims = [int(index.pts[key]), int(min(index.dts[key], index.pts[key]))]
        earlier = key
        for _ in range(_SEEK_RETRIES):
            earlier = index.keyframe_at_or_before(max(0, earlier - 1))
            aims.append(int(min(index.dts[earlier], index.pts[earlier])))
        for aim in dict.fromkeys(aims):  # unique, in order
            try:
                self.container.seek(aim, stream=self.stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                self.report.seek_failed = True
                return False
            self.report.seeks += 1
            self._packets = self.container.demux(self.stream)
            self._pending = next(self._packets, None)
            if self._pending is None or not self._after(index, self._pending, key):
                return True
        return True

    @staticmethod
    def _after(index: FrameIndex, packet: av.Packet, key: int) -> bool:
        """Does ``packet`` come after keyframe ``key`` in decode order?"""
        if packet.dts is not None:
            return packet.dts > index.dts[key]
        i = index.position(packet.pts) if packet.pts is not None else None
        return i is not None and i > key

    def frames(self) -> Iterator[av.VideoFrame]:
        """Frames from the current position to the end of the stream (or of the budget)."""
        packets = self._packets if self._packets is not None else self.container.demux(self.stream)
        pending, self._packets, self._pending = self._pending, None, None
        if pending is not None:
            packets = itertools.chain([pending], packets)
        try:
            for packet in packets:
                self.report.packets += 1
                if self.report.packets > self.budget:
                    self.report.budget_exhausted = True
                    return
                if self.keyframes_only:
                    if packet.size and packet.is_keyframe:
                        yield from self._decode_alone(packet)
                    continue
                self._set_skip(packet)
                yield from self._decode(packet)
        except (av.error.InvalidDataError, av.error.EOFError, av.error.OSError) as exc:
            self.report.demux_error = exc.strerror or str(exc)
            yield from self._decode(None)  # drain what the decoder still holds

    def _set_skip(self, packet: av.Packet) -> None:
        early = (self.skip_before is not None and packet.pts is not None
                 and packet.pts < self.skip_before)
        skip = "NONREF" if early else "NONE"
        if skip != self._skip:
            self.stream.codec_context.skip_frame = skip
            self._skip = skip

    def _decode_alone(self, packet: av.Packet) -> list[av.VideoFrame]:
        """Decode one keyframe packet on its own: drain the decoder so the frame comes out
        now (not after the reorder and thread delay), then reset it for the next one."""
        frames = self._decode(packet) + self._decode(None)
        self.stream.codec_context.flush_buffers()
        return frames

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return self.stream.decode(packet)
        except av.error.InvalidDataError:
            self.report.bad_packets += 1
            return []
        except av.error.EOFError:
            return []


def decode_selected(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    index: FrameIndex, wanted: np.ndarray, report: DecodeReport, *,
                    keyframes_only: bool = False, seek_gap: float = DEFAULT_SEEK_GAP,
                    packet_budget: int | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(frame index, frame)`` for each wanted index (sorted, unique), in order.

    ``packet_budget``: most packets to demux in total (default: three times the
    stream's, enough for every seek), so no damaged file can keep the loop going.
    """
    targets = nearest_keyframes(index, wanted) if keyframes_only else np.asarray(wanted, np.int64)
    report.requested = len(targets)
    if len(targets) == 0:
        return
    times = index.times
    budget = packet_budget if packet_budget is not None else 3 * len(index) + 1024
    decoder = _Decoder(container, stream, report, budget=budget,
                       keyframes_only=keyframes_only)
    j, pos = 0, -1  # next target; index of the last frame decoded (-1: at the file start)
    retries = 0
    decoder.skip_before = int(index.pts[targets[0]])
    seek_key = _seek_point(index, times, int(targets[0]), pos, seek_gap)
    while j < len(targets):
        if seek_key is not None and not decoder.seek(index, seek_key):
            seek_gap, seek_key = float("inf"), None  # unseekable: decode through from here
        landed = seek_key is None
        attempt = seek_key if seek_key is not None else 0
        seek_key = None
        for frame in decoder.frames():
            i = index.position(frame.pts) if frame.pts is not None else None
            if i is None:
                continue
            if not landed:
                landed = True
                if i > targets[j] and retries < _SEEK_RETRIES and attempt > 0:
                    retries += 1  # the first frame is past the target: one keyframe earlier
                    seek_key = index.keyframe_at_or_before(attempt - 1)
                    break
            pos = max(pos, i)
            if i < targets[j]:
                continue
            served = int(np.searchsorted(targets, i, side="right"))  # targets <= i
            report.substituted += int(np.count_nonzero(targets[j:served] != i))
            j = served
            report.returned += 1
            yield i, frame
            if j == len(targets):
                return
            decoder.skip_before = int(index.pts[targets[j]])
            seek_key = _seek_point(index, times, int(targets[j]), pos, seek_gap)
            if seek_key is not None:
                retries = 0
                break
        else:
            break  # end of stream (or budget): the remaining targets have no frame
    report.missing += len(targets) - j


def _seek_point(index: FrameIndex, times: np.ndarray, target: int, pos: int,
                seek_gap: float) -> int | None:
    """The keyframe to seek to for ``target``, or ``None`` to keep decoding forward."""
    key = index.keyframe_at_or_before(target)
    here = times[pos] if pos >= 0 else times[0] - 1e-9
    if key > pos and times[key] - here >= seek_gap:
        return key
    return None
