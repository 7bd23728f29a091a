"""Stage presets: which parts of a :class:`~vidlm.model.videolm.VideoLM` train, and how fast.

* ``align`` — the connector only; vision tower and language model frozen (LLaVA-1.5
  stage 1, lr 1e-3).
* ``sft`` — connector and language model (LLaVA-1.5 stage 2, lr 2e-5); with
  ``train_vision_tower`` the tower too, at its own lower rate. With
  ``train_language_model: false`` the language model stays frozen (connector, and
  the tower if asked, only).
* ``lora`` — ``peft`` LoRA adapters on the language model, plus the connector (lr 2e-4),
  and with ``train_vision_tower`` the tower at its own rate, as in ``sft``.

A preset returns AdamW parameter groups; everything not in a group is frozen.
Weight decay is not applied to biases and norm weights (1-D tensors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vidlm.errors import ConfigError
from vidlm.train.config import TrainConfig


@dataclass(frozen=True)
class StagePreset:
    name: str
    default_lr: float
    build: Callable[[nn.Module, TrainConfig, float], list[tuple[str, nn.Module, float]]]


STAGES: dict[str, StagePreset] = {}


def register_stage(name: str, default_lr: float):
    def decorate(fn: Callable[[nn.Module, TrainConfig, float], list[tuple[str, nn.Module, float]]]):
        STAGES[name] = StagePreset(name, default_lr, fn)
        return fn
    return decorate


def _vision(model: nn.Module, cfg: TrainConfig, lr: float) -> list[tuple[str, nn.Module, float]]:
    if not cfg.train_vision_tower:
        return []
    tower = model.vision_tower
    tower.config.frozen = False
    tower.encoder.train()
    return [("vision_tower", tower, cfg.optim.vision_lr or lr / 10)]


@register_stage("align", 1e-3)
def _align(model: nn.Module, cfg: TrainConfig, lr: float) -> list[tuple[str, nn.Module, float]]:
    return [("connector", model.connector, lr)]


@register_stage("sft", 2e-5)
def _sft(model: nn.Module, cfg: TrainConfig, lr: float) -> list[tuple[str, nn.Module, float]]:
    lm = [("language_model", model.language_model, lr)] if cfg.train_language_model else []
    return [("connector", model.connector, lr), *lm, *_vision(model, cfg, lr)]


@register_stage("lora", 2e-4)
def _lora(model: nn.Module, cfg: TrainConfig, lr: float) -> list[tuple[str, nn.Module, float]]:
    from vidlm.train.lora import add_lora

    adapted = add_lora(model, cfg.lora)
    return [("connector", model.connector, lr), ("lora", adapted, lr), *_vision(model, cfg, lr)]


def preset(name: str) -> StagePreset:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known: {sorted(STAGES)}")
    return STAGES[name]


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Freeze ``model``, unfreeze the stage's parts, and return AdamW param groups.

    Each part gives two groups, with and without weight decay. For ``lora`` only the
    adapter weights of the language model train (``peft`` marks them trainable).
    """
    stage = preset(cfg.stage)
    lr = cfg.optim.lr if cfg.optim.lr is not None else stage.default_lr
    for p in model.parameters():
        p.requires_grad_(False)
    parts = stage.build(model, cfg, lr)
    groups: list[dict[str, Any]] = []
    for name, module, part_lr in parts:
        params = [(n, p) for n, p in module.named_parameters()
                  if cfg.stage != "lora" or name != "lora" or "lora_" in n]
        for _, p in params:
            p.requires_grad_(True)
        decay = [p for _, p in params if p.ndim >= 2]
        no_decay = [p for _, p in params if p.ndim < 2]
        groups += [{"name": f"{name}.decay", "params": decay, "lr": part_lr,
                    "weight_decay": cfg.optim.weight_decay},
                   {"name": f"{name}.no_decay", "params": no_decay, "lr": part_lr,
                    "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
