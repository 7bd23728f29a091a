"""Video -> visual tokens through the feature cache (shared by chat, batch, server, demo).

A hit skips both decoding and the vision tower + connector: the cached entry holds
the connector output ``tokens`` (L, D_lm), the sampled frames' ``timestamps`` (T,)
and ``indices`` (T,), and small ``thumbs`` (T, h, w, 3) uint8 (longest side
:data:`THUMB_SIDE` px) so frame grids can be drawn without decoding. On a hit the
returned ``VisualTokens.frames`` therefore holds thumbnails, not full frames.

Cache keys name the vision tower and the connector by a fingerprint of their
config *and* weights (shapes plus a sample of each parameter's values), so two
random-weight models with one config never share entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from vidlm.feature_cache import FeatureCache
from vidlm.model.config import SamplingConfig
from vidlm.video.frames import Frames

if TYPE_CHECKING:
    from vidlm.model.videolm import VideoLM, VisualTokens

THUMB_SIDE = 160
FINGERPRINT_SAMPLE = 4096


def module_fingerprint(module: torch.nn.Module, config: Any = None) -> str:
    """A short hex id of ``module``'s config and weights (shapes + first values of each)."""
    digest = hashlib.sha256(json.dumps(_jsonable(config), sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().reshape(-1)[:FINGERPRINT_SAMPLE].to("cpu", torch.float32)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(flat.numpy().tobytes())
    return digest.hexdigest()[:24]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def thumbnails(frames: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, h, w, 3) uint8 with max(h, w) <= ``side``."""
    t, h, w, _ = frames.shape
    scale = min(1.0, side / max(h, w, 1))
    if scale == 1.0:
        return frames.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames]) \
        if t else np.zeros((0, size[1], size[0], 3), np.uint8)


class CachedEncoder:
    """``encode(path, sampling)`` with an optional :class:`FeatureCache` in front of the model."""

    def __init__(self, model: VideoLM, cache: FeatureCache | None = None) -> None:
        self.model = model
        self.cache = cache
        self._tower_id: str | None = None
        self._connector_id: str | None = None

    def ids(self) -> tuple[str, str]:
        """(tower id, connector id), computed once; call :meth:`refresh` after changing weights."""
        if self._tower_id is None or self._connector_id is None:
            m = self.model
            self._tower_id = module_fingerprint(m.vision_tower, m.config.vision_tower)
            self._connector_id = module_fingerprint(m.connector, m.config.connector)
        return self._tower_id, self._connector_id

    def refresh(self) -> None:
        self._tower_id = self._connector_id = None

    def sampling_for(self, sampling: SamplingConfig | None) -> SamplingConfig:
        return sampling if sampling is not None else self.model.config.sampling

    def cache_key(self, path: str | Path, sampling: SamplingConfig | None) -> str | None:
        if self.cache is None:
            return None
        tower, connector = self.ids()
        return self.cache.key(path, self.sampling_for(sampling), tower, connector)

    def lookup(self, path: str | Path, sampling: SamplingConfig | None) -> VisualTokens | None:
        """The cached tokens of ``path`` under ``sampling``, or ``None``.

        A path that is not a readable file is a miss, so the decoder reports it properly.
        """
        if self.cache is None or not Path(path).is_file():
            return None
        key = self.cache_key(path, sampling)
        if key is None or self.cache is None:
            return None
        hit = self.cache.get_with_meta(key)
        return None if hit is None else _from_entry(*hit)

    def encode(self, path: str | Path, sampling: SamplingConfig | None = None, *,
               decode: Callable[[], Frames] | None = None) -> VisualTokens:
        """Tokens for ``path``; ``decode`` (optional) supplies already-decoded frames on a miss."""
        cached = self.lookup(path, sampling)
        if cached is not None:
            return cached
        sampling = self.sampling_for(sampling)
        source: str | Path | Frames = decode() if decode is not None else path
        with torch.inference_mode():
            visual = self.model.encode_video(source, sampling=sampling)
        key = self.cache_key(path, sampling)
        if key is not None and self.cache is not None:
            self.cache.put(key, _to_entry(visual), {"num_frames": int(visual.num_frames),
                                                    "source": Path(path).name})
        return visual


def _to_entry(visual: VisualTokens) -> dict[str, torch.Tensor]:
    frames = visual.frames
    return {
        "tokens": visual.tokens.detach().to("cpu").contiguous(),
        "timestamps": torch.from_numpy(np.ascontiguousarray(frames.timestamps, np.float64)),
        "indices": torch.from_numpy(np.ascontiguousarray(frames.indices, np.int64)),
        "thumbs": torch.from_numpy(np.ascontiguousarray(thumbnails(frames.frames))),
    }


def _from_entry(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> VisualTokens:
    from vidlm.model.videolm import VisualTokens

    frames = Frames(tensors["thumbs"].numpy(), tensors["timestamps"].numpy(),
                    tensors["indices"].numpy())
    return VisualTokens(tokens=tensors["tokens"], frames=frames,
                        num_frames=int(meta.get("num_frames", len(frames))))
