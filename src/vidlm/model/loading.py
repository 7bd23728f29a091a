"""``vidlm.load``: one entry point for vidlm checkpoints and public ``transformers`` ones.

* A folder with ``vidlm_config.json`` -> :meth:`VideoLM.from_pretrained`.
* Anything else (a llava-hf folder) -> :func:`vidlm.model.hf_interop.load_hf_checkpoint`.
* A hub id is taken from the local Hugging Face cache, else downloaded (configs and
  safetensors only) unless offline; then it is one of the two above. When it is
  neither local nor downloadable: :class:`ModelNotFoundError`, one sentence naming the
  id and how to fetch it on a connected machine.

Load-time changes, training-free: ``connector=`` switches the connector (a registered
name, a preset name such as ``slowfast_llava_2024`` which also sets the sampling, a
``ConnectorConfig`` or a dict), ``sampling=`` replaces the frame sampling, and
``overrides=["a.b=value", ...]`` sets any config field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from vidlm.errors import ConfigError
from vidlm.model.config import SamplingConfig, VideoLMConfig
from vidlm.model.language_model import PACKAGE_PREFIX, resolve_source


def load(name_or_path: str | Path, *, connector: Any = None, sampling: Any = None,
         overrides: list[str] | tuple[str, ...] = (), dtype: str | None = None,
         device: str | torch.device | None = None, **kwargs: Any) -> Any:
    """A ready :class:`~vidlm.model.videolm.VideoLM` for ``name_or_path`` (see module doc)."""
    from vidlm.model.checkpoint import is_vidlm_checkpoint

    name = str(name_or_path)
    if name.startswith(PACKAGE_PREFIX) or Path(name).expanduser().exists():
        source = resolve_source(name, what="model")
    else:  # a hub id: the local cache, else a download (unless offline)
        from vidlm.model.hf_interop import resolve_checkpoint

        source = str(resolve_checkpoint(name))
    if Path(source).is_dir() and is_vidlm_checkpoint(source):
        if kwargs:
            raise ConfigError(f"unknown load option(s) {sorted(kwargs)} for a vidlm checkpoint")
        from vidlm.model.videolm import VideoLM

        return VideoLM.from_pretrained(source, connector=connector, sampling=sampling,
                                       overrides=overrides, dtype=dtype, device=device)
    from vidlm.model import hf_interop

    return hf_interop.load_hf_checkpoint(source, connector=connector, sampling=sampling,
                                         overrides=list(overrides), dtype=dtype, device=device,
                                         **kwargs)


def configure(config: VideoLMConfig, *, connector: Any = None, sampling: Any = None,
              overrides: list[str] | tuple[str, ...] = ()) -> VideoLMConfig:
    """``config`` with a different connector / sampling / ``a.b=value`` overrides applied."""
    config = copy.deepcopy(config)
    if overrides:
        config = config.with_overrides(list(overrides))
    if connector is not None:
        config.connector, preset_sampling = connector_from_option(connector)
        if preset_sampling is not None and sampling is None:
            config.sampling = preset_sampling
    if sampling is not None:
        config.sampling = sampling_from_option(sampling)
    return config


def connector_from_option(option: Any) -> tuple[Any, SamplingConfig | None]:
    """``(ConnectorConfig, preset sampling or None)`` for a name, preset, dict or config."""
    from vidlm.model.connectors import (
        ConnectorConfig,
        available_connectors,
        available_presets,
        connector_config_from_dict,
        get_preset,
    )

    if isinstance(option, ConnectorConfig):
        return option, None
    if isinstance(option, dict):
        return connector_config_from_dict(option), None
    if isinstance(option, str):
        if option in available_connectors():
            return connector_config_from_dict({"name": option}), None
        if option in available_presets():
            preset = get_preset(option)
            return preset.connector, preset.sampling
        raise ConfigError(f"unknown connector {option!r}; connectors: {available_connectors()}, "
                          f"presets: {available_presets()}")
    raise ConfigError(f"connector must be a name, a dict or a ConnectorConfig, got "
                      f"{type(option).__name__}")


def sampling_from_option(option: Any) -> SamplingConfig:
    from vidlm.config import from_dict

    if isinstance(option, SamplingConfig):
        return option
    if isinstance(option, dict):
        return from_dict(SamplingConfig, option, where="sampling")
    raise ConfigError(f"sampling must be a SamplingConfig or a dict, got {type(option).__name__}")


def build_videolm(config: VideoLMConfig, *, dtype: str | None = None,
                  device: str | torch.device | None = None) -> Any:
    """A new model from its parts' sources: the pretrained vision tower named by
    ``config.vision_tower.name_or_path``, the pretrained LM of ``config.language_model``,
    and a freshly initialised connector (the start of stage-1 training)."""
    from vidlm.model.language_model import load_language_model, torch_dtype
    from vidlm.model.videolm import VideoLM
    from vidlm.model.vision_tower import VisionTower

    config = copy.deepcopy(config)
    if dtype is not None:
        config.language_model.dtype = dtype
    torch_type = torch_dtype(config.language_model.dtype)
    tower = VisionTower.from_pretrained(config.vision_tower, dtype=torch_type)
    language_model, tokenizer = load_language_model(config.language_model)
    model = VideoLM.from_parts(config, vision_encoder=tower.encoder,
                               language_model=language_model, tokenizer=tokenizer)
    if device is not None:
        model.to(device)
    return model.eval()
