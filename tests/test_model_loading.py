"""Loading parts from folders: vision encoders, causal LMs, and whole models from parts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, CLIPVisionModel, SiglipVisionModel

from vidlm.errors import ModelNotFoundError
from vidlm.model.config import LanguageModelConfig, VisionTowerConfig
from vidlm.model.language_model import load_language_model, resolve_source
from vidlm.model.loading import build_videolm
from vidlm.model.vision_tower import VisionTower
from vidlm.testing import random_frames, tiny_videolm, tiny_videolm_config, tiny_vision_config


@pytest.mark.parametrize("kind", ["clip_vision", "siglip_vision", "clip_pair"])
def test_vision_tower_from_a_saved_folder(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    if kind == "clip_vision":
        model = CLIPVisionModel(tiny_vision_config())
    elif kind == "siglip_vision":
        model = SiglipVisionModel(tiny_vision_config("siglip"))
    else:
        model = CLIPModel(CLIPConfig(vision_config=tiny_vision_config().to_dict(),
                                     text_config={"hidden_size": 16, "intermediate_size": 32,
                                                  "num_hidden_layers": 1,
                                                  "num_attention_heads": 2}))
    model.save_pretrained(tmp_path)
    tower = VisionTower.from_pretrained(VisionTowerConfig(name_or_path=str(tmp_path),
                                                          image_size=32))
    pixels = tower.preprocess(random_frames(2).frames)
    feats = tower(pixels)
    reference = model.vision_model if kind == "clip_pair" else model
    with torch.no_grad():
        hidden = reference(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    expected = hidden if kind == "siglip_vision" else hidden[:, 1:]
    torch.testing.assert_close(feats, expected, rtol=0, atol=1e-6)
    assert all(not p.requires_grad for p in tower.parameters())


def test_language_model_from_a_saved_folder(tmp_path: Path) -> None:
    m = tiny_videolm()
    m.language_model.save_pretrained(tmp_path)
    m.tokenizer.save_pretrained(tmp_path)
    lm, tok = load_language_model(LanguageModelConfig(name_or_path=str(tmp_path)))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, m.language_model(ids).logits)
    assert tok.chat_template == m.tokenizer.chat_template
    assert not lm.training


def test_build_videolm_from_part_folders(tmp_path: Path) -> None:
    m = tiny_videolm()
    m.language_model.save_pretrained(tmp_path / "lm")
    m.tokenizer.save_pretrained(tmp_path / "lm")
    m.vision_tower.encoder.save_pretrained(tmp_path / "vit")
    config = tiny_videolm_config("slowfast", vision_name=str(tmp_path / "vit"),
                                 lm_name=str(tmp_path / "lm"), slow_frames=2)
    built = build_videolm(config)
    assert built.config.connector.name == "slowfast"
    torch.testing.assert_close(built.encode_frames(built.preprocess(random_frames(2).frames)),
                               m.encode_frames(m.preprocess(random_frames(2).frames)))
    assert isinstance(built.ask(random_frames(4), "Hi?", max_new_tokens=3), str)


def test_missing_parts_are_model_not_found(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download org/lm"):
        load_language_model(LanguageModelConfig(name_or_path="org/lm"))
    with pytest.raises(ModelNotFoundError, match="vision tower 'org/vit'"):
        VisionTower.from_pretrained(VisionTowerConfig(name_or_path="org/vit"))
    with pytest.raises(ModelNotFoundError, match="no loadable causal language model"):
        load_language_model(LanguageModelConfig(name_or_path=str(tmp_path)))
    with pytest.raises(ModelNotFoundError, match="package 'no_such_pkg_xyz'"):
        resolve_source("package:no_such_pkg_xyz")
    with pytest.raises(ModelNotFoundError, match="GGUF file not found"):
        load_language_model(LanguageModelConfig(name_or_path=str(tmp_path), gguf_file="x.gguf"))
