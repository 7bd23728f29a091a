"""The decoded result: pixels plus where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frames:
    """Decoded frames of one video.

    ``frames``: uint8 ``(T, H, W, 3)`` RGB, upright (rotation metadata applied).
    ``timestamps``: float64 ``(T,)`` seconds from the stream's start, taken from each
    decoded frame's real pts (never index / fps arithmetic).
    ``indices``: int64 ``(T,)`` position of each frame in the stream's presentation order.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray

    def __post_init__(self) -> None:
        t = len(self.frames)
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {self.frames.dtype} "
                             f"{self.frames.shape}")
        if self.timestamps.shape != (t,) or self.indices.shape != (t,):
            raise ValueError(f"timestamps {self.timestamps.shape} and indices "
                             f"{self.indices.shape} must both be ({t},)")

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def empty(cls, height: int = 0, width: int = 0) -> Frames:
        return cls(np.zeros((0, height, width, 3), np.uint8), np.zeros(0, np.float64),
                   np.zeros(0, np.int64))

    @classmethod
    def concatenate(cls, parts: list[Frames]) -> Frames:
        """Join chunks from :func:`vidlm.video.stream` back into one ``Frames``."""
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.frames for p in parts]),
                   np.concatenate([p.timestamps for p in parts]),
                   np.concatenate([p.indices for p in parts]))
