"""A map-style dataset of LLaVA conversations that decodes and samples media on the fly.

``dataset[i]`` runs in a DataLoader worker: it reads the record's videos/images with
:func:`vidlm.video.read` under the model's sampling config, as uint8 frames (4x smaller
than float pixels to pass between processes, and no CUDA in forked workers); the
recipe applies the model's ``preprocess`` on the model's device. With a
:class:`~vidlm.feature_cache.FeatureCache` it first looks up precomputed vision-tower
features (keyed by content hash, sampling config and tower) and skips decoding on a hit.

A record that cannot be loaded (missing or corrupt media) becomes a :class:`Skipped`
item instead of raising, so one bad file never kills a run; the collator drops it
and the recipe logs and counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidlm.data.schema import Record
from vidlm.errors import VidlmError


@dataclass
class Visual:
    """One visual input: decoded uint8 ``frames (T, H, W, 3)`` or cached ``features (T, N, D)``.

    ``cache_key`` is set when a feature cache is in use and the features still have
    to be computed (a miss); the recipe stores them under that key.
    """

    num_frames: int
    frames: torch.Tensor | None = None
    features: torch.Tensor | None = None
    cache_key: str | None = None


@dataclass
class Example:
    id: str
    messages: list[dict[str, str]]
    visuals: list[Visual] = field(default_factory=list)


@dataclass
class Skipped:
    """A record that could not be loaded, and why."""

    id: str
    reason: str


class ConversationDataset(Dataset):
    """``records`` with media under ``media_root``; items are :class:`Example` | :class:`Skipped`.

    ``sampling``: the model's :class:`~vidlm.model.config.SamplingConfig` (images are
    one frame). ``decode_size``: the short side to decode at (aspect kept; the tower's
    input side), so full-resolution frames never fill the workers' memory; the model's
    ``preprocess`` then pads/crops to the tower's square exactly as at inference.
    ``feature_cache``/``tower_id``: optional precomputed vision features.
    """

    def __init__(self, records: Sequence[Record], *, media_root: str | Path, sampling: Any,
                 decode_size: int | None = None,
                 feature_cache: Any | None = None, tower_id: str | None = None) -> None:
        if feature_cache is not None and not tower_id:
            raise ValueError("a feature cache needs the vision tower's id")
        self.records = list(records)
        self.media_root = Path(media_root)
        self.sampling = sampling
        self.decode_size = decode_size
        self.feature_cache = feature_cache
        self.tower_id = tower_id

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Example | Skipped:
        record = self.records[index]
        try:
            visuals = [self._load(ref.resolve(self.media_root), ref.kind) for ref in record.media]
        except VidlmError as exc:
            return Skipped(record.id, f"line {record.line}: {exc}")
        return Example(record.id, record.messages(), visuals)

    def _load(self, path: Path, kind: str) -> Visual:
        sampling = self._sampling_for(kind)
        key = None
        if self.feature_cache is not None:
            key = self.feature_cache.key(path, sampling, self.tower_id)
            hit = self.feature_cache.get(key)
            if hit is not None:
                feats = hit["features"]
                return Visual(num_frames=int(feats.shape[0]), features=feats)
        frames = torch.from_numpy(np.ascontiguousarray(self._decode(path, sampling)))
        return Visual(num_frames=int(frames.shape[0]), frames=frames, cache_key=key)

    def _sampling_for(self, kind: str) -> Any:
        from vidlm.model.config import SamplingConfig

        if kind == "image":
            return SamplingConfig(mode="uniform", num_frames=1)
        return self.sampling

    def _decode(self, path: Path, sampling: Any) -> np.ndarray:
        from vidlm import video

        frames = video.read(path, video.policy_from_config(sampling), size=self.decode_size)
        return frames.frames
