"""Checkpoints and vidlm.load: save/load round trip, shards, LM by reference, connector switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import vidlm
from vidlm.errors import ConfigError, ModelNotFoundError
from vidlm.model.checkpoint import INDEX_NAME, WEIGHTS_NAME, CheckpointError, read_weights
from vidlm.model.videolm import VideoLM
from vidlm.testing import random_frames, tiny_videolm


def _logits(model: VideoLM, frames) -> torch.Tensor:
    prompt = model.prepare([{"role": "user", "content": "<video>\nWhat happens?"}], [frames])
    with torch.no_grad():
        return model(prompt.input_ids, visual_tokens=prompt.visual_tokens).logits


@pytest.fixture(scope="module")
def model() -> VideoLM:
    return tiny_videolm("slowfast", slow_frames=2, fast_grid=2, separator=True, seed=2)


def test_round_trip_gives_identical_logits(model: VideoLM, tmp_path: Path) -> None:
    frames = random_frames(4, seed=1)
    model.save_pretrained(tmp_path)
    assert (tmp_path / WEIGHTS_NAME).is_file() and (tmp_path / "vidlm_config.json").is_file()
    assert (tmp_path / "language_model" / "config.json").is_file()
    assert (tmp_path / "vision_tower" / "config.json").is_file()
    assert (tmp_path / "tokenizer.json").is_file()
    loaded = VideoLM.from_pretrained(tmp_path)
    assert loaded.config.to_dict() == model.config.to_dict()
    assert loaded.placeholder_id == model.placeholder_id
    torch.testing.assert_close(_logits(loaded, frames), _logits(model, frames), rtol=0, atol=0)
    assert loaded.ask(frames, "Hi?", max_new_tokens=5) == model.ask(frames, "Hi?",
                                                                    max_new_tokens=5)
    via_load = vidlm.load(str(tmp_path))
    torch.testing.assert_close(_logits(via_load, frames), _logits(model, frames), rtol=0, atol=0)


def test_sharded_round_trip(model: VideoLM, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path, max_shard_bytes=60_000)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (tmp_path / WEIGHTS_NAME).exists()
    loaded = VideoLM.from_pretrained(tmp_path)
    frames = random_frames(3, seed=2)
    torch.testing.assert_close(_logits(loaded, frames), _logits(model, frames), rtol=0, atol=0)


def test_tied_embeddings_are_stored_once(tmp_path: Path) -> None:
    m = tiny_videolm()
    lm = m.language_model
    lm.config.tie_word_embeddings = True
    lm.lm_head.weight = lm.model.embed_tokens.weight
    m.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / WEIGHTS_NAME), framework="pt") as f:
        keys = set(f.keys())
    assert "language_model.model.embed_tokens.weight" in keys
    assert "language_model.lm_head.weight" not in keys
    state = read_weights(tmp_path)
    assert torch.equal(state["language_model.lm_head.weight"],
                       lm.model.embed_tokens.weight.detach())
    loaded = VideoLM.from_pretrained(tmp_path)
    frames = random_frames(2)
    torch.testing.assert_close(_logits(loaded, frames), _logits(m, frames), rtol=0, atol=0)


def test_save_without_language_model_references_it(model: VideoLM, tmp_path: Path) -> None:
    lm_dir = tmp_path / "lm"
    model.language_model.save_pretrained(lm_dir)
    model.tokenizer.save_pretrained(lm_dir)
    model.config.language_model.name_or_path = str(lm_dir)
    try:
        ckpt = model.save_pretrained(tmp_path / "ckpt", include_language_model=False)
    finally:
        model.config.language_model.name_or_path = "tiny-llama"
    with safe_open(str(ckpt / WEIGHTS_NAME), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("language_model.") for k in keys)
    assert not (ckpt / "language_model").exists()
    loaded = VideoLM.from_pretrained(ckpt)
    frames = random_frames(4, seed=3)
    torch.testing.assert_close(_logits(loaded, frames), _logits(model, frames), rtol=0, atol=0)


def test_a_shipped_lora_adapter_is_merged_into_the_referenced_lm(tmp_path: Path) -> None:
    from vidlm.train.config import LoraSection
    from vidlm.train.lora import add_lora, save_adapter

    model = tiny_videolm("mlp2x_gelu", seed=7)
    lm_dir = tmp_path / "lm"
    model.language_model.save_pretrained(lm_dir)
    model.tokenizer.save_pretrained(lm_dir)
    model.config.language_model.name_or_path = str(lm_dir)
    add_lora(model, LoraSection(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for name, p in model.language_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # peft starts B at zero: make the adapter matter
    ckpt = tmp_path / "ckpt"
    save_adapter(model, ckpt / "lm_adapter")
    frames = random_frames(2, seed=1)
    expected = _logits(model, frames)
    model.language_model = model.language_model.unload()  # the plain LM, adapters removed
    model.config.language_model.adapter = "lm_adapter"
    model.save_pretrained(ckpt, include_language_model=False)
    loaded = VideoLM.from_pretrained(ckpt)
    torch.testing.assert_close(_logits(loaded, frames), expected, rtol=1e-5, atol=1e-5)
    model.config.language_model.adapter = None
    plain = tmp_path / "plain"
    model.save_pretrained(plain, include_language_model=False)
    assert not torch.allclose(_logits(VideoLM.from_pretrained(plain), frames), expected)
    config = json.loads((ckpt / "vidlm_config.json").read_text())
    config["language_model"]["adapter"] = "../plain"
    (ckpt / "vidlm_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="inside the checkpoint"):
        VideoLM.from_pretrained(ckpt)


def test_save_without_lm_needs_a_resolvable_reference(model: VideoLM, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="cannot save without the language model"):
        model.save_pretrained(tmp_path, include_language_model=False)


def test_load_switches_connector_training_free(tmp_path: Path) -> None:
    image_model = tiny_videolm("mlp2x_gelu", seed=4)
    image_model.save_pretrained(tmp_path)
    video_model = vidlm.load(str(tmp_path), connector={"name": "slowfast", "slow_frames": 2,
                                                        "fast_grid": [2, 2]})
    assert video_model.config.connector.name == "slowfast"
    for name in ("linear_1", "linear_2"):
        assert torch.equal(getattr(video_model.connector.projector, name).weight,
                           getattr(image_model.connector, name).weight)
    frames = random_frames(12, seed=5)
    tokens = video_model.encode_video(frames).tokens
    assert tokens.shape[0] == video_model.num_visual_tokens(12) == 2 * 8 + 12 * 4
    # fast pathway, pooled after projection: 2x2 means of the image model's projected tokens
    feats = image_model.encode_frames(image_model.preprocess(frames.frames))  # (T, 16, D)
    projected = image_model.connector.project(feats)  # (T, 16, D_lm)
    maps = projected.reshape(12, 4, 4, -1).permute(0, 3, 1, 2)  # (T, D_lm, 4, 4)
    expected = torch.nn.functional.avg_pool2d(maps, 2).flatten(2).transpose(1, 2)  # (T, 4, D)
    fast = tokens[-12 * 4:].reshape(12, 4, -1)
    torch.testing.assert_close(fast, expected, rtol=0, atol=1e-5)


def test_load_overrides_and_sampling(tmp_path: Path) -> None:
    tiny_videolm().save_pretrained(tmp_path)
    m = vidlm.load(str(tmp_path), sampling={"mode": "uniform", "num_frames": 3},
                   overrides=["context.on_overflow=drop_frames"])
    assert m.config.sampling.num_frames == 3
    assert m.config.context.on_overflow == "drop_frames"
    with pytest.raises(ConfigError, match="unknown connector"):
        vidlm.load(str(tmp_path), connector="no_such_connector")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    m = tiny_videolm()
    m.save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        VideoLM.from_pretrained(tmp_path)


def test_missing_hub_model_names_the_id_and_the_fix(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as info:
        vidlm.load("some-org/no-such-video-model")
    text = str(info.value)
    assert "some-org/no-such-video-model" in text
    assert "huggingface-cli download some-org/no-such-video-model" in text
    assert "\n" not in text


def test_from_pretrained_takes_load_options(tmp_path: Path) -> None:
    tiny_videolm().save_pretrained(tmp_path)
    m = VideoLM.from_pretrained(tmp_path, connector="slowfast_llava_2024",
                                overrides=["vision_tower.chunk_size=2"])
    assert m.config.connector.name == "slowfast"
    assert m.config.sampling.num_frames == 50  # the preset's published sampling
    assert m.config.vision_tower.chunk_size == 2
    assert m.num_visual_tokens(50) == 10 * 8 + 50 * 16  # 4x4 grid: 16 // 2 slow, 4x4 fast


def test_non_vidlm_folder_goes_to_hf_interop(tmp_path: Path) -> None:
    from vidlm.model.hf_interop import UnsupportedCheckpointError

    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"], '
                                          '"model_type": "bert"}')
    with pytest.raises(UnsupportedCheckpointError):
        vidlm.load(str(tmp_path))


def test_load_in_bfloat16_keeps_fp32_preprocessing(model: VideoLM, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path)
    half = VideoLM.from_pretrained(tmp_path, dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    assert next(half.vision_tower.parameters()).dtype == torch.bfloat16
    assert next(half.connector.parameters()).dtype == torch.bfloat16
    frames = random_frames(2, seed=8)
    torch.testing.assert_close(half.preprocess(frames.frames), model.preprocess(frames.frames),
                               rtol=0, atol=0)
    full = _logits(model, frames)
    approx = _logits(half, frames).float()
    assert (approx - full).abs().max() < 0.1 * full.abs().max()
