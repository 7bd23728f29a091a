"""LoRA on the language model through ``peft``, and exporting it merged or separate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from vidlm.errors import ConfigError
from vidlm.train.config import LoraSection


def add_lora(model: Any, cfg: LoraSection) -> nn.Module:
    """Wrap ``model.language_model`` in a ``peft`` LoRA model (in place); return it.

    Only the adapter weights (``lora_A``/``lora_B``) are trainable afterwards.
    """
    from peft import LoraConfig, get_peft_model

    lm = model.language_model
    present = {name.rsplit(".", 1)[-1] for name, _ in lm.named_modules()}
    missing = [t for t in cfg.target_modules if t not in present]
    if missing:
        raise ConfigError(f"lora.target_modules {missing} are not modules of the language "
                          f"model; some that are: {sorted(present)[:12]}")
    peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=list(cfg.target_modules), bias="none",
                          task_type="CAUSAL_LM")
    model.language_model = get_peft_model(lm, peft_cfg)
    return model.language_model


def is_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(getattr(model, "language_model", None), PeftModel)


def save_adapter(model: Any, folder: str | Path) -> None:
    """Write the LoRA adapter (``peft`` format: adapter_config.json + safetensors)."""
    model.language_model.save_pretrained(str(folder), safe_serialization=True)


def merge_lora(model: Any) -> None:
    """Fold the adapters into the language model's weights; it becomes a plain LM again."""
    model.language_model = model.language_model.merge_and_unload()


def apply_adapter(model: Any, folder: str | Path) -> Any:
    """Load a saved adapter onto a plain model's language model (for kept-separate exports)."""
    from peft import PeftModel

    model.language_model = PeftModel.from_pretrained(model.language_model, str(folder))
    return model
