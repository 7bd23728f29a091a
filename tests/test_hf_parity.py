"""Parity with ``transformers`` for the public checkpoint formats vidlm loads.

Each test builds a tiny random-weight model with ``transformers`` itself (tiny CLIP or
SigLIP vision tower, tiny Llama or Qwen2 LM, a word-level tokenizer built offline),
``save_pretrained``s it to a temporary folder, loads it with
:func:`vidlm.model.hf_interop.load_hf_checkpoint`, and compares vidlm's logits with
``transformers``' own forward on the same ids and pixels (fp32, atol 1e-5). The weights
are re-drawn with a large spread so that a wrong visual path moves the logits far more
than the tolerance (checked by the sensitivity asserts).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextVideoConfig,
    LlavaNextVideoForConditionalGeneration,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
)

from vidlm.errors import ConfigError, ModelNotFoundError
from vidlm.model.connectors import SlowFastConfig
from vidlm.model.hf_interop import UnsupportedCheckpointError, load_hf_checkpoint

ATOL = 1e-5
WORDS = ["user", "assistant", "system"] + [f"w{i}" for i in range(40)]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant {% endif %}"
)


# ---- tiny checkpoints built with transformers ---------------------------------------------


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with a chat template and the <image>/<video> tokens."""
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _clip(image_size: int, patch: int) -> CLIPVisionConfig:
    return CLIPVisionConfig(image_size=image_size, patch_size=patch, hidden_size=32,
                            intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def _siglip(image_size: int, patch: int) -> SiglipVisionConfig:
    return SiglipVisionConfig(image_size=image_size, patch_size=patch, hidden_size=32,
                              intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              vision_use_head=False)


def _text(kind: str, vocab_size: int) -> Any:
    cls = LlamaConfig if kind == "llama" else Qwen2Config
    return cls(vocab_size=vocab_size, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
               tie_word_embeddings=False)


def _spread_weights(model: torch.nn.Module, seed: int, std: float = 0.1) -> None:
    """Re-draw every weight reproducibly: ``std`` around 0, norm scales around 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * std
            is_scale = p.dim() == 1 and name.endswith("weight")
            p.copy_(noise + 1.0 if is_scale else noise)


def _save(model: torch.nn.Module, tok: PreTrainedTokenizerFast, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def build_llava(folder: Path, *, strategy: str = "default", layer: int = -2, seed: int = 0
                ) -> LlavaForConditionalGeneration:
    """LLaVA-1.5 layout: CLIP 32 px / patch 8 (4x4 grid) + Llama."""
    tok = tiny_tokenizer()
    ids = tok.convert_tokens_to_ids(["<image>"])
    cfg = LlavaConfig(vision_config=_clip(32, 8).to_dict(),
                      text_config=_text("llama", len(tok)).to_dict(), image_token_index=ids[0],
                      vision_feature_select_strategy=strategy, vision_feature_layer=layer)
    model = LlavaForConditionalGeneration(cfg).eval()
    _spread_weights(model, seed)
    _save(model, tok, folder)
    return model


def build_onevision(folder: Path, *, seed: int = 1) -> LlavaOnevisionForConditionalGeneration:
    """LLaVA-OneVision layout: SigLIP 56 px / patch 8 (7x7 grid, pooled to 4x4) + Qwen2."""
    tok = tiny_tokenizer()
    image_id, video_id = tok.convert_tokens_to_ids(["<image>", "<video>"])
    cfg = LlavaOnevisionConfig(vision_config=_siglip(56, 8).to_dict(),
                               text_config=_text("qwen2", len(tok)).to_dict(),
                               image_token_index=image_id, video_token_index=video_id,
                               vision_feature_layer=-1, vision_feature_select_strategy="full",
                               image_grid_pinpoints=[[56, 56], [56, 112], [112, 56]])
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    _spread_weights(model, seed)
    _save(model, tok, folder)
    return model


def build_next_video(folder: Path, *, pool_mode: str = "average", seed: int = 2
                     ) -> LlavaNextVideoForConditionalGeneration:
    """LLaVA-NeXT-Video layout: CLIP 56 px / patch 8 (7x7 grid, pooled to 3x3) + Llama."""
    tok = tiny_tokenizer()
    image_id, video_id = tok.convert_tokens_to_ids(["<image>", "<video>"])
    cfg = LlavaNextVideoConfig(vision_config=_clip(56, 8).to_dict(),
                               text_config=_text("llama", len(tok)).to_dict(),
                               image_token_index=image_id, video_token_index=video_id,
                               spatial_pool_mode=pool_mode, spatial_pool_stride=2,
                               image_grid_pinpoints=[[56, 112], [112, 56]])
    model = LlavaNextVideoForConditionalGeneration(cfg).eval()
    _spread_weights(model, seed)
    _save(model, tok, folder)
    return model


def _prompt(placeholder_id: int, counts: list[int]) -> torch.Tensor:
    """``(1, S)`` ids: a few words, then each visual block of ``counts[i]`` placeholders."""
    ids = [2, 7, 8]
    for i, n in enumerate(counts):
        ids += [placeholder_id] * n + [9 + i, 10]
    return torch.tensor([[*ids, 11, 12, 13]])


def _pixels(t: int, size: int, seed: int) -> torch.Tensor:
    return torch.randn(t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_sensitive(hf_logits_a: torch.Tensor, hf_logits_b: torch.Tensor) -> None:
    """Other pixels move the logits far beyond the tolerance: the check can fail."""
    assert (hf_logits_a - hf_logits_b).abs().max() > 1000 * ATOL


# ---- parity, per format -------------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "layer"), [("default", -2), ("full", -1)])
def test_llava_image_parity(tmp_path: Path, strategy: str, layer: int) -> None:
    hf = build_llava(tmp_path, strategy=strategy, layer=layer)
    model = load_hf_checkpoint(tmp_path)
    per_image = 16 + (strategy == "full")  # 4x4 patches, plus CLS with "full"
    assert model.placeholder_id == hf.config.image_token_index
    assert model.num_visual_tokens(1) == per_image
    ids = _prompt(hf.config.image_token_index, [per_image])
    pix = _pixels(1, 32, seed=3)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=pix).logits
        got = model(ids, pixel_values=[pix]).logits
        other = hf(input_ids=ids, pixel_values=_pixels(1, 32, seed=4)).logits
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    _assert_sensitive(want, other)


def test_llava_two_images_in_one_prompt_and_a_batch(tmp_path: Path) -> None:
    hf = build_llava(tmp_path)
    model = load_hf_checkpoint(tmp_path)
    ids = _prompt(hf.config.image_token_index, [16, 16])
    batch = torch.cat([ids, ids.flip(1)])  # two rows, two images each, in different places
    pix = [_pixels(1, 32, seed=s) for s in range(4)]
    with torch.no_grad():
        want = hf(input_ids=batch, pixel_values=torch.cat(pix)).logits
        got = model(batch, pixel_values=pix).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("frames", [4, 1])  # 1 frame: how vidlm feeds an image to OneVision
def test_onevision_video_parity(tmp_path: Path, frames: int) -> None:
    hf = build_onevision(tmp_path)
    model = load_hf_checkpoint(tmp_path)
    per_video = frames * 4 * 4 + 1  # 7x7 -> ceil(7/2)^2 bilinear, then image_newline
    assert model.placeholder_id == hf.config.video_token_index
    assert model.num_visual_tokens(frames) == per_video
    ids = _prompt(hf.config.video_token_index, [per_video])
    pix = _pixels(frames, 56, seed=5)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, pixel_values=[pix]).logits
        other = hf(input_ids=ids, pixel_values_videos=_pixels(frames, 56, seed=6)[None]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    _assert_sensitive(want, other)


def test_onevision_two_videos(tmp_path: Path) -> None:
    hf = build_onevision(tmp_path)
    model = load_hf_checkpoint(tmp_path)
    per_video = 3 * 16 + 1
    ids = _prompt(hf.config.video_token_index, [per_video, per_video])
    videos = [_pixels(3, 56, seed=7), _pixels(3, 56, seed=8)]
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=torch.stack(videos)).logits
        got = model(ids, pixel_values=videos).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("pool_mode", ["average", "max", "conv"])
def test_next_video_parity(tmp_path: Path, pool_mode: str) -> None:
    hf = build_next_video(tmp_path, pool_mode=pool_mode)
    model = load_hf_checkpoint(tmp_path)
    frames, per_frame = 4, 3 * 3  # 7x7 -> floor(7/2)^2, pooled before the projector
    assert model.placeholder_id == hf.config.video_token_index
    assert model.num_visual_tokens(frames) == frames * per_frame
    ids = _prompt(hf.config.video_token_index, [frames * per_frame])
    pix = _pixels(frames, 56, seed=9)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, pixel_values=[pix]).logits
        other = hf(input_ids=ids, pixel_values_videos=_pixels(frames, 56, seed=10)[None]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    _assert_sensitive(want, other)


def test_current_transformers_key_layout_loads_too(tmp_path: Path) -> None:
    """Keys as the in-memory module names them (``model.language_model.*``, ``lm_head``)."""
    src = tmp_path / "saved"
    hf = build_next_video(src)
    folder = tmp_path / "renamed"
    shutil.copytree(src, folder)
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    assert any(k.startswith("model.language_model.") for k in state)
    (folder / "model.safetensors").unlink()
    save_file(state, str(folder / "model.safetensors"))
    model = load_hf_checkpoint(folder)
    ids = _prompt(hf.config.video_token_index, [2 * 9])
    pix = _pixels(2, 56, seed=11)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_prompt_built_by_vidlm_matches_transformers(tmp_path: Path) -> None:
    """Chat template + ``<video>`` marker in vidlm give ids that transformers accepts as is."""
    hf = build_onevision(tmp_path)
    model = load_hf_checkpoint(tmp_path)
    pix = _pixels(2, 56, seed=12)
    with torch.no_grad():
        tokens = model.visual_tokens_from_pixels(pix)
    from vidlm.model.videolm import VisualTokens

    visual = VisualTokens(tokens=tokens, num_frames=2)
    inputs = model.build_inputs([{"role": "user", "content": "<video> w3 w4"}], [visual])
    ids = inputs["input_ids"]
    assert int((ids == hf.config.video_token_index).sum()) == 2 * 16 + 1
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, visual_tokens=inputs["visual_tokens"]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


# ---- SlowFast on top of each checkpoint (training-free) -----------------------------------

SLOWFAST = {"name": "slowfast", "slow_frames": 2, "slow_pool": "max1d", "slow_kernel": 2,
            "fast_grid": [2, 2]}


def _hf_projected(hf: Any, pix: torch.Tensor) -> torch.Tensor:
    """``transformers``' own per-frame projected tokens ``(T, h*w, D_lm)`` (CLS dropped)."""
    cfg = hf.config
    hidden = hf.model.vision_tower(pix, output_hidden_states=True).hidden_states
    feats = hidden[cfg.vision_feature_layer]
    if feats.shape[1] == math.isqrt(feats.shape[1] - 1) ** 2 + 1:  # CLS first
        feats = feats[:, 1:]
    return hf.model.multi_modal_projector(feats)


def _reference_slowfast(projected: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """SlowFast by hand: slow frames 0 and T/2, 1-D max-pool 2; all frames avg-pooled to 2x2."""
    t, _, c = projected.shape
    slow = projected[[0, t // 2]]  # linspace(0, T, 3)[:-1]
    slow = F.max_pool1d(slow.transpose(1, 2), 2).transpose(1, 2).reshape(-1, c)
    maps = projected.reshape(t, grid[0], grid[1], c).permute(0, 3, 1, 2)
    fast = F.adaptive_avg_pool2d(maps, (2, 2)).flatten(2).transpose(1, 2).reshape(-1, c)
    return torch.cat([slow, fast])


@pytest.mark.parametrize(("build", "size", "grid"), [
    (build_llava, 32, (4, 4)), (build_onevision, 56, (7, 7)), (build_next_video, 56, (7, 7))])
def test_slowfast_on_checkpoint(tmp_path: Path, build: Any, size: int,
                                grid: tuple[int, int]) -> None:
    hf = build(tmp_path)
    model = load_hf_checkpoint(tmp_path, connector=SLOWFAST)
    frames = 4
    expected = 2 * (grid[0] * grid[1] // 2) + frames * 4  # slow 2 x h*w/2, fast 4 x 2x2
    assert isinstance(model.config.connector, SlowFastConfig)
    assert model.config.connector.num_tokens(frames, grid) == expected
    assert model.num_visual_tokens(frames) == expected
    pix = _pixels(frames, size, seed=13)
    with torch.no_grad():
        first = model.visual_tokens_from_pixels(pix)
        again = model.visual_tokens_from_pixels(pix)
        reference = _reference_slowfast(_hf_projected(hf, pix), grid)
    assert first.shape == (expected, hf.config.text_config.hidden_size)
    assert torch.equal(first, again)  # deterministic
    torch.testing.assert_close(first, reference, atol=ATOL, rtol=0)  # the checkpoint's projector
    placeholder = model.placeholder_id
    ids = _prompt(placeholder, [expected])
    with torch.no_grad():
        logits = model(ids, pixel_values=[pix]).logits
    assert logits.shape == (1, ids.shape[1], hf.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_slowfast_by_preset_name_counts(tmp_path: Path) -> None:
    build_next_video(tmp_path)
    model = load_hf_checkpoint(tmp_path, connector="slowfast_llava_2024")
    # preset: 10 slow frames at h*w//2 tokens, every frame at 4x4 (adaptive pool of 7x7)
    assert model.num_visual_tokens(50) == 10 * (49 // 2) + 50 * 16
    assert model.config.sampling.num_frames == 50
    with torch.no_grad():
        tokens = model.visual_tokens_from_pixels(_pixels(12, 56, seed=14))
    assert tokens.shape[0] == model.num_visual_tokens(12) == 10 * 24 + 12 * 16


# ---- what is loaded, and errors -----------------------------------------------------------


def test_loader_reads_architecture_not_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "llava-onevision-qwen2-7b-ov-hf"  # misleading name: it is LLaVA-1.5
    build_llava(folder)
    model = load_hf_checkpoint(folder)
    assert model.config.connector.name == "mlp2x_gelu"
    assert model.config.placeholder_token == "<image>"


def test_mapped_configs(tmp_path: Path) -> None:
    build_onevision(tmp_path)
    model = load_hf_checkpoint(tmp_path, sampling={"mode": "uniform", "num_frames": 8})
    vt = model.config.vision_tower
    assert (vt.feature_layer, vt.feature_kind, vt.image_size) == (-1, "patch", 56)
    assert model.vision_tower.grid == (7, 7)
    assert model.config.connector.name == "onevision"
    assert model.config.sampling.num_frames == 8
    assert type(model.vision_tower.encoder).__name__ == "SiglipVisionModel"
    assert type(model.language_model).__name__ == "Qwen2ForCausalLM"


def test_processor_configs_set_normalisation_and_squaring(tmp_path: Path) -> None:
    from transformers import LlavaImageProcessor, LlavaOnevisionImageProcessor

    build_llava(tmp_path / "llava")
    LlavaImageProcessor(do_pad=True, image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6]
                        ).save_pretrained(tmp_path / "llava")
    vt = load_hf_checkpoint(tmp_path / "llava").config.vision_tower
    assert (vt.resize, vt.mean, vt.std) == ("pad", (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))

    build_onevision(tmp_path / "ov")  # do_pad here pads the batch of tiles, not the image
    LlavaOnevisionImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3
                                 ).save_pretrained(tmp_path / "ov")
    vt = load_hf_checkpoint(tmp_path / "ov").config.vision_tower
    assert (vt.resize, vt.mean, vt.std) == ("stretch", (0.5,) * 3, (0.5,) * 3)


def test_unsupported_architecture_is_a_clear_error(tmp_path: Path) -> None:
    build_llava(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["architectures"] = ["LlavaNextForConditionalGeneration"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedCheckpointError, match="LlavaNextForConditionalGeneration"):
        load_hf_checkpoint(tmp_path)


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    build_llava(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(UnsupportedCheckpointError, match="safetensors only"):
        load_hf_checkpoint(tmp_path)


def test_unknown_weights_are_refused(tmp_path: Path) -> None:
    hf = build_llava(tmp_path)
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    state["extra_head.weight"] = torch.zeros(2, 2)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UnsupportedCheckpointError, match=r"extra_head\.weight"):
        load_hf_checkpoint(tmp_path)


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    hf = build_llava(tmp_path)
    state = {k: v.contiguous() for k, v in hf.state_dict().items()
             if not k.endswith("model.language_model.norm.weight")}
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UnsupportedCheckpointError, match=r"norm\.weight"):
        load_hf_checkpoint(tmp_path)


@pytest.mark.parametrize("key", ["model.language_model.embed_tokens.weight",
                                 "model.multi_modal_projector.linear_1.weight"])
def test_wrong_shaped_weights_are_refused(tmp_path: Path, key: str) -> None:
    hf = build_llava(tmp_path)
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    state[key] = torch.zeros(3, 5)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UnsupportedCheckpointError, match="do not fit"):
        load_hf_checkpoint(tmp_path)


def test_connector_without_projector_option_mismatch(tmp_path: Path) -> None:
    build_llava(tmp_path)
    with pytest.raises(ConfigError, match="projector"):
        load_hf_checkpoint(tmp_path, connector={"name": "slowfast", "projector_bias": False})


def test_uncached_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the cache: one sentence naming the id and how to get it; nothing downloaded."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = "vidlm-tests/not-a-cached-model"
    with pytest.raises(ModelNotFoundError) as err:
        load_hf_checkpoint(repo)
    message = str(err.value)
    assert repo in message and "huggingface-cli download" in message
    assert "\n" not in message


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="neither a local folder nor a hub id"):
        load_hf_checkpoint(str(tmp_path / "no" / "such" / "folder"))


# ---- through vidlm.load, overrides, and a vidlm checkpoint round trip ---------------------


def test_vidlm_load_delegates_with_overrides(tmp_path: Path) -> None:
    import vidlm

    hf = build_onevision(tmp_path)
    model = vidlm.load(str(tmp_path), overrides=["vision_tower.chunk_size=2",
                                                  "context.on_overflow=drop_frames"])
    assert model.config.vision_tower.chunk_size == 2  # 5 frames go through in 3 chunks
    assert model.config.context.on_overflow == "drop_frames"
    ids = _prompt(hf.config.video_token_index, [5 * 16 + 1])
    pix = _pixels(5, 56, seed=15)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_saved_as_vidlm_checkpoint_round_trip(tmp_path: Path) -> None:
    import vidlm

    hf = build_next_video(tmp_path / "hf", pool_mode="conv")
    model = load_hf_checkpoint(tmp_path / "hf")
    model.save_pretrained(tmp_path / "vidlm")
    again = vidlm.load(str(tmp_path / "vidlm"))
    assert again.config.connector == model.config.connector
    assert again.placeholder_id == hf.config.video_token_index
    ids = _prompt(hf.config.video_token_index, [3 * 9])
    pix = _pixels(3, 56, seed=16)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = again(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_onevision_round_trip_keeps_newline_and_anyres_settings(tmp_path: Path) -> None:
    import vidlm

    hf = build_onevision(tmp_path / "hf")
    model = load_hf_checkpoint(tmp_path / "hf")
    assert model.config.connector.image_grid_pinpoints == ((56, 56), (56, 112), (112, 56))
    model.save_pretrained(tmp_path / "vidlm")
    again = vidlm.load(str(tmp_path / "vidlm"))
    assert again.config.connector == model.config.connector
    assert torch.equal(again.connector.newline, hf.model.image_newline)
    ids = _prompt(hf.config.video_token_index, [2 * 16 + 1])
    pix = _pixels(2, 56, seed=23)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = again(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_bfloat16_load(tmp_path: Path) -> None:
    hf = build_llava(tmp_path)
    model = load_hf_checkpoint(tmp_path, dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    ids = _prompt(hf.config.image_token_index, [16])
    pix = _pixels(1, 32, seed=17)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=pix).logits
        got = model(ids, pixel_values=[pix]).logits.float()
    assert (got - want).abs().max() < 0.1 * want.abs().max()  # bf16 rounding, same model


# ---- a real clip, end to end --------------------------------------------------------------


def test_real_clip_encode_and_greedy_generation_match_transformers(tmp_path: Path,
                                                                   bikes_mp4: Path) -> None:
    from vidlm.model.generation import eos_token_ids

    hf = build_next_video(tmp_path)
    model = load_hf_checkpoint(tmp_path, sampling={"mode": "uniform", "num_frames": 3})
    visual = model.encode_video(bikes_mp4)
    assert visual.num_frames == 3 and visual.num_tokens == model.num_visual_tokens(3) == 27
    pix = model.preprocess(visual.frames.frames)
    assert pix.shape == (3, 3, 56, 56)
    inputs = model.build_inputs([{"role": "user", "content": "<video> w5 w6"}], [visual])
    ids = inputs["input_ids"]
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, visual_tokens=inputs["visual_tokens"]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)

    eos = sorted(eos_token_ids(model.language_model, model.tokenizer))
    with torch.no_grad():
        out = hf.generate(input_ids=ids, pixel_values_videos=pix[None], max_new_tokens=8,
                          do_sample=False, eos_token_id=eos, pad_token_id=0)
    new = out[0, ids.shape[1]:].tolist()
    new = new[:next((i for i, t in enumerate(new) if t in eos), len(new))]
    reply = model.generate(ids, visual_tokens=inputs["visual_tokens"], max_new_tokens=8,
                           temperature=0)
    assert len(new) >= 4  # a real sequence, not an immediate end of text
    assert reply == model.tokenizer.decode(new, skip_special_tokens=True)


# ---- hub ids, sharded and tied weights ----------------------------------------------------


def test_cached_hub_id_loads_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id found in the local Hugging Face cache (snapshot layout) loads offline."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / "models--vidlm-tests--tiny-llava"
    hf = build_llava(repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_hf_checkpoint("vidlm-tests/tiny-llava")
    ids = _prompt(hf.config.image_token_index, [16])
    pix = _pixels(1, 32, seed=18)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=pix).logits
        got = model(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_sharded_safetensors(tmp_path: Path) -> None:
    src = tmp_path / "one"
    hf = build_onevision(src)
    folder = tmp_path / "sharded"
    hf.save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    tiny_tokenizer().save_pretrained(folder)
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    model = load_hf_checkpoint(folder)
    ids = _prompt(hf.config.video_token_index, [2 * 16 + 1])
    pix = _pixels(2, 56, seed=19)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_tied_word_embeddings(tmp_path: Path) -> None:
    """Qwen2-style tied LM head: saved once, tied again on load."""
    tok = tiny_tokenizer()
    image_id, video_id = tok.convert_tokens_to_ids(["<image>", "<video>"])
    text = _text("qwen2", len(tok))
    text.tie_word_embeddings = True
    cfg = LlavaOnevisionConfig(vision_config=_siglip(56, 8).to_dict(), text_config=text.to_dict(),
                               image_token_index=image_id, video_token_index=video_id,
                               vision_feature_layer=-1, vision_feature_select_strategy="full",
                               tie_word_embeddings=True)
    hf = LlavaOnevisionForConditionalGeneration(cfg).eval()
    _spread_weights(hf, seed=20)
    hf.tie_weights()
    _save(hf, tok, tmp_path)
    model = load_hf_checkpoint(tmp_path)
    lm = model.language_model
    assert lm.lm_head.weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    ids = _prompt(video_id, [16 + 1])
    pix = _pixels(1, 56, seed=21)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values_videos=pix[None]).logits
        got = model(ids, pixel_values=[pix]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


# ---- from uint8 pixels: vidlm's preprocessing and prompt vs transformers' processor --------


def test_llava_image_end_to_end_with_transformers_processor(tmp_path: Path,
                                                             bikes_mp4: Path) -> None:
    """A real frame as a 32x32 PNG: vidlm reads, normalises, prompts and scores it exactly
    as ``LlavaProcessor`` (CLIPImageProcessor) + ``LlavaForConditionalGeneration`` do."""
    import av
    import numpy as np
    from PIL import Image
    from transformers import CLIPImageProcessor, LlavaProcessor

    with av.open(str(bikes_mp4)) as container:
        frame = next(container.decode(video=0)).to_image()
    image = frame.resize((32, 32), Image.Resampling.BICUBIC)
    png = tmp_path / "frame.png"
    image.save(png)

    folder = tmp_path / "llava"
    hf = build_llava(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32},
                                         crop_size={"height": 32, "width": 32})
    image_processor.save_pretrained(folder)  # preprocessor_config.json: mean/std, centre crop
    tok = tiny_tokenizer()
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                               vision_feature_select_strategy="default",
                               num_additional_image_tokens=1)

    model = load_hf_checkpoint(folder)
    assert model.config.vision_tower.resize == "crop"
    visual = model.encode_video(png)
    assert visual.kind == "image" and visual.num_tokens == 16
    pixels = model.preprocess(visual.frames.frames)
    messages = [{"role": "user", "content": "<image> w3 w4"}]
    from vidlm.model.prompting import normalise_messages, render_chat

    text = render_chat(model.tokenizer, normalise_messages(messages))
    hf_inputs = processor(text=text, images=[np.asarray(image)], return_tensors="pt")
    assert pixels.shape == hf_inputs["pixel_values"].shape == (1, 3, 32, 32)
    torch.testing.assert_close(pixels, hf_inputs["pixel_values"], atol=1e-6, rtol=0)
    inputs = model.build_inputs(messages, [visual])
    assert torch.equal(inputs["input_ids"], hf_inputs["input_ids"])
    with torch.no_grad():
        want = hf(**hf_inputs).logits
        got = model(inputs["input_ids"], visual_tokens=inputs["visual_tokens"]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


# ---- LLaVA-OneVision images on the anyres path --------------------------------------------

ANYRES_PINPOINTS = [[56, 56], [56, 112], [112, 56], [112, 112]]


@pytest.mark.parametrize(("height", "width", "aspect"), [
    (30, 100, "anyres_max_9"),  # wide: 1x2 tiles, padding rows cut off
    (100, 30, "anyres_max_9"),  # tall: 2x1 tiles, padding columns cut off
    (90, 100, "anyres_max_1"),  # 2x2 tiles, map shrunk by bilinear interpolation
    (56, 56, "anyres_max_9"),  # one tile, no resizing anywhere
])
def test_onevision_anyres_image_parity(tmp_path: Path, bikes_mp4: Path, height: int, width: int,
                                       aspect: str) -> None:
    """A real frame as an image of ``height x width``: vidlm's anyres tiles, token count and
    logits equal LlavaOnevisionImageProcessor + LlavaOnevisionForConditionalGeneration."""
    import av
    import numpy as np
    from PIL import Image
    from transformers import LlavaOnevisionImageProcessor

    from vidlm.model.hf_interop import encode_anyres_image

    with av.open(str(bikes_mp4)) as container:
        frame = next(container.decode(video=0)).to_image()
    image = np.asarray(frame.resize((width, height), Image.Resampling.BICUBIC))

    tok = tiny_tokenizer()
    image_id, video_id = tok.convert_tokens_to_ids(["<image>", "<video>"])
    cfg = LlavaOnevisionConfig(vision_config=_siglip(56, 8).to_dict(),
                               text_config=_text("qwen2", len(tok)).to_dict(),
                               image_token_index=image_id, video_token_index=video_id,
                               vision_feature_layer=-1, vision_feature_select_strategy="full",
                               image_grid_pinpoints=ANYRES_PINPOINTS, vision_aspect_ratio=aspect)
    hf = LlavaOnevisionForConditionalGeneration(cfg).eval()
    _spread_weights(hf, seed=22)
    _save(hf, tok, tmp_path)
    processor = LlavaOnevisionImageProcessor(size={"height": 56, "width": 56},
                                             image_grid_pinpoints=ANYRES_PINPOINTS)
    processor.save_pretrained(tmp_path)
    hf_inputs = processor(images=[image], return_tensors="pt")

    model = load_hf_checkpoint(tmp_path)
    visual = encode_anyres_image(model, image)
    count = model.config.connector.image_num_tokens((height, width), (7, 7), tile=56)
    assert visual.kind == "image" and visual.num_tokens == count
    views = hf_inputs["pixel_values"][0]  # (P, 3, 56, 56): base view, then tiles
    from vidlm.model.connectors.onevision_anyres import anyres_tiles

    ours = model.preprocess(anyres_tiles(image, pinpoints=ANYRES_PINPOINTS, tile=56))
    assert ours.shape == views.shape
    torch.testing.assert_close(ours, views, atol=1e-6, rtol=0)

    ids = _prompt(image_id, [count])  # transformers checks the count against its features
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=hf_inputs["pixel_values"],
                  image_sizes=hf_inputs["image_sizes"]).logits
        got = model(ids.masked_fill(ids == image_id, model.placeholder_id),
                    visual_tokens=[visual.tokens]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_anyres_count_matches_transformers_processor_at_real_size() -> None:
    """Real LLaVA-OneVision geometry (SigLIP 384 px, 27x27, its 36 pinpoints, anyres_max_9):
    vidlm's pure count equals the prompt length transformers' processor computes."""
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor

    from vidlm.model.connectors.onevision import OneVisionConfig

    default = LlavaOnevisionConfig()
    cfg = OneVisionConfig(image_grid_pinpoints=default.image_grid_pinpoints, image_max_tiles=9)
    # The processor's own counting code; built without __init__, which would need a video
    # processor (torchvision) that this counting does not use.
    processor = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)
    processor.image_processor = LlavaOnevisionImageProcessor()
    processor.num_image_tokens = 27 * 27
    processor.vision_aspect_ratio = "anyres_max_9"
    for height, width in [(480, 640), (1080, 1920), (384, 384), (2000, 300), (100, 3000)]:
        want = processor._get_number_of_features(height, width, 384, 384)
        assert cfg.image_num_tokens((height, width), (27, 27), tile=384) == want
    assert cfg.num_tokens(32, (27, 27)) == 32 * 14 * 14 + 1  # the video path: 6,273


# ---- the checkpoint-specific connectors on their own --------------------------------------


@pytest.mark.parametrize("config", [
    "onevision", {"name": "onevision", "pool_factor": 3, "newline": False},
    {"name": "onevision", "pool_after_projection": False},
    "llava_next_video", {"name": "llava_next_video", "pool_mode": "max", "pool_stride": 3},
    {"name": "llava_next_video", "pool_mode": "conv"},
    {"name": "llava_next_video", "pool_after_projection": True},
])
@pytest.mark.parametrize(("frames", "grid", "has_cls"), [
    (1, (4, 4), False), (5, (7, 7), True), (3, (4, 6), False), (2, (9, 5), True)])
def test_connector_shapes_match_pure_counts(config: Any, frames: int, grid: tuple[int, int],
                                            has_cls: bool) -> None:
    from vidlm.model.connectors import build_connector, connector_config_from_dict

    cfg = connector_config_from_dict({"name": config} if isinstance(config, str) else config)
    module = build_connector(cfg, vision_dim=6, lm_dim=10).eval()
    feats = torch.randn(2, frames, grid[0] * grid[1] + int(has_cls), 6)
    with torch.no_grad():
        out = module(feats, grid=grid)
    assert out.shape == (2, cfg.num_tokens(frames, grid, has_cls=has_cls), 10)
    if cfg.name == "onevision":
        f = cfg.pool_factor
        per_frame = math.ceil(grid[0] / f) * math.ceil(grid[1] / f)
        assert out.shape[1] == frames * per_frame + int(cfg.newline)
    else:
        s = cfg.pool_stride
        assert out.shape[1] == frames * (grid[0] // s) * (grid[1] // s)


def test_connector_config_errors() -> None:
    from vidlm.model.connectors import connector_config_from_dict

    with pytest.raises(ConfigError, match="conv"):
        connector_config_from_dict({"name": "llava_next_video", "pool_mode": "conv",
                                    "pool_after_projection": True})
    with pytest.raises(ConfigError, match="pool_mode"):
        connector_config_from_dict({"name": "llava_next_video", "pool_mode": "median"})
    with pytest.raises(ConfigError, match="no tokens"):
        connector_config_from_dict({"name": "llava_next_video", "pool_stride": 5}
                                   ).num_tokens(4, (4, 4))
    with pytest.raises(ConfigError, match="image_grid_pinpoints"):
        connector_config_from_dict({"name": "onevision"}).image_num_tokens((10, 10), (4, 4),
                                                                           tile=32)


# ---- real geometry (published input sizes and widths, 2 layers each) ----------------------


def _real_siglip() -> SiglipVisionConfig:
    """SigLIP-so400m's geometry (384 px, patch 14: 27x27; width 1152), 2 layers."""
    return SiglipVisionConfig(image_size=384, patch_size=14, hidden_size=1152,
                              intermediate_size=4304, num_hidden_layers=2,
                              num_attention_heads=16, vision_use_head=False)


def _real_clip() -> CLIPVisionConfig:
    """CLIP ViT-L/14-336's geometry (336 px, patch 14: 24x24; width 1024), 2 layers."""
    return CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=1024,
                            intermediate_size=4096, num_hidden_layers=2, num_attention_heads=16)


def _real_text(kind: str, vocab: int, hidden: int, inter: int, heads: int, kv: int) -> Any:
    cls = LlamaConfig if kind == "llama" else Qwen2Config
    return cls(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
               num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv,
               max_position_embeddings=8192)


@pytest.mark.slow
def test_real_geometry_parity(tmp_path: Path) -> None:
    """LLaVA-1.5 (576 tokens), OneVision (27x27 -> 14x14 + newline; anyres with the 36
    default pinpoints) and NeXT-Video (24x24 -> 12x12) at their published sizes."""
    tok = tiny_tokenizer()
    image_id, video_id = tok.convert_tokens_to_ids(["<image>", "<video>"])
    cases = [
        ("llava", LlavaForConditionalGeneration(LlavaConfig(
            vision_config=_real_clip().to_dict(), image_token_index=image_id,
            text_config=_real_text("llama", len(tok), 1024, 2816, 8, 8).to_dict())), 336),
        ("onevision", LlavaOnevisionForConditionalGeneration(LlavaOnevisionConfig(
            vision_config=_real_siglip().to_dict(), image_token_index=image_id,
            video_token_index=video_id, vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            text_config=_real_text("qwen2", len(tok), 896, 4864, 14, 2).to_dict())), 384),
        ("next_video", LlavaNextVideoForConditionalGeneration(LlavaNextVideoConfig(
            vision_config=_real_clip().to_dict(), image_token_index=image_id,
            video_token_index=video_id,
            text_config=_real_text("llama", len(tok), 1024, 2816, 8, 8).to_dict())), 336),
    ]
    for name, hf, size in cases:
        hf.eval()
        _spread_weights(hf, seed=30, std=0.02)  # the usual init scale at these widths
        _save(hf, tok, tmp_path / name)
        model = load_hf_checkpoint(tmp_path / name)
        frames = 1 if name == "llava" else 3
        pix = _pixels(frames, size, seed=31)
        count = {"llava": 576, "onevision": frames * 196 + 1, "next_video": frames * 144}[name]
        assert model.num_visual_tokens(frames) == count
        ids = _prompt(image_id if name == "llava" else video_id, [count])
        visual = {"pixel_values": pix} if name == "llava" else {"pixel_values_videos": pix[None]}
        with torch.no_grad():
            want = hf(input_ids=ids, **visual).logits
            got = model(ids, pixel_values=[pix]).logits
            other = hf(input_ids=ids, **{k: v.flip(-1) for k, v in visual.items()}).logits
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
        _assert_sensitive(want, other)

    from transformers import LlavaOnevisionImageProcessor

    from vidlm.model.hf_interop import encode_anyres_image

    hf, model = cases[1][1], load_hf_checkpoint(tmp_path / "onevision")
    processor = LlavaOnevisionImageProcessor()  # 384 px, the 36 default pinpoints
    for height, width in [(480, 640), (300, 1500)]:
        image = torch.randint(0, 256, (height, width, 3), generator=torch.Generator()
                              .manual_seed(height), dtype=torch.uint8).numpy()
        inputs = processor(images=[image], return_tensors="pt")
        visual = encode_anyres_image(model, image)
        ids = _prompt(image_id, [visual.num_tokens])
        with torch.no_grad():
            want = hf(input_ids=ids, pixel_values=inputs["pixel_values"],
                      image_sizes=inputs["image_sizes"]).logits
            got = model(ids.masked_fill(ids == image_id, model.placeholder_id),
                        visual_tokens=[visual.tokens]).logits
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


# ---- the processor's chat template (list-of-parts content) --------------------------------

PARTS_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ' ' }}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ c['text'] + ' ' }}{% endfor %}</s> {% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant ' }}{% endif %}"
)


def test_processor_chat_template_renders_like_transformers(tmp_path: Path) -> None:
    """A llava-hf style template kept by the processor, written for content parts: vidlm's
    string messages with markers give the ids LlavaProcessor gives for the parts."""
    import numpy as np
    from transformers import CLIPImageProcessor, LlavaProcessor

    hf = build_llava(tmp_path)
    tok = tiny_tokenizer()
    tok.chat_template = None
    tok.save_pretrained(tmp_path)  # the tokenizer itself has no template
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                           crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=PARTS_TEMPLATE)
    processor.save_pretrained(tmp_path)
    model = load_hf_checkpoint(tmp_path)

    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "w3 w4"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "w5"}]},
        {"role": "user", "content": [{"type": "text", "text": "w6"}]},
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert text.startswith("user <image>\nw3 w4 </s>")
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    hf_inputs = processor(text=text, images=[image], return_tensors="pt")

    visual = model.encode_video(_frames_of(image))
    messages = [{"role": "user", "content": "<image>\nw3 w4"},
                {"role": "assistant", "content": "w5"}, {"role": "user", "content": "w6"}]
    inputs = model.build_inputs(messages, [visual])
    assert torch.equal(inputs["input_ids"], hf_inputs["input_ids"])
    with torch.no_grad():
        want = hf(**hf_inputs).logits
        got = model(inputs["input_ids"], visual_tokens=inputs["visual_tokens"]).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def _frames_of(image: Any) -> Any:
    import numpy as np

    from vidlm.video import Frames

    return Frames(frames=image[None], timestamps=np.zeros(1), indices=np.zeros(1, np.int64))
