"""The typed training config, read from YAML with ``a.b=value`` overrides.

``vidlm train CONFIG.yaml optim.lr=1e-4 data.num_workers=4`` builds a
:class:`TrainConfig`; the resolved config is written as ``train_config.json`` beside
every checkpoint so a run can be resumed or audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidlm.config import apply_overrides, from_dict, load_yaml, to_dict
from vidlm.errors import ConfigError

TRAIN_CONFIG_NAME = "train_config.json"

Precision = Literal["fp32", "bf16", "fp16"]


@dataclass
class ModelSection:
    """The model to start from: a vidlm checkpoint folder (or anything ``vidlm.load`` takes)."""

    path: str = ""
    gradient_checkpointing: bool = False


@dataclass
class DataSection:
    """Where the conversations and media are, and how they are turned into batches.

    ``on_overflow``: a record longer than ``max_length`` is ``"drop"``-ped (counted) or
    is an ``"error"``; text is never cut inside or before visual tokens.
    ``feature_cache``: a folder caching vision-tower features per video (content hash
    + sampling + tower), so later epochs skip decoding and the tower. Needs a frozen tower.
    ``eval``: a held-out file for periodic evaluation loss.
    """

    train: str = ""
    eval: str | None = None
    media_root: str = "."
    max_length: int | None = None  # None: the language model's context
    on_overflow: Literal["drop", "error"] = "drop"
    num_workers: int = 0
    shuffle: bool = True
    feature_cache: str | None = None
    feature_cache_max_gb: float = 20.0


@dataclass
class OptimSection:
    """AdamW and the cosine schedule with linear warmup.

    ``lr=None`` takes the stage preset's rate. ``vision_lr`` is the vision tower's own
    rate when ``train_vision_tower`` is on (default: ``lr / 10``). Warmup is
    ``warmup_steps`` when positive, else ``warmup_ratio`` of the total steps.
    """

    lr: float | None = None
    vision_lr: float | None = None
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0


@dataclass
class LoraSection:
    """``peft`` LoRA on the language model (stage ``lora``). ``merge``: also export merged."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge: bool = True


@dataclass
class DistributedSection:
    """``strategy``: ``"auto"`` follows the launcher (``accelerate launch`` config, or DDP
    under ``torchrun``); ``"ddp"`` or ``"fsdp"`` force one when launched with torchrun."""

    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    backend: str | None = None  # None: nccl on GPU, gloo on CPU


@dataclass
class TrainConfig:
    """One training run. Batches: ``global_batch_size = micro_batch_size * world * accum``."""

    stage: Literal["align", "sft", "lora"] = "sft"
    train_vision_tower: bool = False
    train_language_model: bool = True  # sft only: False keeps the LM frozen
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    lora: LoraSection = field(default_factory=LoraSection)
    distributed: DistributedSection = field(default_factory=DistributedSection)
    output_dir: str = "runs/vidlm"
    global_batch_size: int = 8
    micro_batch_size: int = 1
    epochs: int = 1
    max_steps: int | None = None  # None: epochs over the data
    precision: Precision = "bf16"
    seed: int = 0
    deterministic: bool = False
    log_every: int = 1
    eval_every: int = 0  # 0: only at the end (when data.eval is set)
    save_every: int = 0  # 0: only at the end
    keep_last: int = 2
    export: bool = True
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigError` for settings that cannot work together."""
        if not self.model.path:
            raise ConfigError("model.path is required (a vidlm checkpoint folder)")
        if not self.data.train:
            raise ConfigError("data.train is required (a LLaVA JSON/JSONL file)")
        if self.micro_batch_size < 1 or self.global_batch_size < 1:
            raise ConfigError("micro_batch_size and global_batch_size must be positive")
        if self.data.feature_cache and self.train_vision_tower:
            raise ConfigError("data.feature_cache needs a frozen vision tower; "
                              "unset it or set train_vision_tower=false")
        if self.keep_last < 1:
            raise ConfigError("keep_last must be at least 1")
        if self.stage == "align" and self.train_vision_tower:
            raise ConfigError("stage 'align' trains the connector only; "
                              "train_vision_tower needs stage 'sft'")
        if not self.train_language_model and self.stage != "sft":
            raise ConfigError(f"train_language_model=false is an sft switch; stage "
                              f"{self.stage!r} "
                              + ("never trains the language model" if self.stage == "align"
                                 else "trains the language model's adapters by design"))

    def save(self, folder: str | Path) -> None:
        import json

        Path(folder, TRAIN_CONFIG_NAME).write_text(json.dumps(to_dict(self), indent=2) + "\n")


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML (or JSON) training config, apply ``a.b=v`` overrides, check it."""
    path = Path(path)
    data = load_yaml(path)  # YAML is a superset of JSON
    data = apply_overrides(data, list(overrides or []))
    cfg = from_dict(TrainConfig, data, where=str(path))
    _check_fields(cfg, str(path))
    cfg.validate()
    return cfg


def _check_fields(cfg: object, where: str) -> None:
    """Check choice (``Literal``) fields, and turn numbers that YAML read as strings
    (``5e-4`` without a dot) into numbers; anything else is a clear error."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):  # type: ignore[arg-type]
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{where}: {f.name}")
            continue
        if typing.get_origin(hints[f.name]) is Literal:
            choices = typing.get_args(hints[f.name])
            if value not in choices:
                raise ConfigError(f"{where}: {f.name} must be one of {list(choices)}, "
                                  f"got {value!r}")
            continue
        kinds = {a for a in (typing.get_args(hints[f.name]) or (hints[f.name],))
                 if a in (int, float)}
        if not kinds or not isinstance(value, str):
            continue
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: {f.name} must be a number, got {value!r}") from None
        setattr(cfg, f.name, int(number) if float not in kinds and number.is_integer()
                else number)
