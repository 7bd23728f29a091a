"""Typed configs: JSON round trip, overrides, and clear errors for bad fields."""

from __future__ import annotations

import pytest

from vidlm.config import apply_overrides, from_dict, parse_override
from vidlm.errors import ConfigError
from vidlm.model.config import VideoLMConfig, VisionTowerConfig


def test_round_trip_through_json(tmp_path) -> None:
    cfg = VideoLMConfig().with_overrides([
        "connector.name=slowfast", "connector.slow_frames=4",
        "sampling.num_frames=12", "vision_tower.feature_layer=-1"])
    cfg.save(tmp_path)
    back = VideoLMConfig.load(tmp_path)
    assert back == cfg
    assert back.connector.name == "slowfast" and back.connector.slow_frames == 4
    assert back.sampling.num_frames == 12 and back.vision_tower.feature_layer == -1


def test_default_connector_is_llava_projector() -> None:
    assert VideoLMConfig().connector.name == "mlp2x_gelu"


def test_unknown_field_names_the_field() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        VideoLMConfig().with_overrides(["sampling.bogus=3"])


def test_wrong_length_tuple_is_an_error() -> None:
    with pytest.raises(ConfigError, match="expected 3 values, got 2"):
        from_dict(VisionTowerConfig, {"mean": [0.5, 0.5]})


def test_unreadable_config_names_the_file(tmp_path) -> None:
    (tmp_path / "vidlm_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"vidlm_config\.json"):
        VideoLMConfig.load(tmp_path)


def test_override_parsing() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x"]) == {"a": {"b": 1, "c": "x"}}
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        parse_override("novalue")
