"""A picture of sampled frames: a grid of thumbnails with timestamps and optional marks.

``marks`` labels frames by their position in the :class:`Frames` (0-based), for
instance ``{0: "slow", 5: "slow"}`` to show a SlowFast slow pathway; each distinct
label gets its own border colour and is named in the caption and the legend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidlm.video.frames import Frames

# Border colours for labels, in order of first appearance (colour-blind friendly).
MARK_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 97, 1), (0, 114, 178), (0, 158, 115), (204, 121, 167), (240, 228, 66), (86, 180, 233),
)
_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)


def save_frame_grid(frames: Frames, path: str | Path, *, marks: dict[int, str] | None = None,
                    columns: int | None = None, tile_width: int = 192,
                    title: str | None = None) -> Path:
    """Write a PNG/JPEG grid of ``frames`` to ``path`` and return the path.

    Each tile shows one frame scaled to ``tile_width``, captioned with its timestamp
    and source index; marked frames get a coloured border and their label.
    ``columns`` defaults to a near-square grid (at most 8 wide).
    """
    if len(frames) == 0:
        raise ValueError("save_frame_grid needs at least one frame")
    marks = dict(marks or {})
    bad = [k for k in marks if not 0 <= k < len(frames)]
    if bad:
        raise ValueError(f"marks refer to frame positions {bad}, outside 0..{len(frames) - 1}")
    colors = _label_colors(marks)
    font = ImageFont.load_default(size=max(10, tile_width // 14))
    cols = columns or min(8, math.ceil(math.sqrt(len(frames))))
    rows = math.ceil(len(frames) / cols)
    _, h, w, _ = frames.frames.shape
    tile_h = max(1, round(h * tile_width / w))
    border, pad = 4, 6
    caption_h = font.size + 6
    cell_w, cell_h = tile_width + 2 * border + pad, tile_h + 2 * border + caption_h + pad
    header_h = (font.size + 10) if (title or colors) else 0
    canvas = Image.new("RGB", (cols * cell_w + pad, rows * cell_h + pad + header_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _draw_header(draw, font, title, colors, pad)
    for pos in range(len(frames)):
        x = pad + (pos % cols) * cell_w
        y = header_h + pad + (pos // cols) * cell_h
        label = marks.get(pos)
        if label is not None:
            draw.rectangle([x, y, x + tile_width + 2 * border - 1, y + tile_h + 2 * border - 1],
                           fill=colors[label])
        thumb = Image.fromarray(np.ascontiguousarray(frames.frames[pos]))
        canvas.paste(thumb.resize((tile_width, tile_h), Image.Resampling.BILINEAR),
                     (x + border, y + border))
        caption = f"{frames.timestamps[pos]:.2f}s  #{int(frames.indices[pos])}"
        if label is not None:
            caption += f"  {label}"
        draw.text((x + border, y + tile_h + 2 * border + 2), caption,
                  fill=colors.get(label, _TEXT) if label else _TEXT, font=font)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _label_colors(marks: dict[int, str]) -> dict[str, tuple[int, int, int]]:
    colors: dict[str, tuple[int, int, int]] = {}
    for _, label in sorted(marks.items()):
        if label not in colors:
            colors[label] = MARK_COLORS[len(colors) % len(MARK_COLORS)]
    return colors


def _draw_header(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
                 title: str | None, colors: dict[str, tuple[int, int, int]], pad: int) -> None:
    x = pad
    if title:
        draw.text((x, pad // 2 + 2), title, fill=_TEXT, font=font)
        x += int(draw.textlength(title + "    ", font=font))
    for label, color in colors.items():
        draw.rectangle([x, pad // 2 + 3, x + font.size, pad // 2 + 3 + font.size], fill=color)
        draw.text((x + font.size + 4, pad // 2 + 2), label, fill=_TEXT, font=font)
        x += font.size + 12 + int(draw.textlength(label, font=font))
