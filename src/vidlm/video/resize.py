"""Output size of decoded frames, applied by FFmpeg's scaler (swscale via PyAV).

``size=`` anywhere in :mod:`vidlm.video` accepts:

* ``None`` -- native size (after rotation);
* an ``int`` -- short side to this many pixels, aspect kept;
* ``(width, height)`` -- stretched to exactly that size;
* a :class:`Resize` -- any mode, including ``"pad"`` (fit inside, aspect kept,
  centred on a ``pad_color`` canvas) and ``"crop"`` (cover, then centre crop);
* a string as on the command line: ``"384"``, ``"384x384"``, ``"384x384:pad"``.

Sizes refer to the upright picture: for a 90-degree rotated video the scaler
works on the coded frame with width and height swapped, and the result is rotated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter

ResizeMode = Literal["short_side", "stretch", "pad", "crop"]
RESIZE_MODES: tuple[str, ...] = ("short_side", "stretch", "pad", "crop")


@dataclass(frozen=True)
class Resize:
    """A target size. ``short_side`` uses ``width`` as the short side's length."""

    mode: ResizeMode
    width: int
    height: int = 0
    pad_color: tuple[int, int, int] = (0, 0, 0)
    interpolation: str = "BILINEAR"

    def __post_init__(self) -> None:
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {self.mode!r}")
        if self.width < 1 or (self.mode != "short_side" and self.height < 1):
            raise ValueError(f"resize sizes must be positive, got {self.width}x{self.height}")

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` the scaler produces from an upright ``width x height`` picture."""
        if self.mode == "stretch":
            return self.width, self.height
        if self.mode == "short_side":
            scale = self.width / min(width, height)
        elif self.mode == "pad":
            scale = min(self.width / width, self.height / height)
        else:  # crop
            scale = max(self.width / width, self.height / height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` of the returned frames for an upright ``width x height`` input."""
        if self.mode == "short_side":
            return self.scaled_size(width, height)
        return self.width, self.height


SizeSpec = None | int | tuple[int, int] | Resize | str


def as_resize(size: SizeSpec) -> Resize | None:
    """Normalise any accepted ``size=`` value (see the module docstring)."""
    if size is None or isinstance(size, Resize):
        return size
    if isinstance(size, str):
        return parse_size(size)
    if isinstance(size, int | np.integer):
        return Resize("short_side", int(size))
    if isinstance(size, tuple | list) and len(size) == 2:
        return Resize("stretch", int(size[0]), int(size[1]))
    raise ValueError(f"size must be None, an int, (width, height), a Resize or a string, "
                     f"got {size!r}")


def parse_size(text: str) -> Resize:
    """``"384"``: short side; ``"WxH"``: stretch; ``"WxH:pad|crop|stretch"``: that mode."""
    spec, _, mode = text.strip().lower().partition(":")
    try:
        if "x" not in spec:
            if mode and mode != "short_side":
                raise ValueError
            return Resize("short_side", int(spec))
        w, h = (int(v) for v in spec.split("x"))
        return Resize(mode or "stretch", w, h)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"size {text!r} is not N, WxH or WxH:pad|crop|stretch") from None


def upright_rotation(rotation: float) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) to turn a decoded frame upright.

    PyAV's ``frame.rotation`` is the display matrix's counter-clockwise rotation.
    """
    return round(rotation / 90.0) % 4 * 90


class FrameConverter:
    """Turns decoded ``av.VideoFrame`` objects into upright RGB arrays of one size.

    One instance per decode keeps one swscale context for all frames.
    """

    def __init__(self, resize: Resize | None) -> None:
        self.resize = resize
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        """``(H, W, 3)`` uint8 upright RGB."""
        quarter_turns = upright_rotation(frame.rotation) // 90
        width, height = frame.width, frame.height
        if quarter_turns % 2:
            width, height = height, width  # the upright picture's size
        rgb = self._scale(frame, width, height, quarter_turns)
        if quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
        if self.resize is None:  # keep later frames at this size if the stream's changes
            self.resize = Resize("stretch", width, height)
        return self._fit(rgb)

    def _scale(self, frame: av.VideoFrame, width: int, height: int,
               quarter_turns: int) -> np.ndarray:
        if self.resize is None:
            out_w, out_h = width, height
        else:
            out_w, out_h = self.resize.scaled_size(width, height)
        if quarter_turns % 2:
            out_w, out_h = out_h, out_w  # the coded frame is sideways
        interpolation = self.resize.interpolation if self.resize else None
        rgb = self._reformatter.reformat(frame, out_w, out_h, "rgb24", interpolation=interpolation)
        return rgb.to_ndarray()

    def _fit(self, rgb: np.ndarray) -> np.ndarray:
        if self.resize is None or self.resize.mode in ("short_side", "stretch"):
            return rgb
        h, w = rgb.shape[:2]
        out_w, out_h = self.resize.width, self.resize.height
        if self.resize.mode == "crop":
            top, left = (h - out_h) // 2, (w - out_w) // 2
            return np.ascontiguousarray(rgb[top:top + out_h, left:left + out_w])
        canvas = np.empty((out_h, out_w, 3), np.uint8)
        canvas[:] = np.asarray(self.resize.pad_color, np.uint8)
        top, left = (out_h - h) // 2, (out_w - w) // 2
        canvas[top:top + h, left:left + w] = rgb
        return canvas
