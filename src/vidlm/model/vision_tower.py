"""The vision tower: a (frozen) ``transformers`` image encoder run over frames in chunks.

:class:`VisionTower` wraps any vision encoder whose forward takes ``pixel_values`` and
returns ``hidden_states`` (CLIP, SigLIP, ViT, ... or the ``.vision_model`` of a composite
CLIP/SigLIP checkpoint). It turns uint8 frames into normalised pixels
(:meth:`VisionTower.preprocess`) and pixels into per-frame features
(:meth:`VisionTower.forward`), taking the hidden state ``config.feature_layer``
and dropping or keeping the CLS token (``config.feature_kind``).

Subclasses (e.g. checkpoint interop) override :meth:`VisionTower.select_features`
to change which hidden states become features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidlm.errors import ConfigError, ModelNotFoundError
from vidlm.model.config import VisionTowerConfig


class VisionTower(nn.Module):
    """Frames ``(T, 3, S, S)`` -> features ``(T, N, D)`` with ``N = h*w`` or ``1 + h*w``."""

    def __init__(self, config: VisionTowerConfig, *, encoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        enc_cfg = encoder.config
        self.hidden_size: int = int(enc_cfg.hidden_size)
        self.patch_size: int = int(enc_cfg.patch_size)
        self.has_cls: bool = _has_cls_token(encoder)
        if config.image_size < self.patch_size:  # the patch convolution floors: 384 / 14 -> 27
            raise ConfigError(f"vision_tower.image_size {config.image_size} is smaller than "
                              f"the encoder's patch size {self.patch_size}")
        native = int(getattr(enc_cfg, "image_size", config.image_size))
        if native != config.image_size:
            raise ConfigError(f"vision_tower.image_size is {config.image_size} but the encoder "
                              f"{config.name_or_path!r} was built for {native} px")
        if config.feature_kind == "cls_patch" and not self.has_cls:
            raise ConfigError(f"vision_tower.feature_kind='cls_patch' but {config.name_or_path!r} "
                              "has no CLS token (e.g. SigLIP); use 'patch'")
        side = config.image_size // self.patch_size
        self.grid: tuple[int, int] = (side, side)
        if config.frozen:
            self.freeze()

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, config: VisionTowerConfig, *,
                        dtype: torch.dtype = torch.float32) -> VisionTower:
        """Load ``config.name_or_path`` (a local folder or a cached hub id), never remote code."""
        from transformers import AutoModel

        from vidlm.model.language_model import not_found_message, resolve_source

        source = resolve_source(config.name_or_path, what="vision tower")
        try:
            model = AutoModel.from_pretrained(source, dtype=dtype, trust_remote_code=False)
        except (OSError, ValueError) as exc:  # missing files, repos, network; unknown configs
            if Path(source).exists():
                raise ModelNotFoundError(f"{source}: no loadable transformers vision model "
                                         f"there ({str(exc).splitlines()[0]})") from exc
            raise ModelNotFoundError(not_found_message(config.name_or_path,
                                                       what="vision tower")) from exc
        return cls(config, encoder=vision_part(model))

    @classmethod
    def from_encoder_config(cls, config: VisionTowerConfig, encoder_config: object, *,
                            dtype: torch.dtype = torch.float32) -> VisionTower:
        """A tower with freshly initialised weights for a ``transformers`` vision config."""
        from transformers import AutoModel

        model = AutoModel.from_config(encoder_config, dtype=dtype)
        return cls(config, encoder=vision_part(model))

    def freeze(self) -> None:
        """No gradients, eval mode (dropout off); :meth:`train` keeps a frozen tower in eval."""
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> VisionTower:
        super().train(mode)
        if self.config.frozen:
            self.encoder.eval()
        return self

    @property
    def num_patches(self) -> int:
        """``N``, features per frame under ``config.feature_kind``."""
        h, w = self.grid
        return h * w + int(self.config.feature_kind == "cls_patch")

    @property
    def outputs_cls(self) -> bool:
        return self.config.feature_kind == "cls_patch"

    # ---- preprocessing --------------------------------------------------------------------

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames ``(T, H, W, 3)`` -> normalised float32 pixels ``(T, 3, S, S)``."""
        x = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) \
            else frames
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got shape {tuple(x.shape)}")
        device = next(self.encoder.parameters()).device
        mean = torch.tensor(self.config.mean, device=device).view(1, 3, 1, 1)  # fp32 always
        std = torch.tensor(self.config.std, device=device).view(1, 3, 1, 1)
        x = x.to(device).permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, H, W)
        x = _to_square(x, self.config.image_size, self.config.resize, mean)
        return (x - mean) / std

    # ---- features -------------------------------------------------------------------------

    def select_features(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Hidden states (each ``(t, 1 + h*w | h*w, D)``) -> features ``(t, N, D)``."""
        feats = hidden_states[self.config.feature_layer]
        if self.has_cls and self.config.feature_kind == "patch":
            feats = feats[:, 1:]
        return feats

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(T, 3, S, S)`` -> ``(T, N, D)``, ``config.chunk_size`` frames per encoder pass."""
        param = next(self.encoder.parameters())
        outs = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.frozen):
            for start in range(0, pixels.shape[0], self.config.chunk_size):
                chunk = pixels[start:start + self.config.chunk_size].to(param.device, param.dtype)
                out = self.encoder(pixel_values=chunk, output_hidden_states=True)
                outs.append(self.select_features(out.hidden_states))
        return torch.cat(outs, dim=0)


def vision_part(model: nn.Module) -> nn.Module:
    """The image encoder of ``model``: itself, or ``.vision_model`` of a CLIP/SigLIP pair."""
    if hasattr(model, "vision_model") and (hasattr(model, "text_model")
                                           or hasattr(model.config, "vision_config")):
        return model.vision_model
    return model


def _has_cls_token(encoder: nn.Module) -> bool:
    """CLIP-like (``class_embedding``) and ViT-like (``cls_token``) encoders lead with CLS."""
    return any(hasattr(m, "class_embedding") or isinstance(getattr(m, "cls_token", None),
                                                           nn.Parameter)
               for m in encoder.modules())


def _to_square(x: torch.Tensor, size: int, mode: str, fill: torch.Tensor) -> torch.Tensor:
    """``(T, 3, H, W)`` -> ``(T, 3, size, size)``.

    ``pad``: pad the short side with the mean colour to a square, then resize (LLaVA's
    ``expand2square``). ``crop``: resize the short side to ``size``, centre-crop.
    ``stretch``: resize both sides to ``size``.
    """
    _, _, h, w = x.shape
    if mode == "pad" and h != w:
        side = max(h, w)
        canvas = fill.to(x.dtype).expand(x.shape[0], 3, side, side).clone()
        top, left = (side - h) // 2, (side - w) // 2
        canvas[:, :, top:top + h, left:left + w] = x
        x = canvas
    elif mode == "crop" and h != w:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = _resize(x, nh, nw)
        top, left = (nh - size) // 2, (nw - size) // 2
        return x[:, :, top:top + size, left:left + size]
    return _resize(x, size, size)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)
