"""Opening a media file with PyAV, turning every failure into a typed :class:`VideoError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import av.error

from vidlm.video.errors import (
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoNotFoundError,
)

# Demuxer options: generate missing pts (packed-B-frame AVI, raw streams).
CONTAINER_OPTIONS = {"fflags": "+genpts"}
# Frame-threaded decoding on all cores; the H.264 decoder's default is slice threads.
DECODE_THREAD_TYPE = "AUTO"


def check_file(path: Path) -> None:
    """Raise the typed error for a missing or zero-byte file."""
    if not path.exists():
        raise VideoNotFoundError(path, "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise EmptyVideoError(path, "the file is empty (0 bytes)")


@contextmanager
def open_video(path: str | Path, *, threads: int = 0) -> Iterator[tuple[av.container.InputContainer,
                                                                        av.video.stream.VideoStream]]:
    """Open ``path`` and yield ``(container, first video stream)``; always closes it.

    ``threads``: decoder threads, ``0`` for FFmpeg's choice (one per core).
    """
    path = Path(path)
    check_file(path)
    try:
        container = av.open(str(path), options=CONTAINER_OPTIONS)
    except av.error.FileNotFoundError:
        raise VideoNotFoundError(path, "no such file") from None
    except av.error.IsADirectoryError:
        raise NotAVideoError(path, "is a folder, not a video file") from None
    except (av.error.InvalidDataError, av.error.DemuxerNotFoundError) as exc:
        raise NotAVideoError(path, f"not a video or image FFmpeg can read ({exc.strerror})") \
            from None
    except av.error.FFmpegError as exc:
        raise NotAVideoError(path, f"FFmpeg cannot open it ({exc.strerror})") from None
    try:
        stream = _video_stream(path, container)
        stream.thread_type = DECODE_THREAD_TYPE
        stream.thread_count = threads
        yield container, stream
    finally:
        container.close()


def _video_stream(path: Path,
                  container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NoVideoStreamError(path, f"the file has no video stream ({', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise UnsupportedCodecError(path, "this FFmpeg build has no decoder for its video codec")
    return stream
