"""Ground truth of ``vidlm.data.synth``: decoded mp4 frames really show what the answers say.

The checks re-derive every answer from the *decoded* pixels with an independent
blob detector (palette colour, connected components, bounding-box fill ratio for
the shape), not from the scene metadata the generator wrote.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from vidlm.data.synth import SynthConfig, generate_dataset
from vidlm.data.synth_scene import COLORS

PALETTE = np.array(list(COLORS.values()), dtype=np.float64)
NAMES = list(COLORS)


@dataclass
class Blob:
    color: str
    shape: str
    cx: float
    cy: float
    area: int


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a bool (H, W) mask as (K, 2) arrays of (y, x)."""
    seen = np.zeros_like(mask)
    comps = []
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        queue, pix = deque([(y0, x0)]), []
        seen[y0, x0] = True
        while queue:
            y, x = queue.popleft()
            pix.append((y, x))
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    queue.append((yy, xx))
        comps.append(np.array(pix))
    return comps


def classify(ys: np.ndarray, xs: np.ndarray, size: int) -> str:
    """Shape of a blob from its pixels: squares fill their bounding-box corners,
    triangles (pointing up) have far fewer pixels above their middle than below."""
    m = np.zeros((size, size), dtype=bool)
    m[ys, xs] = True
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    corners = [
        m[y0 : y0 + 2, x0 : x0 + 2],
        m[y0 : y0 + 2, x1 - 1 : x1 + 1],
        m[y1 - 1 : y1 + 1, x0 : x0 + 2],
        m[y1 - 1 : y1 + 1, x1 - 1 : x1 + 1],
    ]
    if np.mean([c.mean() for c in corners]) >= 0.625:
        return "square"
    mid = (y0 + y1) / 2
    top_over_bottom = (ys < mid).sum() / max(int((ys > mid).sum()), 1)
    return "triangle" if top_over_bottom < 0.64 else "circle"


def blobs(frame: np.ndarray, min_area: int = 12) -> list[Blob]:
    """Coloured shapes in a decoded (H, W, 3) frame, found from pixels alone."""
    rgb = frame.astype(np.float64)
    dist = np.linalg.norm(rgb[:, :, None, :] - PALETTE[None, None], axis=-1)  # (H, W, 4)
    label = dist.argmin(-1)
    close = dist.min(-1) < 90
    found = []
    for k, name in enumerate(NAMES):
        for pix in _components(close & (label == k)):
            if len(pix) < min_area:
                continue
            ys, xs = pix[:, 0], pix[:, 1]
            shape = classify(ys, xs, frame.shape[0])
            found.append(
                Blob(name, shape, float(xs.mean() + 0.5), float(ys.mean() + 0.5), len(pix))
            )
    return found


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synth_truth")
    generate_dataset(out, SynthConfig(num_train=56, num_val=0, num_test=0, seed=3), progress=False)
    return out, json.loads((out / "train.json").read_text())


def _of_kind(dataset: tuple[Path, list[dict]], kind: str) -> list[tuple[np.ndarray, dict]]:
    out, records = dataset
    chosen = [(decode(out / r["video"]), r) for r in records if r["kind"] == kind]
    assert len(chosen) >= 6, f"too few {kind} records to check"
    return chosen


def test_color_answers_match_pixels(dataset: tuple[Path, list[dict]]) -> None:
    for frames, rec in _of_kind(dataset, "color"):
        shape = rec["question"].removeprefix("What color is the ").removesuffix("?")
        for frame in frames[::5]:
            targets = [b for b in blobs(frame) if b.shape == shape]
            assert len(targets) == 1, (rec["id"], targets)
            assert targets[0].color == rec["answer"], rec["id"]


def test_counted_shapes_are_present(dataset: tuple[Path, list[dict]]) -> None:
    for frames, rec in _of_kind(dataset, "count"):
        plural = rec["question"].removeprefix("How many ").removesuffix(" are there?")
        for frame in frames[::5]:
            n = sum(b.shape + "s" == plural for b in blobs(frame))
            assert n == int(rec["answer"]), (rec["id"], n)


def test_shape_answers_match_pixels(dataset: tuple[Path, list[dict]]) -> None:
    for frames, rec in _of_kind(dataset, "shape"):
        color = rec["question"].removeprefix("What shape is the ").removesuffix(" object?")
        for frame in frames[::5]:
            targets = [b for b in blobs(frame) if b.color == color]
            assert [b.shape for b in targets] == [rec["answer"]], rec["id"]


def test_direction_is_the_decoded_centroid_motion(dataset: tuple[Path, list[dict]]) -> None:
    axis = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}
    for frames, rec in _of_kind(dataset, "direction"):
        color, shape = rec["question"].removeprefix("Which direction does the ").split()[:2]
        track = []
        for frame in frames:
            (b,) = [b for b in blobs(frame) if b.color == color]  # colours are unique here
            assert b.shape == shape, rec["id"]
            track.append((b.cx, b.cy))
        moved = np.array(track[-1]) - np.array(track[0])
        along, sign = axis[rec["answer"]]
        size = frames.shape[1]
        assert sign * moved[along] > 0.3 * size, (rec["id"], moved)
        assert abs(moved[1 - along]) < 1.5, (rec["id"], moved)
        steps = np.diff(np.array(track)[:, along]) * sign
        assert (steps > 0).all(), rec["id"]  # monotone: every frame moves the stated way


def test_what_appears_after_follows_decoded_order(dataset: tuple[Path, list[dict]]) -> None:
    for frames, rec in _of_kind(dataset, "after"):
        named = rec["question"].removeprefix("What appears after the ").removesuffix(" leaves?")
        shown = [[b.shape for b in blobs(f)] for f in frames]
        assert all(len(s) <= 1 for s in shown), rec["id"]  # one shape at a time
        last_named = max(t for t, s in enumerate(shown) if named in s)
        after = next(s[0] for s in shown[last_named + 1 :] if s and s[0] != named)
        assert after == rec["answer"], rec["id"]
        assert rec["answer"] in rec["choices"] and named not in rec["choices"]


def test_color_change_and_its_time(dataset: tuple[Path, list[dict]]) -> None:
    for frames, rec in _of_kind(dataset, "color_change"):
        shape = rec["question"].removeprefix("Does the ").removesuffix(" change color, and when?")
        colors = []
        for frame in frames:
            (b,) = [b for b in blobs(frame) if b.shape == shape]
            colors.append(b.color)
        changes = [t for t in range(1, len(colors)) if colors[t] != colors[t - 1]]
        if rec["answer"] == "no":
            assert changes == [], rec["id"]
        else:
            assert len(changes) == 1, (rec["id"], changes)
            early = changes[0] < len(colors) / 2
            assert rec["answer"] == ("early" if early else "late"), rec["id"]


def test_bounce_count_is_decoded_reversals(dataset: tuple[Path, list[dict]]) -> None:
    for frames, rec in _of_kind(dataset, "bounce"):
        track = []
        for frame in frames:
            (ball,) = [b for b in blobs(frame) if b.shape == "circle"]
            track.append((ball.cx, ball.cy))
        xy = np.array(track)
        along = int(np.ptp(xy[:, 1]) > np.ptp(xy[:, 0]))
        velocity = np.sign(np.diff(xy[:, along]))
        velocity = velocity[velocity != 0]
        reversals = int((velocity[1:] != velocity[:-1]).sum())
        assert reversals == int(rec["answer"]), (rec["id"], reversals, xy[:, along].round(1))
