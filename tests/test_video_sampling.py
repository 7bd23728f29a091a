"""Sampling policies resolve against real pts (pure functions, no decoding)."""

from __future__ import annotations

import numpy as np
import pytest

from vidlm.errors import ConfigError
from vidlm.model.config import SamplingConfig
from vidlm.video import fps, policy_from_config, timestamps, uniform
from vidlm.video.sampling import FpsPolicy, UniformPolicy, frames_on_screen


def cfr(n: int, rate: float) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / rate


def test_uniform_takes_segment_middles() -> None:
    pts = cfr(100, 10.0)  # 10 s
    idx = uniform(4).select(pts, 10.0)
    # middles of [0,2.5), [2.5,5), ... are 1.25, 3.75, 6.25, 8.75 s -> frames on screen
    assert idx.tolist() == [12, 37, 62, 87]


def test_fps_samples_every_1_over_target_seconds() -> None:
    pts = cfr(250, 25.0)  # 10 s
    idx = fps(2.0, max_frames=64).select(pts, 10.0)
    assert len(idx) == 20
    np.testing.assert_allclose(pts[idx], np.floor(np.arange(20) * 0.5 * 25) / 25)


def test_fps_falls_back_to_uniform_max_frames() -> None:
    pts = cfr(3000, 25.0)  # 120 s at 1 fps would be 120 frames
    policy = fps(1.0, max_frames=16)
    assert policy.count(120.0) == 120
    np.testing.assert_array_equal(policy.select(pts, 120.0), uniform(16).select(pts, 120.0))


def test_fps_at_the_limit_keeps_fps_spacing() -> None:
    pts = cfr(400, 25.0)  # 16 s -> exactly 16 frames at 1 fps
    idx = fps(1.0, max_frames=16).select(pts, 16.0)
    assert idx.tolist() == list(range(0, 400, 25))


def test_variable_frame_rate_uses_pts_not_index_arithmetic() -> None:
    # 1 s at 10 fps, then 1 s at 30 fps, then 1 s at 10 fps (50 frames, avg 16.7 fps)
    pts = np.concatenate([np.arange(10) / 10, 1 + np.arange(30) / 30, 2 + np.arange(10) / 10])
    idx = timestamps([0.5, 1.5, 2.5]).select(pts, 3.0)
    np.testing.assert_allclose(pts[idx], [0.5, 1.5, 2.5])
    naive = np.round(np.array([0.5, 1.5, 2.5]) * len(pts) / 3.0).astype(int)
    assert not np.allclose(pts[naive], [0.5, 1.5, 2.5], atol=0.05)


def test_timestamps_pick_frame_on_screen_and_dedupe() -> None:
    pts = cfr(10, 2.0)  # frames at 0, 0.5, ..., 4.5
    assert timestamps([0.0, 0.2, 0.5, 0.74, 99.0]).select(pts, 5.0).tolist() == [0, 1, 9]


def test_frame_boundary_is_not_lost_to_float_rounding() -> None:
    pts = np.array([0.0, 1 / 3, 2 / 3, 1.0])
    assert frames_on_screen(pts, np.array([1 / 3 + 1e-12, 2.0 / 3.0])).tolist() == [1, 2]


def test_single_frame_and_empty() -> None:
    assert uniform(8).select(np.zeros(1), 0.0).tolist() == [0]
    assert fps(1, 8).select(np.zeros(0), 0.0).tolist() == []


@pytest.mark.parametrize("bad", [lambda: uniform(0), lambda: fps(0, 4), lambda: fps(1, 0),
                                 lambda: timestamps([]), lambda: timestamps([-1.0])])
def test_invalid_policies_raise(bad) -> None:
    with pytest.raises(ValueError):
        bad()


def test_policy_from_config() -> None:
    assert policy_from_config(SamplingConfig(mode="uniform", num_frames=12)) == UniformPolicy(12)
    cfg = SamplingConfig(mode="fps", fps=0.5, max_frames=9)
    assert policy_from_config(cfg) == FpsPolicy(0.5, 9)
    with pytest.raises(ConfigError, match=r"sampling\.mode"):
        policy_from_config(SamplingConfig(mode="random"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="uniform"):
        policy_from_config(SamplingConfig(mode="uniform", num_frames=0))
