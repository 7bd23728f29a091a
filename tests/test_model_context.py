"""A prompt that would overflow the context: a clear error, or frames dropped (reported)."""

from __future__ import annotations

import logging

import pytest

from vidlm.errors import ContextLengthError
from vidlm.model.videolm import VisualTokens
from vidlm.testing import random_frames, tiny_videolm

QUESTION = [{"role": "user", "content": "<video>\nWhat happens?"}]


def test_overflow_raises_naming_the_counts() -> None:
    m = tiny_videolm(max_context=200)  # mlp2x_gelu: 16 tokens per frame
    text = m.prompt_text_tokens(QUESTION, ["video"])
    with pytest.raises(ContextLengthError) as info:
        m.prepare(QUESTION, [random_frames(16)], max_new_tokens=20)
    msg = str(info.value)
    assert f"{text + 256 + 20} tokens ({text} text + 256 visual" in msg
    assert "context holds 200" in msg and "drop_frames" in msg


def test_fitting_prompt_is_untouched() -> None:
    m = tiny_videolm(max_context=200)
    prompt = m.prepare(QUESTION, [random_frames(4)], max_new_tokens=20)
    assert prompt.visuals[0].num_frames == 4 and not prompt.notes


def test_drop_frames_keeps_the_most_frames_that_fit(caplog) -> None:
    m = tiny_videolm(max_context=200)
    m.config.context.on_overflow = "drop_frames"
    text = m.prompt_text_tokens(QUESTION, ["video"])
    expected = (200 - text - 20) // 16
    with caplog.at_level(logging.WARNING):
        prompt = m.prepare(QUESTION, [random_frames(16)], max_new_tokens=20)
    visual = prompt.visuals[0]
    assert visual.num_frames == expected and visual.dropped_from == 16
    assert visual.num_tokens == m.num_visual_tokens(expected)  # whole frames, never truncated
    assert prompt.notes == [f"video: kept {expected} of 16 frames to fit the 200-token context "
                            "(context.on_overflow=drop_frames)"]
    assert prompt.notes[0] in caplog.text
    assert prompt.input_ids.shape[1] + 20 <= 200
    assert int((prompt.input_ids == m.placeholder_id).sum()) == visual.num_tokens
    # the kept frames are spread over the whole clip (segment middles), in order
    kept = visual.frames.indices.tolist()
    assert kept == sorted(kept) and kept[0] <= 2 and kept[-1] >= 13
    assert isinstance(m.generate_prepared(prompt, max_new_tokens=3), str)


def test_drop_frames_with_slowfast_uses_its_token_count() -> None:
    m = tiny_videolm("slowfast", slow_frames=4, fast_grid=2, max_context=160)
    m.config.context.on_overflow = "drop_frames"
    prompt = m.prepare(QUESTION, [random_frames(40)], max_new_tokens=16)
    visual = prompt.visuals[0]
    assert visual.num_frames < 40
    assert visual.num_tokens == m.num_visual_tokens(visual.num_frames)
    assert prompt.input_ids.shape[1] + 16 <= 160
    # one more frame would not have fit
    text = m.prompt_text_tokens(QUESTION, ["video"])
    assert text + m.num_visual_tokens(visual.num_frames + 1) + 16 > 160


def test_drop_frames_still_errors_when_one_frame_is_too_many() -> None:
    m = tiny_videolm(max_context=40)
    m.config.context.on_overflow = "drop_frames"
    with pytest.raises(ContextLengthError, match="even with the fewest frames"):
        m.prepare(QUESTION, [random_frames(4)], max_new_tokens=20)


def test_encoded_tokens_without_frames_cannot_be_dropped() -> None:
    m = tiny_videolm(max_context=200)
    m.config.context.on_overflow = "drop_frames"
    visual = m.encode_video(random_frames(16))
    bare = VisualTokens(tokens=visual.tokens, num_frames=16)
    with pytest.raises(ContextLengthError):
        m.prepare(QUESTION, [bare], max_new_tokens=20)
    # with its frames it can
    assert m.prepare(QUESTION, [visual], max_new_tokens=20).visuals[0].num_frames < 16


def test_context_limit_follows_the_config() -> None:
    m = tiny_videolm()
    assert m.context_length == 2048  # the LM's max_position_embeddings
    m.config.language_model.max_context = 100
    assert m.context_length == 100
    with pytest.raises(ContextLengthError, match="context holds 100"):
        m.prepare(QUESTION, [random_frames(8)], max_new_tokens=10)
