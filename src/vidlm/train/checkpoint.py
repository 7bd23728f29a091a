"""Training checkpoints: atomic, resumable, the last K kept.

A checkpoint is a folder ``OUTPUT/checkpoints/step_00000012/`` holding

* ``trainable.safetensors`` — the weights that train (connector, LM or LoRA, ...),
  named as in the training objective (``model.<part>...``); frozen weights come
  from ``model.path``;
* ``optimizer.pt`` — the AdamW state (tensors and numbers only; read back with
  ``torch.load(weights_only=True)``), keyed by parameter name;
* ``trainer_state.json`` — step, data position, scheduler state, counters;
* ``rng_rank{R}.pt`` — each rank's torch / CUDA / numpy / Python RNG states;
* ``train_config.json`` — the resolved config.

It is written into ``.tmp-step_...`` and renamed into place only when complete, so a
run killed at any moment leaves either the previous checkpoints or the new one whole.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vidlm.errors import VidlmError

STEP_PREFIX = "step_"
TMP_PREFIX = ".tmp-"


class CheckpointError(VidlmError):
    """A checkpoint folder is missing, incomplete or does not match the model."""


@dataclass
class TrainerState:
    """Where the run is. ``epoch``/``batch_in_epoch``: micro-batches already consumed."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples_seen: int = 0
    tokens_seen: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TrainerState:
        return cls(**json.loads(text))


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (incomplete ``.tmp-`` folders are ignored)."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)
             and p.name[len(STEP_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX):]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


# ---- RNG ------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and numbers (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- writing --------------------------------------------------------------------------

def tmp_folder(output_dir: str | Path, step: int) -> Path:
    return checkpoint_root(output_dir) / f"{TMP_PREFIX}{STEP_PREFIX}{step:08d}"


def begin(output_dir: str | Path, step: int) -> Path:
    """Create (empty) the temporary folder of the checkpoint at ``step``. Main process only."""
    tmp = tmp_folder(output_dir, step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_main(tmp: Path, *, trainable: dict[str, torch.Tensor], optimizer: dict[str, Any],
               state: TrainerState, config: Any) -> None:
    """The main process's files: weights, optimizer, trainer state and config."""
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()},
              str(tmp / "trainable.safetensors"))
    torch.save(optimizer, tmp / "optimizer.pt")
    (tmp / "trainer_state.json").write_text(state.to_json())
    config.save(tmp)


def write_rng(tmp: Path, rank: int) -> None:
    torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")


def commit(output_dir: str | Path, step: int, *, keep_last: int) -> Path:
    """Rename the finished temporary folder into place; delete all but the last ``keep_last``."""
    tmp = tmp_folder(output_dir, step)
    final = checkpoint_root(output_dir) / f"{STEP_PREFIX}{step:08d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    for old in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- reading --------------------------------------------------------------------------

@dataclass
class LoadedCheckpoint:
    folder: Path
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: TrainerState


def load(folder: Path) -> LoadedCheckpoint:
    """Read a checkpoint written by this module (safetensors + ``weights_only`` loads)."""
    try:
        trainable = load_file(str(folder / "trainable.safetensors"))
        optimizer = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
        state = TrainerState.from_json((folder / "trainer_state.json").read_text())
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: cannot read checkpoint: {exc}") from exc
    return LoadedCheckpoint(folder, trainable, optimizer, state)


def load_rng(folder: Path, rank: int) -> None:
    path = folder / f"rng_rank{rank}.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; was the run saved with a different world size?")
    set_rng_state(torch.load(path, map_location="cpu", weights_only=True))
