"""The video input layer: any video, image or folder of frames in; the right frames out.

    from vidlm import video
    info = video.probe("clip.mp4")
    frames = video.read("clip.mp4", video.fps(1.0, max_frames=64), size=384)
    for chunk in video.stream("long.mp4", video.fps(1.0, 3600), chunk=32, size=384):
        ...  # chunk.frames (T, H, W, 3) uint8, chunk.timestamps, chunk.indices

See ``docs/video.md`` for the decode strategy, the pitfalls handled and measurements.
"""

from vidlm.video.errors import (
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
from vidlm.video.frames import Frames
from vidlm.video.grid import save_frame_grid
from vidlm.video.probe import VideoInfo, probe
from vidlm.video.reader import read, stream
from vidlm.video.resize import Resize, parse_size
from vidlm.video.sampling import (
    SamplingPolicy,
    fps,
    policy_from_config,
    timestamps,
    uniform,
)

__all__ = [
    "CorruptFramesWarning",
    "CorruptVideoError",
    "EmptyVideoError",
    "Frames",
    "NoVideoStreamError",
    "NotAVideoError",
    "Resize",
    "SamplingPolicy",
    "TruncatedVideoError",
    "TruncatedVideoWarning",
    "UnsupportedCodecError",
    "VideoInfo",
    "VideoNotFoundError",
    "fps",
    "parse_size",
    "policy_from_config",
    "probe",
    "read",
    "save_frame_grid",
    "stream",
    "timestamps",
    "uniform",
]
