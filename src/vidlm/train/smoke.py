"""A tiny, fully offline training setup: synthetic clips + a random-weight VideoLM.

Used by the training tests and ``benchmarks/train_step.py``, and handy for trying a
config on a laptop::

    files = build_smoke_setup("/tmp/smoke")
    cfg = smoke_config(files, output_dir="/tmp/smoke/run", max_steps=20)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidlm.config import from_dict
from vidlm.train.config import TrainConfig


@dataclass(frozen=True)
class SmokeFiles:
    base_model: Path  # a vidlm checkpoint folder
    train: Path  # LLaVA JSON
    eval: Path  # LLaVA JSON
    media_root: Path


def build_smoke_setup(folder: str | Path, *, num_train: int = 8, num_eval: int = 2,
                      num_frames: int = 2, connector: str = "mlp2x_gelu", seed: int = 0,
                      **model_kwargs: Any) -> SmokeFiles:
    """Write a synthetic video QA set (``vidlm data synth``) and a tiny base model."""
    from vidlm.data.synth import SynthConfig, generate_dataset
    from vidlm.testing import tiny_videolm

    folder = Path(folder)
    data = folder / "data"
    generate_dataset(data, SynthConfig(num_train=num_train, num_val=num_eval, num_test=0,
                                       size=32, fps=8, seconds=2.0, seed=seed), progress=False)
    base = folder / "base"
    tiny_videolm(connector, num_frames=num_frames, seed=seed, **model_kwargs).save_pretrained(base)
    return SmokeFiles(base, data / "train.json", data / "val.json", data)


def smoke_config(files: SmokeFiles, *, output_dir: str | Path, **fields: Any) -> TrainConfig:
    """A fp32, deterministic :class:`TrainConfig` for ``files``; ``fields`` override it
    (nested sections as dicts, e.g. ``optim={"lr": 1e-3}``)."""
    data = {"stage": "sft", "model": {"path": str(files.base_model)},
            "data": {"train": str(files.train), "eval": str(files.eval),
                     "media_root": str(files.media_root)},
            "optim": {"lr": 3e-3, "warmup_steps": 2}, "output_dir": str(output_dir),
            "global_batch_size": 4, "micro_batch_size": 2, "max_steps": 10,
            "precision": "fp32", "deterministic": True, "progress": False}
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    cfg = from_dict(TrainConfig, data)
    cfg.validate()
    return cfg
