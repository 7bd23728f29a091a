"""VisionTower: feature layer/kind, CLS handling, freezing, chunking, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPModel, CLIPVisionModel, SiglipVisionModel

from vidlm.errors import ConfigError
from vidlm.model.config import VisionTowerConfig
from vidlm.model.vision_tower import VisionTower, vision_part
from vidlm.testing import random_frames, tiny_vision_config


def _tower(kind: str = "clip", **fields) -> VisionTower:
    torch.manual_seed(0)
    cfg = tiny_vision_config(kind)
    encoder = (CLIPVisionModel if kind == "clip" else SiglipVisionModel)(cfg)
    return VisionTower(VisionTowerConfig(name_or_path="tiny", image_size=32, **fields),
                       encoder=encoder)


def test_clip_patch_features_come_from_the_chosen_layer() -> None:
    tower = _tower(feature_layer=-2)
    assert tower.grid == (4, 4) and tower.has_cls and tower.hidden_size == 32
    pixels = tower.preprocess(random_frames(3).frames)
    feats = tower(pixels)
    assert feats.shape == (3, 16, 32)
    with torch.no_grad():
        hidden = tower.encoder(pixel_values=pixels, output_hidden_states=True).hidden_states
    torch.testing.assert_close(feats, hidden[-2][:, 1:], rtol=0, atol=0)
    last = _tower(feature_layer=-1)(pixels)
    assert not torch.allclose(last, feats)


def test_cls_patch_keeps_the_cls_token() -> None:
    tower = _tower(feature_kind="cls_patch")
    feats = tower(tower.preprocess(random_frames(2).frames))
    assert feats.shape == (2, 17, 32) and tower.num_patches == 17 and tower.outputs_cls


def test_siglip_has_no_cls() -> None:
    tower = _tower("siglip", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert not tower.has_cls
    assert tower(tower.preprocess(random_frames(2).frames)).shape == (2, 16, 32)
    with pytest.raises(ConfigError, match="no CLS token"):
        _tower("siglip", feature_kind="cls_patch")


def test_composite_clip_takes_the_vision_model() -> None:
    cfg = CLIPConfig(vision_config=tiny_vision_config().to_dict(),
                     text_config={"hidden_size": 16, "intermediate_size": 32,
                                  "num_hidden_layers": 1, "num_attention_heads": 2})
    model = CLIPModel(cfg)
    assert vision_part(model) is model.vision_model
    tower = VisionTower(VisionTowerConfig(image_size=32), encoder=vision_part(model))
    assert tower(tower.preprocess(random_frames(1).frames)).shape == (1, 16, 32)


def test_frozen_by_default_and_stays_in_eval() -> None:
    tower = _tower()
    assert all(not p.requires_grad for p in tower.parameters())
    tower.train()
    assert not tower.encoder.training
    pixels = tower.preprocess(random_frames(2).frames)
    assert not tower(pixels).requires_grad


def test_unfrozen_tower_trains() -> None:
    tower = _tower(frozen=False)
    tower.train()
    assert tower.encoder.training
    out = tower(tower.preprocess(random_frames(2).frames))
    assert out.requires_grad


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_chunking_does_not_change_features(chunk: int) -> None:
    pixels = _tower().preprocess(random_frames(7).frames)
    whole = _tower(chunk_size=16)(pixels)
    torch.testing.assert_close(_tower(chunk_size=chunk)(pixels), whole, rtol=0, atol=1e-6)


def test_chunks_bound_encoder_batch() -> None:
    tower = _tower(chunk_size=2)
    sizes: list[int] = []
    tower.encoder.register_forward_pre_hook(
        lambda _m, _a, kw: sizes.append(kw["pixel_values"].shape[0]), with_kwargs=True)
    tower(tower.preprocess(random_frames(5).frames))
    assert sizes == [2, 2, 1]


def test_preprocess_pads_to_square_with_the_mean_colour() -> None:
    tower = _tower(resize="pad")
    frames = np.full((1, 16, 32, 3), 255, np.uint8)  # wide white frame
    px = tower.preprocess(frames)
    assert px.shape == (1, 3, 32, 32)
    # padding (top/bottom quarter) is the mean colour -> 0 after normalisation
    assert px[0, :, :4].abs().max() < 1e-5 and px[0, :, -4:].abs().max() < 1e-5
    white = (1 - torch.tensor(tower.config.mean)) / torch.tensor(tower.config.std)
    torch.testing.assert_close(px[0, :, 16, 16], white, rtol=0, atol=1e-4)


def test_preprocess_crop_and_stretch() -> None:
    frames = np.zeros((2, 20, 60, 3), np.uint8)
    frames[:, :, 20:40] = 255  # a white centre third
    crop = _tower(resize="crop").preprocess(frames)
    stretch = _tower(resize="stretch").preprocess(frames)
    assert crop.shape == stretch.shape == (2, 3, 32, 32)
    assert crop[0, 0].min() > 0  # the crop keeps only the white centre
    assert stretch[0, 0, :, 0].max() < 0  # stretching keeps the black sides


def test_image_size_must_match_encoder() -> None:
    with pytest.raises(ConfigError, match="built for 32 px"):
        VisionTower(VisionTowerConfig(image_size=64), encoder=CLIPVisionModel(tiny_vision_config()))
