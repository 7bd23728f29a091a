"""Generation: KV-cache decoding vs a full forward, greedy vs transformers, streaming, stops."""

from __future__ import annotations

import pytest
import torch

from vidlm.errors import ConfigError
from vidlm.model.generation import GenerationSettings, decode_steps, eos_token_ids, stream_text
from vidlm.model.videolm import VideoLM
from vidlm.testing import random_frames as make_frames
from vidlm.testing import tiny_videolm


@pytest.fixture(scope="module")
def model() -> VideoLM:
    m = tiny_videolm("slowfast", slow_frames=2, fast_grid=2, seed=1)
    m.language_model.generation_config.eos_token_id = None  # random weights: never stop early
    m.tokenizer.eos_token = None
    return m


@pytest.fixture(scope="module")
def prompt(model: VideoLM):
    return model.prepare([{"role": "user", "content": "<video>\nWhat happens?"}],
                         [make_frames(4, seed=11)])


def test_kv_cache_decoding_matches_full_forward(model: VideoLM, prompt) -> None:
    embeds = model.embed(prompt.input_ids, prompt.visual_tokens)
    settings = GenerationSettings(max_new_tokens=12)
    steps = list(decode_steps(model.language_model, embeds, None, settings, set()))
    tokens = [t for t, _ in steps]
    assert len(tokens) == 12
    full_ids = torch.cat([prompt.input_ids, torch.tensor([tokens])], dim=1)
    with torch.no_grad():
        full = model(full_ids, visual_tokens=prompt.visual_tokens).logits[0]
    start = prompt.input_ids.shape[1] - 1
    for k, (token, logits) in enumerate(steps):
        torch.testing.assert_close(logits, full[start + k], rtol=0, atol=1e-5)
        assert token == int(full[start + k].argmax())


def test_greedy_matches_transformers_generate(model: VideoLM, prompt) -> None:
    ours = model.generate_prepared(prompt, max_new_tokens=10)
    embeds = model.embed(prompt.input_ids, prompt.visual_tokens)
    with torch.no_grad():
        ref = model.language_model.generate(inputs_embeds=embeds,
                                            attention_mask=prompt.attention_mask,
                                            max_new_tokens=10, do_sample=False, min_new_tokens=10,
                                            pad_token_id=0)
    assert ours == model.tokenizer.decode(ref[0], skip_special_tokens=True)
    assert len(ours) > 0


def test_streaming_yields_the_non_streaming_text(model: VideoLM, prompt) -> None:
    whole = model.generate_prepared(prompt, max_new_tokens=15)
    parts = list(model.generate_prepared(prompt, max_new_tokens=15, stream=True))
    assert len(parts) > 1
    assert "".join(parts) == whole


def test_stop_strings_end_the_reply_and_are_left_out(model: VideoLM, prompt) -> None:
    whole = model.generate_prepared(prompt, max_new_tokens=20)
    stop = whole[5:7]
    expected = whole[: whole.find(stop)]
    assert model.generate_prepared(prompt, max_new_tokens=20, stop=[stop]) == expected
    streamed = "".join(model.generate_prepared(prompt, max_new_tokens=20, stop=stop,
                                               stream=True))
    assert streamed == expected


def test_eos_ends_generation(model: VideoLM, prompt) -> None:
    embeds = model.embed(prompt.input_ids, prompt.visual_tokens)
    free = [t for t, _ in decode_steps(model.language_model, embeds, None,
                                       GenerationSettings(max_new_tokens=8), set())]
    eos = free[3]
    cut = [t for t, _ in decode_steps(model.language_model, embeds, None,
                                      GenerationSettings(max_new_tokens=8), {eos})]
    assert cut == free[: free.index(eos)]


def test_sampling_is_seeded_and_top_p_narrows(model: VideoLM, prompt) -> None:
    a = model.generate_prepared(prompt, max_new_tokens=12, temperature=1.5, seed=3)
    b = model.generate_prepared(prompt, max_new_tokens=12, temperature=1.5, seed=3)
    c = model.generate_prepared(prompt, max_new_tokens=12, temperature=1.5, seed=4)
    assert a == b
    assert a != c  # random weights, near-flat logits: two seeds virtually never agree
    greedy = model.generate_prepared(prompt, max_new_tokens=12)
    assert model.generate_prepared(prompt, max_new_tokens=12, temperature=1.5, top_p=1e-6,
                                   seed=5) == greedy


class _CharTokenizer:
    """Decodes ids as characters, to test stream_text's hold-back logic alone."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


@pytest.mark.parametrize(("text", "stop", "expected"), [
    ("hello world", ["wor"], "hello "),
    ("hello world", ["xyz"], "hello world"),
    ("abcabd", ["abd"], "abc"),
    ("aaab", ["ab", "aab"], "a"),
])
def test_stream_text_cuts_at_first_stop(text: str, stop: list[str], expected: str) -> None:
    parts = list(stream_text(_CharTokenizer(), iter(map(ord, text)), stop))
    assert "".join(parts) == expected
    for s in stop:  # no delta ever carried a stop string's text into the output
        assert s not in "".join(parts)


def test_bad_settings_are_config_errors(model: VideoLM, prompt) -> None:
    with pytest.raises(ConfigError, match="top_p"):
        model.generate_prepared(prompt, top_p=0)
    with pytest.raises(ConfigError, match="unknown generation option"):
        model.generate_prepared(prompt, beams=2)


def test_eos_ids_come_from_tokenizer_and_generation_config() -> None:
    m = tiny_videolm()
    m.language_model.generation_config.eos_token_id = [5, 6]
    assert eos_token_ids(m.language_model, m.tokenizer) == {5, 6,
                                                            m.tokenizer.eos_token_id}


def test_kv_cache_on_qwen2() -> None:
    m = tiny_videolm("mlp2x_gelu", lm="qwen2", seed=5)
    p = m.prepare([{"role": "user", "content": "<image> What?"}], [make_frames(1)])
    embeds = m.embed(p.input_ids, p.visual_tokens)
    steps = list(decode_steps(m.language_model, embeds, None,
                              GenerationSettings(max_new_tokens=6), set()))
    full_ids = torch.cat([p.input_ids, torch.tensor([[t for t, _ in steps]])], dim=1)
    with torch.no_grad():
        full = m(full_ids, visual_tokens=p.visual_tokens).logits[0]
    start = p.input_ids.shape[1] - 1
    for k, (_, logits) in enumerate(steps):
        torch.testing.assert_close(logits, full[start + k], rtol=0, atol=1e-5)


@pytest.mark.gpu
def test_generation_on_gpu_in_bfloat16() -> None:
    m = tiny_videolm("slowfast", slow_frames=2, fast_grid=2, seed=1).to("cuda", torch.bfloat16)
    assert m.device.type == "cuda" and m.dtype == torch.bfloat16
    frames = make_frames(4, seed=2)
    visual = m.encode_video(frames)
    assert visual.tokens.device.type == "cuda" and visual.tokens.dtype == torch.bfloat16
    whole = m.ask(visual, "What happens?", max_new_tokens=8)
    assert "".join(m.ask(visual, "What happens?", max_new_tokens=8, stream=True)) == whole
    sampled = m.ask(visual, "What?", max_new_tokens=8, temperature=1.0, seed=0)
    assert sampled == m.ask(visual, "What?", max_new_tokens=8, temperature=1.0, seed=0)
