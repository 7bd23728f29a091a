"""Typed configs of a video LLM. Saved as ``vidlm_config.json`` beside every checkpoint.

The connector config is polymorphic: each connector registers its own dataclass
(a subclass of :class:`vidlm.model.connectors.base.ConnectorConfig`) under its
``name``; :meth:`VideoLMConfig.from_dict` resolves it through the registry.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidlm.config import apply_overrides, from_dict, to_dict
from vidlm.errors import ConfigError

CONFIG_NAME = "vidlm_config.json"


@dataclass
class SamplingConfig:
    """How frames are chosen from a video (see :mod:`vidlm.video.sampling`).

    ``mode="fps"``: ``fps`` frames per second, falling back to ``max_frames`` uniform
    frames when that would be more (SlowFast-LLaVA-1.5's policy).
    ``mode="uniform"``: ``num_frames`` frames at the middles of equal segments.
    """

    mode: Literal["fps", "uniform"] = "uniform"
    fps: float = 1.0
    max_frames: int = 64
    num_frames: int = 32


@dataclass
class VisionTowerConfig:
    """A frozen ``transformers`` image encoder.

    ``feature_layer``: hidden-state index to take (LLaVA uses -2, the second-to-last).
    ``feature_kind``: ``"patch"`` drops the CLS token; ``"cls_patch"`` keeps it.
    ``chunk_size``: frames per forward pass, bounding activation memory.
    ``image_size``/``mean``/``std``: preprocessing of frames into pixel values.
    """

    name_or_path: str = "openai/clip-vit-large-patch14-336"
    feature_layer: int = -2
    feature_kind: Literal["patch", "cls_patch"] = "patch"
    frozen: bool = True
    chunk_size: int = 16
    image_size: int = 336
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resize: Literal["pad", "crop", "stretch"] = "pad"


@dataclass
class LanguageModelConfig:
    """Any ``transformers`` causal LM, from a hub id, a local folder, or a GGUF file in one."""

    name_or_path: str = "Qwen/Qwen2.5-0.5B-Instruct"
    gguf_file: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_context: int | None = None  # None: the model's own max_position_embeddings
    # a peft LoRA adapter folder inside the checkpoint, merged into the referenced LM at
    # load (checkpoints that leave the LM out: the adapter ships, the LM does not)
    adapter: str | None = None


@dataclass
class ContextPolicy:
    """What to do when text + visual tokens exceed the context.

    ``"error"``: raise :class:`vidlm.errors.ContextLengthError` (default).
    ``"drop_frames"``: resample with fewer frames until it fits; reported, never silent.
    Visual tokens are never truncated.
    """

    on_overflow: Literal["error", "drop_frames"] = "error"
    reserve_new_tokens: int = 256


@dataclass
class VideoLMConfig:
    """The whole model: vision tower -> connector -> language model, plus sampling."""

    vision_tower: VisionTowerConfig = field(default_factory=VisionTowerConfig)
    connector: Any = field(default_factory=lambda: _default_connector())  # a ConnectorConfig
    language_model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    context: ContextPolicy = field(default_factory=ContextPolicy)
    placeholder_token: str = "<|vidlm_visual|>"
    vidlm_version: str = "0.1.0"

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> VideoLMConfig:
        from vidlm.model.connectors import connector_config_from_dict

        data = dict(data)
        conn = data.pop("connector", None)
        cfg = from_dict(cls, data, where=where)
        cfg.connector = connector_config_from_dict(conn or {"name": "mlp2x_gelu"},
                                                   where=f"{where}.connector")
        return cfg

    def with_overrides(self, overrides: list[str]) -> VideoLMConfig:
        """A copy with ``a.b=value`` overrides applied.

        ``connector.name=slowfast`` switches the connector type; the other
        ``connector.*`` overrides then apply to the new type's defaults.
        """
        data = apply_overrides(self.to_dict(), overrides)
        if any(o.startswith("connector.name=") for o in overrides):
            name = data["connector"]["name"]
            data["connector"] = {"name": name, **_known_overrides(overrides, "connector.")}
        return VideoLMConfig.from_dict(data, where="override")

    def save(self, folder: str | Path) -> None:
        Path(folder, CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> VideoLMConfig:
        path = Path(folder, CONFIG_NAME)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read vidlm config: {exc}") from exc
        return cls.from_dict(data, where=str(path))


def _default_connector() -> Any:
    from vidlm.model.connectors import connector_config_from_dict

    return connector_config_from_dict({"name": "mlp2x_gelu"})


def _known_overrides(overrides: list[str], prefix: str) -> dict[str, Any]:
    from vidlm.config import parse_override

    out: dict[str, Any] = {}
    for o in overrides:
        if o.startswith(prefix) and not o.startswith(prefix + "name="):
            keys, value = parse_override(o[len(prefix):])
            out[keys[0]] = value
    return out


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)
