"""The training objective as one ``nn.Module``, so DDP/FSDP see a single forward.

:class:`CausalLMObjective` wraps a :class:`~vidlm.model.videolm.VideoLM`. Its forward
turns each visual input into tokens (vision features through the connector; pixels
through the tower first when the tower trains), runs the language model and returns
the *summed* token cross-entropy and the number of label tokens. The recipe divides
by the token count of the whole global batch, so any split of that batch over ranks
and accumulation steps gives the same gradient.

Dummy visual forward: a micro-batch with no image or video (text-only records, or
every record skipped) still runs the connector (and a trainable tower) on one zero
frame and adds ``0 * sum(tokens)`` to the loss. Every trainable parameter then takes
part in every backward pass, so DDP's gradient all-reduce and FSDP's collectives run
the same sequence on every rank and never hang, and the loss value is unchanged.
An empty micro-batch likewise runs the LM on one padding token with zero weight.

Only the positions that predict a label get logits: the LM head runs on the sequence
positions where any row of the micro-batch has a label (``logits_to_keep``, where the
LM supports it), instead of on every position (a ``(B, S, V)`` tensor, V ~ 50k).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidlm.data.collator import IGNORE_INDEX


@dataclass
class ObjectiveOutput:
    loss_sum: torch.Tensor  # () fp32, summed over label tokens
    num_tokens: torch.Tensor  # () int64, label tokens in this micro-batch


class CausalLMObjective(nn.Module):
    def __init__(self, model: nn.Module, *, train_vision_tower: bool) -> None:
        super().__init__()
        self.model = model
        self.train_vision_tower = train_vision_tower

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor, visuals: list[torch.Tensor]) -> ObjectiveOutput:
        """``input_ids``/``attention_mask``/``labels``: ``(B, S)``. ``visuals``: per input,
        features ``(T, N, D)`` or — when the tower trains — pixels ``(T, 3, S, S)``."""
        model = self.model
        device = model.device
        if input_ids.numel() == 0:  # every record of this micro-batch was skipped
            pad = int(model.tokenizer.pad_token_id or 0)
            input_ids = torch.full((1, 1), pad, dtype=torch.long)
            attention_mask = torch.ones_like(input_ids)
            labels = torch.full_like(input_ids, IGNORE_INDEX)
        tokens = [self._visual_tokens(v.to(device)) for v in visuals]
        dummy = None if tokens else self._dummy_visual(device)
        target = labels.to(device)[:, 1:]  # (B, S-1): position j predicts token j + 1
        target = target.masked_fill(input_ids.to(device)[:, 1:] == model.placeholder_id,
                                    IGNORE_INDEX)
        lm_kwargs: dict[str, Any] = {}
        if _accepts_logits_to_keep(model.language_model):
            keep = (target != IGNORE_INDEX).any(0).nonzero().squeeze(1)  # (K,)
            if keep.numel() == 0:  # no labels: one position keeps the LM in the graph
                keep = keep.new_zeros(1)
            lm_kwargs["logits_to_keep"] = keep
            target = target[:, keep]
        out = model(input_ids.to(device), attention_mask.to(device), visual_tokens=tokens,
                    **lm_kwargs)
        logits = out.logits[:, :target.shape[1]].float()  # (B, K, V); K = S-1 if all kept
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
        if dummy is not None:
            loss_sum = loss_sum + 0.0 * dummy.float().sum()
        return ObjectiveOutput(loss_sum, (target != IGNORE_INDEX).sum())

    def _visual_tokens(self, visual: torch.Tensor) -> torch.Tensor:
        """``(T, N, D)`` features or ``(T, 3, S, S)`` pixels -> ``(L, D_lm)``."""
        if self.train_vision_tower:
            visual = self.model.encode_frames(visual)
        return self.model.connect(visual[None])[0]

    def _dummy_visual(self, device: torch.device) -> torch.Tensor:
        tower = self.model.vision_tower
        if self.train_vision_tower:
            side = tower.config.image_size
            feats = self.model.encode_frames(torch.zeros(1, 3, side, side, device=device))
        else:
            feats = torch.zeros(1, tower.num_patches, tower.hidden_size, device=device)
        return self.model.connect(feats[None])


def _accepts_logits_to_keep(language_model: Any) -> bool:
    """Whether the (peft-unwrapped) causal LM's forward takes ``logits_to_keep``."""
    base = getattr(language_model, "get_base_model", lambda: language_model)()
    return "logits_to_keep" in inspect.signature(base.forward).parameters
