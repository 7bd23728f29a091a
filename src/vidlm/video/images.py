"""Still images as one-frame videos, and folders of images as videos.

Images are read with Pillow (EXIF orientation applied), then resized by the same
FFmpeg scaler as video frames. A folder's images are its frames in natural name
order (``f2.png`` before ``f10.png``); frame ``i`` is at ``i / folder_fps`` seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidlm.video.errors import CorruptVideoError, EmptyVideoError, NotAVideoError
from vidlm.video.resize import FrameConverter

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
DEFAULT_FOLDER_FPS = 1.0


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in natural name order."""
    images = sorted((p for p in folder.iterdir() if is_image_file(p)), key=_natural_key)
    if not images:
        raise EmptyVideoError(folder, f"the folder holds no images "
                                      f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def load_image(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB, upright per the EXIF orientation."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise NotAVideoError(path, "not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptVideoError(path, f"the image is damaged ({exc})") from None


def image_size(path: Path) -> tuple[int, int, str]:
    """``(width, height, format)`` of the upright image, without decoding its pixels."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
            fmt = (img.format or path.suffix.lstrip(".")).lower()
    except UnidentifiedImageError:
        raise NotAVideoError(path, "not an image Pillow can read") from None
    except OSError as exc:
        raise CorruptVideoError(path, f"the image is damaged ({exc})") from None
    if orientation in (5, 6, 7, 8):  # EXIF orientations that swap width and height
        w, h = h, w
    return w, h, fmt


def convert_image(rgb: np.ndarray, converter: FrameConverter) -> np.ndarray:
    """Resize an RGB array with FFmpeg's scaler, like a decoded video frame."""
    return converter(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
