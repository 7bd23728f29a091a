"""LLaVA-OneVision's "anyres" image path: tiles at a chosen resolution plus a base view.

An image of ``(H, W)`` pixels is fitted into the best of the checkpoint's
``image_grid_pinpoints`` (the resolution that keeps the most of the image's pixels,
then wastes the least), resized to fit it with its aspect ratio kept, padded with black
to that resolution and cut into ``S x S`` tiles (``S``: the vision tower's input size),
row by row. A base view, the whole image resized to ``S x S``, comes first:
``P = 1 + (best_h / S) * (best_w / S)`` vision-tower inputs.

On the feature side (:meth:`OneVisionConnector.image_tokens`) the tiles' projected
``(h, w)`` maps are laid out as one ``(rows * h, cols * w)`` map, the padding is cut off
again (:func:`unpadded_size`), the map is shrunk by bilinear interpolation when it holds
more than ``max_tiles`` tiles' worth of tokens (by more than 10 %), and a learned newline
token ends every row. The tokens are: the base view's ``h * w``, then the map's
``rows' * (cols' + 1)``. Resizing uses Pillow's bicubic filter on uint8 pixels, as
``LlavaOnevisionImageProcessor`` does, so the pixels match it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

Size = tuple[int, int]  # (height, width)


def best_resolution(image_size: Size, pinpoints: Sequence[Sequence[int]]) -> Size:
    """The pinpoint ``(h, w)`` that keeps most of the image's pixels, then wastes least."""
    height, width = image_size
    best: Size | None = None
    best_kept, best_wasted = 0, math.inf
    for ph, pw in pinpoints:
        scale = min(pw / width, ph / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        wasted = ph * pw - kept
        if kept > best_kept or (kept == best_kept and wasted < best_wasted):
            best, best_kept, best_wasted = (int(ph), int(pw)), kept, wasted
    if best is None:
        raise ValueError(f"no image_grid_pinpoints fit an image of {height}x{width}")
    return best


def fitted_size(image_size: Size, target: Size) -> Size:
    """The image resized to fit inside ``target`` with its aspect ratio kept."""
    height, width = image_size
    th, tw = target
    if tw / width < th / height:
        return min(math.ceil(height * tw / width), th), tw
    return th, min(math.ceil(width * th / height), tw)


def tile_grid(image_size: Size, pinpoints: Sequence[Sequence[int]], tile: int) -> Size:
    """``(rows, cols)`` of ``tile x tile`` tiles the image is cut into."""
    bh, bw = best_resolution(image_size, pinpoints)
    return bh // tile, bw // tile


def unpadded_size(image_size: Size, padded: Size) -> Size:
    """The part of a ``padded`` feature map that shows the image (centred padding cut off)."""
    height, width = image_size
    ch, cw = padded
    if width / height > cw / ch:
        new_h = int(round(height * (cw / width), 7))
        pad = (ch - new_h) // 2
        return ch - 2 * pad, cw
    new_w = int(round(width * (ch / height), 7))
    pad = (cw - new_w) // 2
    return ch, cw - 2 * pad


def shrunk_size(size: Size, grid: Size, max_tiles: int) -> Size:
    """The feature map's size after interpolation when it exceeds ``max_tiles`` tiles (+10 %)."""
    ch, cw = size
    ratio = math.sqrt(ch * cw / (max_tiles * grid[0] ** 2))
    if ratio > 1.1:
        return int(ch // ratio), int(cw // ratio)
    return ch, cw


def image_num_tokens(image_size: Size, grid: Size, *, pinpoints: Sequence[Sequence[int]],
                     tile: int, max_tiles: int) -> int:
    """Tokens of one image (pure): base view ``h*w`` + map rows ``* (cols + 1)``."""
    rows, cols = tile_grid(image_size, pinpoints, tile)
    mh, mw = unpadded_size(image_size, (rows * grid[0], cols * grid[1]))
    mh, mw = shrunk_size((mh, mw), grid, max_tiles)
    return grid[0] * grid[1] + mh * (mw + 1)


def anyres_tiles(image: np.ndarray, *, pinpoints: Sequence[Sequence[int]],
                 tile: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> uint8 ``(P, tile, tile, 3)``: the base view, then the tiles."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    size = (int(image.shape[0]), int(image.shape[1]))
    target = best_resolution(size, pinpoints)
    nh, nw = fitted_size(size, target)
    pil = Image.fromarray(image)
    fitted = np.asarray(pil.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=None))
    top, left = (target[0] - nh) // 2, (target[1] - nw) // 2
    canvas = np.zeros((*target, 3), dtype=np.uint8)  # black padding
    canvas[top:top + nh, left:left + nw] = fitted
    tiles = [canvas[i:i + tile, j:j + tile]
             for i in range(0, target[0], tile) for j in range(0, target[1], tile)]
    base = np.asarray(pil.resize((tile, tile), Image.Resampling.BICUBIC, reducing_gap=None))
    return np.stack([base, *tiles])
