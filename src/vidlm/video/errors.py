"""Typed errors and warnings of the video layer.

Every error derives from :class:`vidlm.errors.VideoError`, so it carries ``.path``
and a human-readable ``.reason``; the CLI prints it as one line.
"""

from __future__ import annotations

from vidlm.errors import VideoError


class VideoNotFoundError(VideoError):
    """The path does not exist."""


class EmptyVideoError(VideoError):
    """The file has zero bytes, or a folder holds no images."""


class NotAVideoError(VideoError):
    """FFmpeg recognises no container format in the file."""


class NoVideoStreamError(VideoError):
    """The container opens but holds no video stream (e.g. audio only)."""


class UnsupportedCodecError(VideoError):
    """The video stream's codec has no decoder in this FFmpeg build."""


class CorruptVideoError(VideoError):
    """The stream is damaged: no frame decodes, or (with ``strict=True``) some packets fail."""


class TruncatedVideoError(CorruptVideoError):
    """The file ends before the stream does (raised only with ``strict=True``)."""


class TruncatedVideoWarning(UserWarning):
    """The file ends early; the frames that decode are returned."""


class CorruptFramesWarning(UserWarning):
    """Some packets failed to decode; the frames that decode are returned."""
