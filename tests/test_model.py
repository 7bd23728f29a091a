"""VideoLM composition: shapes, placeholder mask placement, multiple visuals, errors."""

from __future__ import annotations

import pytest
import torch

from vidlm.model.connectors import available_connectors
from vidlm.model.prompting import PromptError
from vidlm.model.videolm import VideoLM, VisualCountError, VisualTokens
from vidlm.testing import random_frames, tiny_videolm
from vidlm.video.frames import Frames


def make_frames(t: int, seed: int = 0) -> Frames:
    return random_frames(t, seed=seed)


@pytest.fixture(scope="module")
def model() -> VideoLM:
    return tiny_videolm("mlp2x_gelu")


@pytest.mark.parametrize("name", available_connectors())
def test_forward_shapes_per_connector(name: str) -> None:
    m = tiny_videolm(name)
    frames = make_frames(4)
    visual = m.encode_video(frames)
    assert visual.tokens.shape == (m.num_visual_tokens(4), m.lm_dim)
    inputs = m.build_inputs([{"role": "user", "content": "<video>\nWhat happens?"}], [visual])
    out = m(**inputs)
    seq = inputs["input_ids"].shape[1]
    assert out.logits.shape == (1, seq, m.language_model.config.vocab_size)
    assert int((inputs["input_ids"] == m.placeholder_id).sum()) == visual.num_tokens


def test_placeholder_beyond_embedding_matrix(model: VideoLM) -> None:
    rows = model.language_model.get_input_embeddings().weight.shape[0]
    assert model.placeholder_id >= rows  # the zeroing before lookup is what makes this work
    assert model.tokenizer.convert_ids_to_tokens(model.placeholder_id) == "<|vidlm_visual|>"


def test_visual_tokens_land_exactly_at_placeholders(model: VideoLM) -> None:
    a, b = model.encode_video(make_frames(2, seed=1)), model.encode_video(make_frames(3, seed=2))
    messages = [{"role": "user", "content": "first <video> then <image> end"}]
    inputs = model.build_inputs(messages, [a, b])
    ids = inputs["input_ids"]
    embeds = model.embed(ids, inputs["visual_tokens"])
    mask = ids[0] == model.placeholder_id
    positions = mask.nonzero().flatten()
    assert len(positions) == a.num_tokens + b.num_tokens
    # visual tokens in order: all of a, then all of b
    torch.testing.assert_close(embeds[0, positions], torch.cat([a.tokens, b.tokens]),
                               rtol=0, atol=0)
    # text embeddings untouched
    table = model.language_model.get_input_embeddings().weight
    torch.testing.assert_close(embeds[0, ~mask], table[ids[0, ~mask]], rtol=0, atol=0)
    # the first run of placeholders is contiguous and sits where the first marker was
    first = positions[: a.num_tokens]
    assert torch.equal(first, torch.arange(first[0], first[0] + a.num_tokens))


def test_visual_tokens_change_the_logits(model: VideoLM) -> None:
    messages = [{"role": "user", "content": "<video>\nWhat happens?"}]
    va, vb = model.encode_video(make_frames(2, seed=3)), model.encode_video(make_frames(2, seed=4))
    la = model(**model.build_inputs(messages, [va])).logits
    lb = model(**model.build_inputs(messages, [vb])).logits
    first = int((model.build_inputs(messages, [va])["input_ids"][0] == model.placeholder_id)
                .nonzero()[0])
    torch.testing.assert_close(la[:, :first], lb[:, :first])  # causal: before the video, same
    assert (la[:, -1] - lb[:, -1]).abs().max() > 1e-4


def test_pixel_values_and_visual_tokens_give_the_same_logits(model: VideoLM) -> None:
    frames = make_frames(3, seed=5)
    visual = model.encode_video(frames)
    inputs = model.build_inputs([{"role": "user", "content": "<video> hi"}], [visual])
    by_tokens = model(inputs["input_ids"], visual_tokens=inputs["visual_tokens"]).logits
    by_pixels = model(inputs["input_ids"], pixel_values=[model.preprocess(frames.frames)]).logits
    torch.testing.assert_close(by_tokens, by_pixels, rtol=0, atol=1e-6)


def test_multi_turn_chat_with_two_videos(model: VideoLM) -> None:
    a, b = model.encode_video(make_frames(2, seed=6)), model.encode_video(make_frames(2, seed=7))
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "And this one? <video>"}]
    prompt = model.prepare(messages, [a, b])
    ids = prompt.input_ids[0].tolist()
    runs = _placeholder_runs(ids, model.placeholder_id)
    assert runs == [a.num_tokens, b.num_tokens]  # two separate blocks, one per marker
    text = model.tokenizer.decode([i for i in ids if i != model.placeholder_id])
    assert text.count("<|im_start|>") == 4 and text.endswith("<|im_start|>assistant\n")
    reply = model.chat(messages, [a, b], max_new_tokens=3)
    assert isinstance(reply, str)


def _placeholder_runs(ids: list[int], pid: int) -> list[int]:
    runs, n = [], 0
    for i in ids:
        if i == pid:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def test_marker_added_when_missing(model: VideoLM) -> None:
    v = model.encode_video(make_frames(2))
    inputs = model.build_inputs([{"role": "user", "content": "What is it?"}], [v])
    assert int((inputs["input_ids"] == model.placeholder_id).sum()) == v.num_tokens


def test_count_mismatches_are_clear_errors(model: VideoLM) -> None:
    v = model.encode_video(make_frames(2))
    with pytest.raises(PromptError, match="2 <video>/<image> marker"):
        model.build_inputs([{"role": "user", "content": "<video> <video>"}], [v])
    inputs = model.build_inputs([{"role": "user", "content": "<video>"}], [v])
    short = VisualTokens(tokens=v.tokens[:-1], num_frames=2)
    with pytest.raises(VisualCountError, match=f"{v.num_tokens} placeholder"):
        model(inputs["input_ids"], visual_tokens=[short.tokens])


def test_labels_ignore_placeholder_positions(model: VideoLM) -> None:
    v = model.encode_video(make_frames(2))
    inputs = model.build_inputs([{"role": "user", "content": "<video> hi"}], [v])
    ids = inputs["input_ids"]
    out = model(ids, visual_tokens=inputs["visual_tokens"], labels=ids.clone())
    labels = ids.masked_fill(ids == model.placeholder_id, -100)
    logits = out.logits[0, :-1]
    target = labels[0, 1:]
    keep = target != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(out.loss, expected)


def test_ask_accepts_frames_paths_and_visual_tokens(model: VideoLM, small_mp4, tmp_path) -> None:
    from PIL import Image

    frames = make_frames(2)
    v = model.encode_video(frames)
    assert model.ask(v, "What?", max_new_tokens=4) == model.ask(frames, "What?", max_new_tokens=4)
    from_path = model.encode_video(small_mp4)
    assert from_path.kind == "video" and from_path.num_frames == model.config.sampling.num_frames
    image = tmp_path / "x.png"
    Image.fromarray(frames.frames[0]).save(image)
    img = model.encode_video(image)
    assert img.kind == "image" and img.num_frames == 1
    assert isinstance(model.ask(image, "What?", max_new_tokens=2), str)


def test_frames_are_preprocessed_and_encoded_chunk_by_chunk(model: VideoLM, monkeypatch) -> None:
    frames = make_frames(10, seed=9)
    whole = model.visual_tokens_from_pixels(model.preprocess(frames.frames))
    seen: list[int] = []
    original = model.vision_tower.preprocess

    def counting(x):
        seen.append(len(x))
        return original(x)

    monkeypatch.setattr(model.vision_tower, "preprocess", counting)
    chunked = model.encode_video(frames).tokens
    assert seen == [4, 4, 2]  # chunk_size 4: never all 10 frames as float pixels at once
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_placeholder_text_in_user_input_is_rejected(model: VideoLM) -> None:
    with pytest.raises(PromptError, match="reserved visual placeholder"):
        model.build_inputs([{"role": "user", "content": "hi <|vidlm_visual|> there"}], [])


@pytest.mark.parametrize("connector", ["mlp2x_gelu", "slowfast"])
def test_siglip_tower_with_qwen2_lm(connector: str) -> None:
    m = tiny_videolm(connector, vision="siglip", lm="qwen2", feature_layer=-1)
    assert not m.vision_tower.has_cls
    assert m.language_model.config.model_type == "qwen2"
    visual = m.encode_video(make_frames(4))
    assert visual.num_tokens == m.num_visual_tokens(4)
    out = m(**m.build_inputs([{"role": "user", "content": "<video> hi"}], [visual]))
    assert torch.isfinite(out.logits).all()


def test_fallback_template_only_without_a_tokenizer_template() -> None:
    from vidlm.model.prompting import FALLBACK_TEMPLATE, render_chat

    m = tiny_videolm()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    own = render_chat(m.tokenizer, messages)
    assert own == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                   "<|im_start|>assistant\n")
    m.tokenizer.chat_template = None
    assert FALLBACK_TEMPLATE
    assert render_chat(m.tokenizer, messages) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"
    v = m.encode_video(make_frames(1))
    inputs = m.build_inputs([{"role": "user", "content": "<image> Hi"}], [v])
    assert int((inputs["input_ids"] == m.placeholder_id).sum()) == v.num_tokens


def test_training_step_reaches_connector_and_lm_not_frozen_tower() -> None:
    m = tiny_videolm("slowfast", slow_frames=2, fast_grid=2, separator=True)
    m.train()
    assert not m.vision_tower.encoder.training and m.language_model.training
    frames = make_frames(4, seed=12)
    visual_len = m.num_visual_tokens(4)
    text = m.build_inputs([{"role": "user", "content": "<video> hi"}],
                          [VisualTokens(tokens=torch.zeros(visual_len, m.lm_dim),
                                        num_frames=4)])
    ids = text["input_ids"]
    out = m(ids, labels=ids.clone(), pixel_values=[m.preprocess(frames.frames)])
    out.loss.backward()
    assert m.connector.projector.linear_1.weight.grad is not None
    assert m.connector.separator.grad is not None
    assert m.language_model.get_input_embeddings().weight.grad is not None
    assert all(p.grad is None for p in m.vision_tower.parameters())
