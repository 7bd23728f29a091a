"""The frame-grid picture and the ``vidlm probe`` / ``vidlm frames`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import media
from vidlm import video
from vidlm.cli import main
from vidlm.video import Frames
from vidlm.video.grid import MARK_COLORS


def gray_frames(n: int, h: int = 30, w: int = 40) -> Frames:
    pixels = np.full((n, h, w, 3), 128, np.uint8)
    return Frames(pixels, np.arange(n) * 0.5, np.arange(n) * 12)


def test_grid_marks_frames_with_coloured_borders(tmp_path: Path) -> None:
    out = video.save_frame_grid(gray_frames(6), tmp_path / "grid.png", columns=3, tile_width=80,
                                marks={0: "slow", 4: "slow", 2: "fast"})
    img = np.asarray(Image.open(out).convert("RGB"))
    gray = (img == 128).all(axis=2)
    # the thumbnails: 80x60 blocks of the frames' gray; find their top-left corners
    corners = [(y, x) for y, x in zip(*np.nonzero(gray), strict=True)
               if not gray[y - 1, x] and not gray[y, x - 1]
               and gray[y, x:x + 80].all() and gray[y:y + 60, x].all()]
    assert len(corners) == 6
    colours = [tuple(int(c) for c in img[y - 2, x - 2]) for y, x in sorted(corners)]
    slow, fast = MARK_COLORS[0], MARK_COLORS[1]
    assert colours[0] == slow and colours[4] == slow and colours[2] == fast
    assert not {colours[1], colours[3], colours[5]} & {slow, fast}


def test_grid_rejects_bad_marks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        video.save_frame_grid(gray_frames(2), tmp_path / "g.png", marks={5: "slow"})
    with pytest.raises(ValueError, match="at least one"):
        video.save_frame_grid(Frames.empty(), tmp_path / "g.png")


def test_probe_command_json_matches_ffprobe(bikes_mp4: Path, capsys) -> None:
    assert main(["probe", str(bikes_mp4), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ref = media.ffprobe_stream(bikes_mp4)
    assert data["num_frames"] == int(ref["nb_frames"]) and data["frames_exact"] is True
    assert (data["width"], data["height"]) == (ref["width"], ref["height"])
    assert main(["probe", str(bikes_mp4)]) == 0
    assert "frames             250" in capsys.readouterr().out


def test_frames_command_writes_grid(bikes_mp4: Path, tmp_path: Path, capsys) -> None:
    grid = tmp_path / "out" / "grid.png"
    args = ["frames", str(bikes_mp4), "--num-frames", "6", "--size", "64x64:pad", "--json",
            "--grid", str(grid)]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    data = json.loads(out[0])
    assert data["num_frames"] == 6 and data["shape"] == [6, 64, 64, 3]
    times = np.asarray(media.ffprobe_frame_times(bikes_mp4))
    np.testing.assert_allclose(data["timestamps"], times[data["indices"]], atol=1e-6)
    assert grid.is_file() and Image.open(grid).size[0] > 3 * 64
    assert main(["frames", str(bikes_mp4), "--fps", "0.5", "--max-frames", "3"]) == 0
    assert capsys.readouterr().out.startswith("3 frames")  # 5 at 0.5 fps > 3: uniform 3


def test_frames_command_rejects_bad_size(bikes_mp4: Path, capsys) -> None:
    assert main(["frames", str(bikes_mp4), "--size", "big"]) == 1
    assert "size 'big'" in capsys.readouterr().err
