"""The collator: chat template, assistant-only labels, padding, overflow policy."""

from __future__ import annotations

import pytest
import torch

from vidlm.data.collator import IGNORE_INDEX, Collator, assistant_spans
from vidlm.data.dataset import Example, Skipped, Visual
from vidlm.errors import ContextLengthError
from vidlm.testing import tiny_videolm


@pytest.fixture(scope="module")
def model():
    return tiny_videolm(num_frames=2)  # 16 visual tokens per frame


def video(frames: int) -> Visual:
    return Visual(num_frames=frames, frames=torch.zeros(frames, 48, 64, 3, dtype=torch.uint8))


MULTI = [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "<video>\nWhat moves?"},
         {"role": "assistant", "content": "A red circle."},
         {"role": "user", "content": "Where to?"},
         {"role": "assistant", "content": "Left."}]


def labelled_text(model, labels: torch.Tensor) -> list[str]:
    """Decoded runs of consecutive labelled tokens."""
    runs, cur = [], []
    for t in labels.tolist():
        if t == IGNORE_INDEX:
            if cur:
                runs.append(model.tokenizer.decode(cur))
            cur = []
        else:
            cur.append(t)
    if cur:
        runs.append(model.tokenizer.decode(cur))
    return runs


def test_labels_only_on_assistant_tokens(model) -> None:
    batch = Collator.for_model(model)([Example("m", MULTI, [video(2)])])
    ids, labels = batch.input_ids[0], batch.labels[0]
    assert labelled_text(model, labels) == ["A red circle.<|im_end|>\n", "Left.<|im_end|>\n"]
    labelled = labels != IGNORE_INDEX
    assert torch.equal(labels[labelled], ids[labelled])  # labels are the tokens themselves
    placeholders = ids == model.placeholder_id
    assert int(placeholders.sum()) == model.num_visual_tokens(2) == 32
    assert not (labelled & placeholders).any()
    # the prompt part equals what the model builds for inference (same prompt code)
    first_reply = int(labelled.nonzero()[0])
    prompt = model.build_inputs(MULTI[:2], [_tokens(model, 2)])["input_ids"][0]
    assert torch.equal(ids[:first_reply], prompt)


def _tokens(model, frames: int):
    from vidlm.model.videolm import VisualTokens

    return VisualTokens(tokens=torch.zeros(model.num_visual_tokens(frames), model.lm_dim),
                        num_frames=frames)


def test_spans_cover_the_whole_template(model) -> None:
    spans = assistant_spans(model.tokenizer, MULTI)
    from vidlm.model.prompting import render_chat

    assert "".join(t for t, _ in spans) == render_chat(model.tokenizer, MULTI,
                                                       add_generation_prompt=False)
    assert [t for t, a in spans if a] == ["A red circle.<|im_end|>\n", "Left.<|im_end|>\n"]


def test_dynamic_right_padding_and_skips(model) -> None:
    short = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."}]
    coll = Collator.for_model(model)
    batch = coll([Example("long", MULTI, [video(2)]), Skipped("bad", "corrupt"),
                  Example("short", short)])
    assert batch.ids == ["long", "short"] and batch.skipped == [("bad", "corrupt")]
    n_long, n_short = coll.encode(Example("l", MULTI, [video(2)]))[0], coll.encode(
        Example("s", short))[0]
    assert batch.input_ids.shape == (2, len(n_long))  # padded to the longest, no further
    assert batch.attention_mask[1].sum() == len(n_short)
    assert (batch.input_ids[1, len(n_short):] == coll.pad_id).all()
    assert (batch.labels[1, len(n_short):] == IGNORE_INDEX).all()
    assert len(batch.visuals) == 1 and batch.num_tokens == len(n_long) + len(n_short)


def test_overflow_drops_or_errors_never_truncates(model) -> None:
    ex = Example("v", MULTI, [video(2)])
    length = len(Collator.for_model(model).encode(ex)[0])
    fits = Collator.for_model(model, max_length=length)([ex])
    assert fits.ids == ["v"]
    dropped = Collator.for_model(model, max_length=length - 1, on_overflow="drop")([ex])
    assert dropped.ids == [] and dropped.input_ids.shape == (0, 0)
    assert dropped.skipped[0][0] == "v" and dropped.skipped[0][1].startswith("overflow")
    with pytest.raises(ContextLengthError, match="never truncated"):
        Collator.for_model(model, max_length=length - 1, on_overflow="error")([ex])


def test_marker_count_mismatch_is_skipped(model) -> None:
    batch = Collator.for_model(model)([Example("x", MULTI, [video(2), video(2)])])
    assert batch.ids == [] and "visual" in batch.skipped[0][1]
