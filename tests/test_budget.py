"""Token budgets: the pure function, plan_video on real clips, and the ``vidlm tokens`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from vidlm.cli import main
from vidlm.errors import ConfigError
from vidlm.model.budget import plan_video, render_budget_table, token_budget
from vidlm.model.config import SamplingConfig
from vidlm.model.connectors import (
    MLP2xGeluConfig,
    SlowFastConfig,
    TemporalPoolConfig,
    connector_preset,
)


def rendered(table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_slowfast_2024_budget() -> None:
    b = token_budget(50, (24, 24), connector_preset("slowfast_llava_2024"),
                     context_length=8192, text_tokens=120)
    assert b.num_frames == 50 and b.total_tokens == 3680
    slow, fast = b.pathway("slow"), b.pathway("fast")
    assert (slow.units, slow.tokens_per_unit, slow.tokens) == (10, 288, 2880)
    assert (fast.units, fast.tokens_per_unit, fast.tokens) == (50, 16, 800)
    assert slow.frames == tuple(range(0, 50, 5)) and fast.frames == tuple(range(50))
    assert b.per_frame_tokens == 50 * 576 == 28800
    assert b.context_left == 8192 - 3680 - 120
    assert b.fits and b.compression == pytest.approx(28800 / 3680)
    marks = b.frame_marks()
    assert [i for i, m in marks.items() if m == "slow"] == list(range(0, 50, 5))
    assert len(marks) == 50 and sum(m == "fast" for m in marks.values()) == 40


def test_slowfast_1_5_budget_overflows_an_8k_context() -> None:
    b = token_budget(128, (24, 24), connector_preset("slowfast_llava_1_5"), context_length=8192)
    assert b.total_tokens == 9216 and b.context_left == 8192 - 9216 and not b.fits
    assert b.per_frame_tokens == 128 * 576


def test_single_pathway_budgets() -> None:
    b = token_budget(8, (24, 24), MLP2xGeluConfig(), context_length=4096, has_cls=True)
    assert [p.name for p in b.pathways] == ["frames"]
    assert b.total_tokens == 8 * 577 and b.per_frame_tokens == 8 * 576
    assert b.frame_marks() == {}
    t = token_budget(10, (12, 12), TemporalPoolConfig(window=4), context_length=4096)
    assert t.pathway("windows").units == 3 and t.total_tokens == 3 * 144


def test_separator_is_counted_as_an_extra_token() -> None:
    b = token_budget(16, (24, 24), SlowFastConfig(slow_frames=4, separator=True),
                     context_length=8192)
    assert b.extra_tokens == 1 and b.total_tokens == 4 * 288 + 16 * 16 + 1


@pytest.mark.parametrize(("kwargs", "match"), [({"context_length": 0}, "context_length"),
                                               ({"context_length": 10, "text_tokens": -1},
                                                "text_tokens")])
def test_budget_rejects_bad_numbers(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        token_budget(8, (24, 24), SlowFastConfig(), **kwargs)
    with pytest.raises(ConfigError, match="num_frames"):
        token_budget(0, (24, 24), SlowFastConfig(), context_length=10)


def test_budget_table_shows_every_number() -> None:
    b = token_budget(50, (24, 24), connector_preset("slowfast_llava_2024"), context_length=8192,
                     text_tokens=100)
    text = rendered(render_budget_table(b))
    for needle in ("slow pathway", "fast pathway", "2,880", "800", "3,680", "4,412", "28,800",
                   "positions 0, 5, 10", "all frames"):
        assert needle in text, needle


def test_budget_round_trips_as_json() -> None:
    b = token_budget(12, (24, 24), SlowFastConfig(slow_frames=3), context_length=2048)
    data = json.loads(json.dumps(b.to_dict()))
    assert data["total_tokens"] == 3 * 288 + 12 * 16
    assert data["pathways"][0]["frames"] == [0, 4, 8] and data["fits"] is True


# ---- real clips ------------------------------------------------------------------------------


def test_plan_video_uniform_on_a_real_clip(bikes_mp4: Path) -> None:
    b = plan_video(bikes_mp4, connector_preset("slowfast_llava_2024"),
                   SamplingConfig(mode="uniform", num_frames=50), context_length=8192)
    assert b.num_frames == 50 and b.total_tokens == 3680
    assert b.duration == pytest.approx(10.0)
    # bikes.mp4 is 25 fps over 10 s: segment middles 0.1, 0.3, ... fall on frames 2, 7, 12, ...
    assert b.timestamps == pytest.approx([0.08 + 0.2 * i for i in range(50)])
    assert b.video == str(bikes_mp4)


def test_plan_video_fps_with_fallback(bikes_mp4: Path) -> None:
    two_fps = plan_video(bikes_mp4, SlowFastConfig(), SamplingConfig(mode="fps", fps=2.0,
                                                                     max_frames=64))
    assert two_fps.num_frames == 20
    # targets 0, 0.5, 1.0, ... s; at 25 fps the frame on screen at 0.5 s started at 0.48 s
    assert two_fps.timestamps == pytest.approx([0.04 * ((25 * i) // 2) for i in range(20)])
    fallback = plan_video(bikes_mp4, SlowFastConfig(), SamplingConfig(mode="fps", fps=10.0,
                                                                      max_frames=32))
    assert fallback.num_frames == 32  # 100 frames at 10 fps exceed 32: 32 uniform instead
    assert fallback.total_tokens == 10 * 288 + 32 * 16


# ---- the CLI ---------------------------------------------------------------------------------


def test_cli_prints_the_table(bikes_mp4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", str(bikes_mp4), "--connector", "slowfast_llava_2024"]) == 0
    out = capsys.readouterr().out
    for needle in ("bikes.mp4", "frames sampled", "50", "2,880", "800", "3,680", "4,512",
                   "28,800"):
        assert needle in out, needle


def test_cli_json_with_fps_and_overrides(small_mp4: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tokens", str(small_mp4), "--connector", "slowfast", "--fps", "2", "--max-frames",
               "64", "--grid-size", "12", "--context", "4096", "--text-tokens", "50",
               "--set", "connector.slow_frames=4", "--set", "connector.fast_grid=[2, 3]",
               "--set", "connector.separator=true", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_frames"] == 8  # 4 s at 2 fps
    assert data["total_tokens"] == 4 * 72 + 1 + 8 * 6
    assert data["context_left"] == 4096 - data["total_tokens"] - 50
    assert data["per_frame_tokens"] == 8 * 144
    assert data["connector_config"]["fast_grid"] == [2, 3]
    assert data["timestamps"] == pytest.approx([0.04 * ((25 * i) // 2) for i in range(8)])


def test_cli_switches_connector_by_override(small_mp4: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tokens", str(small_mp4), "--num-frames", "6", "--set",
               "connector.name=temporal_pool", "--set", "connector.window=4", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["connector"] == "temporal_pool" and data["total_tokens"] == 2 * 576


@pytest.mark.parametrize(("args", "message"), [
    (["--connector", "qformer"], "unknown connector or preset 'qformer'"),
    (["--set", "connector.slow_pool=median"], "slow_pool must be one of"),
    (["--set", "sampling.fps=2"], "--set takes connector.FIELD=VALUE"),
    (["--max-frames", "8"], "--max-frames applies to fps sampling"),
    (["--num-frames", "0"], "--num-frames must be positive"),
    (["--grid-size", "big"], "--grid-size must look like"),
])
def test_cli_user_errors_are_one_line(small_mp4: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str], message: str) -> None:
    assert main(["tokens", str(small_mp4), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_missing_video_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.mp4"
    assert main(["tokens", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1


# ---- agreement with the decoder, other inputs, the frame grid --------------------------------


def _folder_of_frames(tmp_path: Path, count: int) -> Path:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.full((24, 32, 3), 20 * i, np.uint8)).save(folder / f"f{i:03d}.png")
    return folder


@pytest.mark.parametrize("sampling", [SamplingConfig(mode="uniform", num_frames=7),
                                      SamplingConfig(mode="fps", fps=3.0, max_frames=16)])
def test_sampled_times_match_what_the_decoder_reads(bikes_mp4: Path, small_mp4: Path,
                                                    tmp_path: Path, sampling) -> None:
    from vidlm.model.budget import sample_times
    from vidlm.video import policy_from_config, read

    for source in (bikes_mp4, small_mp4, _folder_of_frames(tmp_path, 9)):
        planned = sample_times(source, sampling)
        decoded = read(source, policy_from_config(sampling), size=32)
        assert planned.indices.tolist() == decoded.indices.tolist(), source
        assert planned.timestamps == pytest.approx(decoded.timestamps), source


def test_plan_video_on_an_image_and_a_folder(tmp_path: Path) -> None:
    folder = _folder_of_frames(tmp_path, 6)
    b = plan_video(folder, SlowFastConfig(slow_frames=2), SamplingConfig(num_frames=3))
    assert b.num_frames == 3 and b.video_info["kind"] == "folder"
    assert b.total_tokens == 2 * 288 + 3 * 16
    image = plan_video(folder / "f000.png", MLP2xGeluConfig(), SamplingConfig(num_frames=8))
    assert image.num_frames == 1 and image.total_tokens == 576


def test_cli_grid_gets_the_sampled_frames_and_marks(bikes_mp4: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import vidlm.video.grid

    seen = {}

    def spy(frames, path, *, marks=None, **kwargs):
        seen.update(frames=frames, path=path, marks=marks)
        return path

    monkeypatch.setattr(vidlm.video.grid, "save_frame_grid", spy)
    out = tmp_path / "grid.png"
    assert main(["tokens", str(bikes_mp4), "--connector", "slowfast_llava_2024", "--num-frames",
                 "20", "--grid", str(out)]) == 0
    frames, marks = seen["frames"], seen["marks"]
    assert len(frames) == 20 and seen["path"] == out
    # segment middles 0.25 + 0.5 i s; at 25 fps the frames on screen then start at 0.04 k
    assert frames.timestamps == pytest.approx([0.04 * int(6.25 + 12.5 * i) for i in range(20)])
    assert sorted(i for i, m in marks.items() if m == "slow") == [0, 2, 4, 6, 8, 10, 12, 14,
                                                                  16, 18]
    assert sorted(i for i, m in marks.items() if m == "fast") == list(range(1, 20, 2))


def test_cli_writes_a_real_png_grid(small_mp4: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    out = tmp_path / "sub" / "grid.png"
    assert main(["tokens", str(small_mp4), "--num-frames", "6", "--set", "connector.slow_frames=2",
                 "--grid", str(out)]) == 0
    assert f"frame grid written to {out}" in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 3 * 100 and img.height > 2 * 60
