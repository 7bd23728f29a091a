"""``vidlm.data.synth``: determinism, balance, disjoint splits, LLaVA format and the CLI."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from vidlm.data import synth
from vidlm.data.synth import SynthConfig, generate_dataset, scene_fingerprint, split_plan
from vidlm.data.synth_questions import QUESTION_KINDS, kinds_of
from vidlm.errors import DataError

SMALL = SynthConfig(num_train=8, num_val=4, num_test=4, seed=11)


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_small")
    generate_dataset(out, SMALL, progress=False)
    return out


def _records(folder: Path, split: str) -> list[dict]:
    return json.loads((folder / f"{split}.json").read_text())


def test_same_seed_gives_identical_json_and_frames(small: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path, SMALL, progress=False)
    for name in ("train.json", "val.json", "test.json", "synth_info.json"):
        assert (small / name).read_bytes() == (tmp_path / name).read_bytes(), name
    for rec in _records(small, "train") + _records(small, "test"):
        a, b = _decode(small / rec["video"]), _decode(tmp_path / rec["video"])
        assert a.shape == (SMALL.num_frames, SMALL.size, SMALL.size, 3)
        np.testing.assert_array_equal(a, b)
        assert (small / rec["video"]).read_bytes() == (tmp_path / rec["video"]).read_bytes()


def test_other_seed_gives_other_data(small: Path, tmp_path: Path) -> None:
    generate_dataset(
        tmp_path, SynthConfig(num_train=8, num_val=4, num_test=4, seed=12), progress=False
    )
    assert (small / "train.json").read_bytes() != (tmp_path / "train.json").read_bytes()


def test_records_are_llava_with_ground_truth(small: Path) -> None:
    for split in ("train", "val", "test"):
        records = _records(small, split)
        assert len(records) == SMALL.count(split)
        for rec in records:
            human, gpt = rec["conversations"]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert human["value"].startswith("<video>\n" + rec["question"])
            assert gpt["value"] == rec["answer"] and rec["answer"] in rec["choices"]
            assert rec["family"] == QUESTION_KINDS[rec["kind"]].family
            assert rec["chance"] == pytest.approx(1 / len(rec["choices"]))
            assert not Path(rec["video"]).is_absolute() and (small / rec["video"]).is_file()
            scene = rec["scene"]
            assert (scene["size"], scene["fps"], scene["num_frames"]) == (64, 8, 32)
            for obj in scene["objects"]:
                assert len(obj["centers"]) == scene["num_frames"]


def test_every_kind_appears_in_a_small_split(small: Path) -> None:
    assert {r["kind"] for r in _records(small, "train")} == set(QUESTION_KINDS)


def test_splits_are_disjoint(small: Path) -> None:
    seen_ids, seen_videos, seen_scenes = set(), set(), set()
    for split in ("train", "val", "test"):
        records = _records(small, split)
        ids = {r["id"] for r in records}
        videos = {r["video"] for r in records}
        scenes = {scene_fingerprint(r["scene"]) for r in records}
        assert len(ids) == len(videos) == len(scenes) == len(records)
        assert not ids & seen_ids and not videos & seen_videos and not scenes & seen_scenes
        seen_ids |= ids
        seen_videos |= videos
        seen_scenes |= scenes


def test_plan_balances_families_kinds_and_answers() -> None:
    n = 2 * 3 * 4 * 12  # divisible by every family, kind and answer count
    plan = split_plan(n, np.random.default_rng(0))
    kinds = Counter(kind for kind, _ in plan)
    for family in ("spatial", "temporal"):
        fam = kinds_of(family)
        assert sum(kinds[k.name] for k in fam) == n // 2
        for k in fam:
            assert kinds[k.name] == n // 2 // len(fam)
            answers = Counter(a for kind, a in plan if kind == k.name)
            assert set(answers) == set(k.answers)
            assert len(set(answers.values())) == 1, (k.name, answers)
    assert plan != split_plan(n, np.random.default_rng(1))  # shuffled by the seed


def test_chance_levels_are_stated(small: Path) -> None:
    info = json.loads((small / "synth_info.json").read_text())
    chance = info["chance"]
    assert chance["kind"]["direction"] == 0.25 and chance["kind"]["after"] == 0.5
    assert chance["family"]["spatial"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 3) / 3)
    assert chance["family"]["temporal"] == pytest.approx((1 / 4 + 1 / 2 + 1 / 3 + 1 / 3) / 4)
    assert info["counts"] == {"train": 8, "val": 4, "test": 4}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    synth.register(parser)
    return parser.parse_args(argv)


def test_cli_run_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(
        [
            "--out",
            str(tmp_path),
            "--num-train",
            "3",
            "--num-val",
            "1",
            "--num-test",
            "2",
            "--seed",
            "5",
            "--size",
            "48",
            "--fps",
            "6",
            "--seconds",
            "2",
            "--pix-fmt",
            "yuv420p",
            "--no-progress",
        ]
    )
    assert synth.run(args) == 0
    assert "wrote 3 train, 1 val and 2 test clips" in capsys.readouterr().out
    rec = _records(tmp_path, "test")[0]
    frames = _decode(tmp_path / rec["video"])
    assert frames.shape == (12, 48, 48, 3)
    with av.open(str(tmp_path / rec["video"])) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 63},
        {"size": 16},
        {"fps": 0},
        {"seconds": 0.5},
        {"num_train": -1},
        {"pix_fmt": "rgb24"},
    ],
)
def test_bad_settings_raise_data_error(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(DataError, match="invalid synth settings"):
        generate_dataset(tmp_path, SynthConfig(**bad), progress=False)


def test_clips_too_short_for_three_bounces_are_refused_up_front(tmp_path: Path) -> None:
    """1 s at 8 fps is 8 frames: too few for the bounce kind, so refuse before rendering."""
    with pytest.raises(DataError, match="at least 12 frames"):
        generate_dataset(tmp_path, SynthConfig(num_train=32, num_val=0, num_test=0,
                                               seconds=1.0), progress=False)
    generate_dataset(tmp_path, SynthConfig(num_train=32, num_val=0, num_test=0, size=32,
                                           seconds=1.5), progress=False)  # 12 frames fit
    assert len(json.loads((tmp_path / "train.json").read_text())) == 32


def test_a_split_does_not_depend_on_the_other_splits_sizes(small: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path, SynthConfig(num_train=0, num_val=0, num_test=SMALL.num_test,
                                           seed=SMALL.seed), progress=False)
    assert (tmp_path / "test.json").read_bytes() == (small / "test.json").read_bytes()
