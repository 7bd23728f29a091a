"""Provenance for ``metrics.json``: everything that can move a score, written down."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import vidlm

HASHED_SUFFIXES = (".safetensors", ".gguf", ".json", ".jsonl", ".csv", ".model", ".txt")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_hash(path: str | Path | None) -> str | None:
    """sha256 over (relative name, file sha256) of a checkpoint folder's weight/config
    files, or of one file; None when the model is not a local path."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in HASHED_SUFFIXES):
        digest.update(f"{f.relative_to(path).as_posix()}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def git_commit() -> dict[str, Any]:
    """The commit of the vidlm source tree in use, and whether it has local changes."""
    root = Path(vidlm.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=root,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _as_dict(obj: Any) -> Any:
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return repr(obj)


def model_description(model: Any, model_id: str, checkpoint: str | Path | None) -> dict[str, Any]:
    """Model id, checkpoint hash, class, connector, vision resolution and LM of ``model``."""
    config = getattr(model, "config", None)
    vision = getattr(config, "vision_tower", None)
    lm = getattr(config, "language_model", None)
    return {
        "id": model_id,
        "checkpoint_sha256": checkpoint_hash(checkpoint),
        "language_model_sha256": _language_model_hash(lm, checkpoint),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "connector": _as_dict(getattr(config, "connector", None)),
        "language_model": _as_dict(lm),
        "resolution": None if vision is None else {
            "image_size": vision.image_size, "resize": vision.resize,
            "vision_tower": vision.name_or_path},
    }


def _language_model_hash(lm: Any, checkpoint: str | Path | None) -> str | None:
    """The LM's own hash when it lives outside the checkpoint (a local folder or GGUF)."""
    source = getattr(lm, "name_or_path", None)
    if not source:
        return None
    from vidlm.errors import VidlmError
    from vidlm.model.language_model import resolve_source

    try:  # resolves package:NAME to the package folder; a hub id stays an id
        path = Path(resolve_source(str(source)))
    except VidlmError:
        return None
    if not path.exists():
        return None
    if checkpoint is not None and path.resolve() == Path(checkpoint).resolve():
        return None
    gguf = getattr(lm, "gguf_file", None)
    return checkpoint_hash(path / gguf if gguf and path.is_dir() else path)


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run_provenance(*, model: dict[str, Any], sampling: Any, template: Any,
                   scoring: dict[str, Any], annotations: Path, videos: Path) -> dict[str, Any]:
    ann_hash = checkpoint_hash(annotations)
    return {
        "model": model,
        "sampling": _as_dict(sampling),
        "prompt_template": _as_dict(template),
        "scoring": scoring,
        "annotations": {"path": str(annotations), "sha256": ann_hash},
        "videos": str(videos),
        "vidlm_version": vidlm.__version__,
        "git": git_commit(),
        "date": now_utc(),
    }
