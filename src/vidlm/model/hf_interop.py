"""Public ``transformers`` checkpoints -> :class:`vidlm.model.videolm.VideoLM`.

Supported formats, recognised by ``config.json``'s ``architectures`` (never by the
checkpoint's name), with ``model_type`` cross-checked:

============================================  ==================  ======================
architecture                                  vidlm connector     placeholder
============================================  ==================  ======================
``LlavaForConditionalGeneration``             ``mlp2x_gelu``      ``image_token_index``
``LlavaOnevisionForConditionalGeneration``    ``onevision``       ``video_token_index``
``LlavaNextVideoForConditionalGeneration``    ``llava_next_video``  ``video_token_index``
============================================  ==================  ======================

The weights (safetensors only) are split by name into the vision encoder, the
projector (``multi_modal_projector.linear_1/linear_2``), the format's extra connector
weights (OneVision's ``image_newline``, NeXT-Video's ``vision_resampler``) and the
language model. The vision encoder and the language model are ``transformers``' own
classes built from the checkpoint's ``vision_config`` / ``text_config`` and loaded by
name; a missing weight, or one that belongs to no known part, is an error. Both the current layout
(``model.vision_tower.*``, ``model.language_model.*``, ``lm_head.*``) and the llava-hf
hub layout (``vision_tower.*``, ``language_model.model.*``, ``language_model.lm_head.*``)
load.

``connector=`` swaps the format's connector for any registered one (e.g. ``"slowfast"``
or a preset name) that reuses the checkpoint's projector: the training-free way to run
SlowFast on an image/video model. See ``docs/hf_interop.md`` for what maps exactly and
the limits.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vidlm.errors import ConfigError, ModelNotFoundError
from vidlm.model.config import (
    LanguageModelConfig,
    SamplingConfig,
    VideoLMConfig,
    VisionTowerConfig,
)
from vidlm.model.connectors import (
    ConnectorConfig,
    MLP2xGeluConfig,
    MLP2xGeluConnector,
    PooledConnectorConfig,
    available_presets,
    build_connector,
    connector_config_from_dict,
    connector_preset,
    get_preset,
)
from vidlm.model.connectors.llava_next_video import NextVideoConfig
from vidlm.model.connectors.onevision import OneVisionConfig, OneVisionConnector
from vidlm.model.connectors.onevision_anyres import anyres_tiles
from vidlm.model.language_model import DTYPES, hub_offline, not_found_message
from vidlm.model.vision_tower import VisionTower

log = logging.getLogger(__name__)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Files fetched for a hub id; pickled weights (*.bin, *.pt) are never fetched or read.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


class UnsupportedCheckpointError(ConfigError):
    """A checkpoint folder is not one of the supported formats, or uses an unsupported option."""


@dataclass(frozen=True)
class HFFormat:
    """What vidlm needs to know about one ``transformers`` architecture.

    ``placeholder``: which of the checkpoint's token ids marks visual input in vidlm
    (videos and images both go through one path, so one placeholder).
    ``processor_files``: preprocessing configs to read, first found wins.
    ``default_resize``: how frames become squares when no processor config says.
    """

    architecture: str
    model_type: str
    placeholder: Literal["image", "video"]
    processor_files: tuple[str, ...]
    default_resize: Literal["pad", "crop", "stretch"]
    sampling: SamplingConfig


FORMATS: dict[str, HFFormat] = {
    f.architecture: f
    for f in (
        HFFormat("LlavaForConditionalGeneration", "llava", "image",
                 ("preprocessor_config.json",), "crop",
                 SamplingConfig(mode="uniform", num_frames=8)),
        HFFormat("LlavaOnevisionForConditionalGeneration", "llava_onevision", "video",
                 ("video_preprocessor_config.json", "preprocessor_config.json"), "stretch",
                 SamplingConfig(mode="uniform", num_frames=32)),
        HFFormat("LlavaNextVideoForConditionalGeneration", "llava_next_video", "video",
                 ("video_preprocessor_config.json", "preprocessor_config.json"), "crop",
                 SamplingConfig(mode="uniform", num_frames=32)),
    )
}


# ---- entry point --------------------------------------------------------------------------


def load_hf_checkpoint(name_or_path: str | Path, *,
                       connector: str | Mapping[str, Any] | ConnectorConfig | None = None,
                       sampling: SamplingConfig | Mapping[str, Any] | None = None,
                       overrides: list[str] | tuple[str, ...] = (),
                       dtype: str | None = None,
                       device: str | torch.device | None = None) -> Any:
    """A :class:`VideoLM` for a LLaVA-1.5 / LLaVA-OneVision / LLaVA-NeXT-Video checkpoint.

    ``name_or_path``: a local folder or a hub id (from the local cache, else downloaded
    unless offline).
    ``connector``: ``None`` for the checkpoint's own connector, else a registered
    connector name, preset name, dict or config that reuses the checkpoint's projector.
    ``sampling``: frame sampling (default: the preset's when ``connector`` names a
    preset, else the format's). ``overrides``: ``a.b=value`` changes to the resulting
    :class:`VideoLMConfig` (e.g. ``vision_tower.chunk_size=8``). ``dtype``:
    ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
    """
    from transformers import AutoConfig

    from vidlm.model.videolm import VideoLM

    dtype = dtype or "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; known: {sorted(DTYPES)}")
    torch_dtype = DTYPES[dtype]
    folder = resolve_checkpoint(str(name_or_path))
    fmt = detect_format(folder)
    hf_config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    parts = split_state_dict(read_safetensors(folder), where=folder)
    encoder = build_vision_encoder(hf_config, parts["vision"], where=folder, dtype=torch_dtype)
    language_model = build_language_model(hf_config, parts["language_model"], where=folder,
                                          dtype=torch_dtype)
    tokenizer = load_tokenizer(folder)

    if sampling is None and isinstance(connector, str) and connector in available_presets():
        sampling = get_preset(connector).sampling  # a preset brings its published sampling
    config = VideoLMConfig(
        vision_tower=vision_tower_config(hf_config, encoder, folder=folder, fmt=fmt),
        connector=connector_config_for(fmt, hf_config, connector),
        language_model=LanguageModelConfig(name_or_path=str(name_or_path), dtype=dtype),
        sampling=_sampling(sampling, fmt),
        placeholder_token=placeholder_token(hf_config, tokenizer, fmt, where=folder),
    )
    if overrides:
        config = config.with_overrides(list(overrides))
        config.connector = connector_config_for(fmt, hf_config, config.connector)
    vision_tower = VisionTower(config.vision_tower, encoder=encoder)
    conn = build_hf_connector(config.connector, parts, hf_config, fmt=fmt,
                              vision_dim=vision_tower.hidden_size,
                              lm_dim=int(hf_config.text_config.hidden_size), where=folder)
    model = VideoLM(config, vision_tower=vision_tower, connector=conn.to(torch_dtype),
                    language_model=language_model, tokenizer=tokenizer)
    if device is not None:
        model.to(device)
    return model.eval()


# ---- finding and reading the checkpoint ---------------------------------------------------


def resolve_checkpoint(name_or_path: str) -> Path:
    """A local folder for ``name_or_path``: the folder itself, or the hub snapshot.

    A hub id comes from the local Hugging Face cache; when it is not cached it is
    downloaded (configs, tokenizer files and safetensors only, never pickles) unless
    ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set. Otherwise
    :class:`ModelNotFoundError` says in one sentence how to get the model.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise UnsupportedCheckpointError(f"{path}: expected a checkpoint folder, found a file")
    if not _looks_like_hub_id(name_or_path):
        raise ModelNotFoundError(not_found_message(name_or_path, what="model"))
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, allow_patterns=HUB_PATTERNS,
                                      local_files_only=True))
    except Exception:  # not (fully) in the local cache; the reason does not help the user
        if hub_offline():
            raise ModelNotFoundError(not_found_message(name_or_path, what="model")) from None
    try:
        return Path(snapshot_download(name_or_path, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # no network, unknown or gated repo, ...
        raise ModelNotFoundError(
            f"the model {name_or_path!r} is not in the local Hugging Face cache and downloading "
            f"it failed ({type(exc).__name__}): run `huggingface-cli download {name_or_path}` "
            "on a connected machine, copy the folder over and pass its path instead") from None


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~", "/"))


def detect_format(folder: Path) -> HFFormat:
    """The supported format named by ``folder/config.json``'s ``architectures``."""
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UnsupportedCheckpointError(f"{path}: cannot read the model config: {exc}") from exc
    archs = raw.get("architectures") or []
    known = [a for a in archs if a in FORMATS]
    if not known:
        raise UnsupportedCheckpointError(
            f"{path}: architectures {archs} are not supported; vidlm loads {sorted(FORMATS)}")
    fmt = FORMATS[known[0]]
    if raw.get("model_type") != fmt.model_type:
        raise UnsupportedCheckpointError(
            f"{path}: architecture {fmt.architecture} needs model_type {fmt.model_type!r}, "
            f"found {raw.get('model_type')!r}")
    return fmt


def read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of ``folder``'s safetensors weights (sharded or not); never pickles."""
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise UnsupportedCheckpointError(f"{index}: not a safetensors index: {exc}") from exc
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(
            p.name for p in folder.glob("*.pt"))
        reason = (f"holds only pickled weights ({', '.join(pickled)}); vidlm loads safetensors "
                  "only (convert them with transformers' save_pretrained(safe_serialization="
                  "True) where you trust the file)") if pickled else "holds no model.safetensors"
        raise UnsupportedCheckpointError(f"{folder}: {reason}")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        path = folder / name
        if not path.is_file():
            raise UnsupportedCheckpointError(f"{path}: weight shard listed in the index is missing")
        state.update(load_file(str(path)))
    return state


# Checkpoint key prefixes -> (part, prefix inside that part). The current transformers
# layout and the llava-hf hub layout; the first match wins.
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("model.vision_tower.", "vision", ""),
    ("vision_tower.", "vision", ""),
    ("model.multi_modal_projector.", "projector", ""),
    ("multi_modal_projector.", "projector", ""),
    ("model.vision_resampler.", "resampler", ""),
    ("vision_resampler.", "resampler", ""),
    ("model.image_newline", "newline", "image_newline"),
    ("image_newline", "newline", "image_newline"),
    ("model.language_model.", "language_model", "model."),
    ("language_model.model.", "language_model", "model."),
    ("language_model.lm_head.", "language_model", "lm_head."),
    ("lm_head.", "language_model", "lm_head."),
)
PARTS = ("vision", "projector", "resampler", "newline", "language_model")


def split_state_dict(state: Mapping[str, torch.Tensor], *,
                     where: Path | str) -> dict[str, dict[str, torch.Tensor]]:
    """A checkpoint's tensors grouped by part, with keys as each part's module names them."""
    parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in PARTS}
    unknown = []
    for key, tensor in state.items():
        for prefix, part, inner in _PREFIXES:
            if key.startswith(prefix):
                parts[part][inner + key[len(prefix):]] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise UnsupportedCheckpointError(
            f"{where}: {len(unknown)} weight(s) belong to no known part, e.g. {unknown[:3]}")
    return parts


# ---- the parts ----------------------------------------------------------------------------


def _from_state_dict(model_class: Any, config: Any, state: dict[str, torch.Tensor], *,
                     what: str, where: Path | str, dtype: torch.dtype) -> Any:
    """``model_class`` for ``config`` with exactly ``state``'s weights (by name)."""
    try:
        model, info = model_class.from_pretrained(None, config=copy.deepcopy(config),
                                                  state_dict=state, dtype=dtype,
                                                  output_loading_info=True)
    except RuntimeError as exc:  # a weight of the wrong shape
        raise UnsupportedCheckpointError(f"{where}: the {what} weights do not fit "
                                         f"{model_class.__name__}: {exc}") from exc
    problems = {k: sorted(info[k])[:5] for k in ("missing_keys", "unexpected_keys",
                                                 "mismatched_keys") if info.get(k)}
    if problems:
        raise UnsupportedCheckpointError(f"{where}: the {what} weights do not fit "
                                         f"{model_class.__name__} (first of each): {problems}")
    return model.eval()


def build_vision_encoder(hf_config: Any, state: dict[str, torch.Tensor], *, where: Path | str,
                         dtype: torch.dtype) -> Any:
    """``transformers``' own vision encoder (CLIP, SigLIP, ...) with the checkpoint's weights."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    vision_config = hf_config.vision_config
    try:
        encoder_class = MODEL_MAPPING[type(vision_config)]
    except KeyError as exc:
        raise UnsupportedCheckpointError(
            f"{where}: no transformers model for vision config "
            f"{type(vision_config).__name__}") from exc
    return _from_state_dict(encoder_class, vision_config, state, what="vision tower",
                            where=where, dtype=dtype)


def vision_tower_config(hf_config: Any, encoder: Any, *, folder: Path,
                        fmt: HFFormat) -> VisionTowerConfig:
    """The :class:`VisionTowerConfig` that selects the features the checkpoint selects.

    ``vision_feature_layer`` -> ``feature_layer``; ``vision_feature_select_strategy``
    ``"default"`` (drop the first token, the CLS) -> ``"patch"``, ``"full"`` -> keep all
    tokens (``"cls_patch"`` with a CLS token, ``"patch"`` without one).
    """
    layer = hf_config.vision_feature_layer
    if not isinstance(layer, int):
        raise UnsupportedCheckpointError(
            f"{folder}: vision_feature_layer {layer!r} concatenates several layers; vidlm's "
            "vision tower takes one layer")
    mean, std, resize = preprocessing(folder, fmt)
    config = VisionTowerConfig(name_or_path=str(folder), feature_layer=layer,
                               feature_kind="patch", frozen=True,
                               image_size=int(hf_config.vision_config.image_size),
                               mean=mean, std=std, resize=resize)
    has_cls = VisionTower(config, encoder=encoder).has_cls
    strategy = hf_config.vision_feature_select_strategy
    if strategy == "default" and not has_cls:
        raise UnsupportedCheckpointError(
            f"{folder}: vision_feature_select_strategy 'default' drops the first token, but "
            f"{type(encoder).__name__} has no CLS token, so it would drop a patch")
    if strategy == "full" and has_cls:
        config = dataclasses.replace(config, feature_kind="cls_patch")
    return config


def build_language_model(hf_config: Any, state: dict[str, torch.Tensor], *, where: Path | str,
                         dtype: torch.dtype) -> Any:
    """``transformers``' own causal LM for ``text_config`` with the checkpoint's weights."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    text_config = hf_config.text_config
    try:
        lm_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(text_config)]
    except KeyError as exc:
        raise UnsupportedCheckpointError(
            f"{where}: no causal LM for text config {type(text_config).__name__}") from exc
    return _from_state_dict(lm_class, text_config, state, what="language model", where=where,
                            dtype=dtype)


def native_connector_config(fmt: HFFormat, hf_config: Any) -> ConnectorConfig:
    """The vidlm connector config that reproduces the checkpoint's own visual path."""
    act, bias = projector_options(hf_config)
    if fmt.model_type == "llava":
        return MLP2xGeluConfig(hidden_act=act, bias=bias)
    if fmt.model_type == "llava_onevision":
        return OneVisionConfig(projector_act=act, projector_bias=bias, pool_factor=2,
                               newline=True, **anyres_options(hf_config))
    return NextVideoConfig(projector_act=act, projector_bias=bias,
                           pool_mode=hf_config.spatial_pool_mode,
                           pool_stride=int(hf_config.spatial_pool_stride))


def anyres_options(hf_config: Any) -> dict[str, Any]:
    """OneVision's anyres image settings (``image_grid_pinpoints``, ``anyres_max_N``).

    Empty when the checkpoint's ``vision_aspect_ratio`` is not ``anyres_max_N``: then
    images take the video path only.
    """
    match = re.fullmatch(r"anyres_max_(\d+)", str(getattr(hf_config, "vision_aspect_ratio", "")))
    pinpoints = getattr(hf_config, "image_grid_pinpoints", None)
    if not match or not pinpoints:
        log.info("vision_aspect_ratio %r: the anyres image path is not available",
                 getattr(hf_config, "vision_aspect_ratio", None))
        return {}
    return {"image_grid_pinpoints": tuple((int(h), int(w)) for h, w in pinpoints),
            "image_max_tiles": int(match.group(1))}


def projector_options(hf_config: Any) -> tuple[str, bool]:
    """``(projector_hidden_act, multimodal_projector_bias)`` of the checkpoint."""
    act = str(hf_config.projector_hidden_act)
    bias = bool(getattr(hf_config, "multimodal_projector_bias", True))
    try:
        MLP2xGeluConfig(hidden_act=act, bias=bias)
    except ConfigError as exc:
        raise UnsupportedCheckpointError(f"projector_hidden_act {act!r} is not supported: "
                                         f"{exc}") from exc
    return act, bias


def connector_config_for(fmt: HFFormat, hf_config: Any,
                         connector: str | Mapping[str, Any] | ConnectorConfig | None
                         ) -> ConnectorConfig:
    """The checkpoint's own connector, or the requested one with the checkpoint's projector."""
    if connector is None:
        return native_connector_config(fmt, hf_config)
    if isinstance(connector, str):
        cfg = (connector_preset(connector) if connector in available_presets()
               else connector_config_from_dict({"name": connector}))
    elif isinstance(connector, Mapping):
        cfg = connector_config_from_dict(dict(connector))
    elif isinstance(connector, ConnectorConfig):
        cfg = copy.deepcopy(connector)
    else:
        raise ConfigError(f"connector must be a name, a dict or a ConnectorConfig, got "
                          f"{type(connector).__name__}")
    act, bias = projector_options(hf_config)
    if isinstance(cfg, MLP2xGeluConfig):
        given = (cfg.hidden_act, cfg.bias)
    elif isinstance(cfg, PooledConnectorConfig):
        given = (cfg.projector_act, cfg.projector_bias)
    else:
        raise UnsupportedCheckpointError(
            f"connector {cfg.name!r} has no mlp2x_gelu projector, so it cannot reuse the "
            "checkpoint's projector")
    if given != (act, bias):
        raise ConfigError(
            f"connector {cfg.name!r} asks for projector activation/bias {given} but the "
            f"checkpoint's projector is {(act, bias)}")
    return cfg


def build_hf_connector(config: ConnectorConfig, parts: dict[str, dict[str, torch.Tensor]],
                       hf_config: Any, *, fmt: HFFormat, vision_dim: int, lm_dim: int,
                       where: Path | str) -> Any:
    """The connector module for ``config`` holding the checkpoint's connector weights.

    The projector weights always load. OneVision's ``image_newline`` and NeXT-Video's
    conv ``vision_resampler`` load when the format's own connector is used; otherwise
    they are unused (logged; NeXT-Video's ``image_newline`` serves only its anyres image
    path, which vidlm does not implement). Other learned parts of a swapped-in connector
    (a SlowFast separator) keep their fresh initialisation.
    """
    module = build_connector(config, vision_dim=vision_dim, lm_dim=lm_dim)
    projector = module if isinstance(module, MLP2xGeluConnector) else module.projector
    _load_exact(projector, parts["projector"], what="projector", where=where)
    native = type(config) is type(native_connector_config(fmt, hf_config))
    extras = {"newline": parts["newline"], "resampler": parts["resampler"]}
    if native and fmt.model_type == "llava_onevision":
        if "image_newline" not in extras["newline"]:
            raise UnsupportedCheckpointError(f"{where}: LLaVA-OneVision weights lack image_newline")
        with torch.no_grad():
            module.newline.copy_(extras.pop("newline")["image_newline"])
    if native and fmt.model_type == "llava_next_video" and config.pool_mode == "conv":
        _load_exact(module.pool, extras.pop("resampler"), what="vision_resampler.pool",
                    where=where, prefix="pool.")
    unused = sorted(k for part in extras.values() for k in part)
    if unused:  # e.g. NeXT-Video's image_newline serves only its (unsupported) anyres images
        log.info("%s: connector %r does not use the checkpoint's %s", where, config.name, unused)
    return module


def _load_exact(module: torch.nn.Module, state: dict[str, torch.Tensor], *, what: str,
                where: Path | str, prefix: str = "") -> None:
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    expected = set(module.state_dict())
    if set(state) != expected:
        raise UnsupportedCheckpointError(
            f"{where}: the {what} weights {sorted(state)} do not match {sorted(expected)}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatch
        raise UnsupportedCheckpointError(f"{where}: the {what} weights do not fit: {exc}") from exc


# ---- LLaVA-OneVision images on their own (anyres) path ------------------------------------


def encode_anyres_image(model: Any, image: str | Path | np.ndarray) -> Any:
    """One image -> :class:`VisualTokens` through LLaVA-OneVision's anyres image path.

    ``image``: a path (read at full resolution) or uint8 ``(H, W, 3)``. The result goes to
    ``model.chat(..., videos=[tokens])`` / ``build_inputs`` like any encoded input. Plain
    ``model.ask(image, ...)`` treats an image as a one-frame video instead.
    """
    from vidlm.model.videolm import VisualTokens

    connector = model.connector
    if not isinstance(connector, OneVisionConnector) or not connector.config.image_grid_pinpoints:
        raise ConfigError("the anyres image path needs a LLaVA-OneVision checkpoint loaded with "
                          "its own connector (onevision with image_grid_pinpoints)")
    frames = None
    source = None
    if isinstance(image, (str, Path)):
        frames = model.read_video(image, SamplingConfig(mode="uniform", num_frames=1))
        pixels_u8, source = frames.frames[0], str(image)
    else:
        pixels_u8 = np.asarray(image)
    tile = int(model.vision_tower.config.image_size)
    views = anyres_tiles(pixels_u8, pinpoints=connector.config.image_grid_pinpoints, tile=tile)
    param = next(connector.parameters())
    with torch.no_grad():
        features = model.encode_frames(model.preprocess(views)).to(param.dtype)  # (P, N, D)
        size = (int(pixels_u8.shape[0]), int(pixels_u8.shape[1]))
        tokens = connector.image_tokens(features, size, grid=model.vision_tower.grid, tile=tile)
    return VisualTokens(tokens=tokens, num_frames=1, frames=frames, kind="image", source=source)


# ---- tokens, preprocessing, sampling ------------------------------------------------------


def load_tokenizer(folder: Path) -> Any:
    """The checkpoint's own tokenizer with the model's chat template; never remote code.

    The processor's template (``chat_template.json`` / ``chat_template.jinja``), when the
    folder has one, is the model's and wins over the tokenizer's. Templates written for
    list-of-parts content get :data:`PARTS_PRELUDE` in front so that vidlm's string
    messages with ``<image>``/``<video>`` markers render as transformers renders parts.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UnsupportedCheckpointError(f"{folder}: cannot load the tokenizer: {exc}") from exc
    template = processor_chat_template(folder) or getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and _PARTS_TEMPLATE.search(template):
        template = PARTS_PRELUDE + template
    if template:
        tokenizer.chat_template = template
    return tokenizer


def processor_chat_template(folder: Path) -> str | None:
    """The processor's chat template saved in ``folder``, if any."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    path = folder / "chat_template.json"
    if not path.is_file():
        return None
    try:
        template = json.loads(path.read_text()).get("chat_template")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise UnsupportedCheckpointError(f"{path}: cannot read the chat template: {exc}") from exc
    return template if isinstance(template, str) else None


# A template that reads content parts (``content['type']``, ``selectattr('type', ...)``).
_PARTS_TEMPLATE = re.compile(r"""\[\s*['"]type['"]\s*\]|selectattr\(\s*['"]type['"]|\.type\b""")

# Jinja run before a parts template: string content becomes parts, in order, split at the
# ``<video>`` and ``<image>`` markers (text pieces stripped, empty ones dropped).
PARTS_PRELUDE = (
    "{%- set vidlm = namespace(messages=[]) -%}"
    "{%- for m in messages -%}"
    "{%- if m['content'] is string -%}"
    "{%- set acc = namespace(parts=[]) -%}"
    "{%- for vpiece in m['content'].split('<video>') -%}"
    "{%- if not loop.first -%}{%- set acc.parts = acc.parts + [{'type': 'video'}] -%}"
    "{%- endif -%}"
    "{%- for ipiece in vpiece.split('<image>') -%}"
    "{%- if not loop.first -%}{%- set acc.parts = acc.parts + [{'type': 'image'}] -%}"
    "{%- endif -%}"
    "{%- if ipiece.strip() -%}"
    "{%- set acc.parts = acc.parts + [{'type': 'text', 'text': ipiece.strip()}] -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endfor -%}"
    "{%- set vidlm.messages = vidlm.messages + [{'role': m['role'], 'content': acc.parts}] -%}"
    "{%- else -%}{%- set vidlm.messages = vidlm.messages + [m] -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- set messages = vidlm.messages -%}"
)


def placeholder_token(hf_config: Any, tokenizer: Any, fmt: HFFormat, *,
                      where: Path | str) -> str:
    """The checkpoint's own image/video token (by id), which becomes vidlm's placeholder."""
    attr = f"{fmt.placeholder}_token_index"
    token_id = getattr(hf_config, attr, None)
    if token_id is None:
        token_id = getattr(hf_config, f"{fmt.placeholder}_token_id", None)
    if token_id is None:
        raise UnsupportedCheckpointError(f"{where}: config.json has no {attr}")
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    if token is None or tokenizer.convert_tokens_to_ids(token) != int(token_id):
        raise UnsupportedCheckpointError(
            f"{where}: {attr} is {token_id} but the tokenizer has no token with that id")
    return str(token)


def preprocessing(folder: Path, fmt: HFFormat
                  ) -> tuple[tuple[float, float, float], tuple[float, float, float], str]:
    """``(mean, std, resize)`` from the checkpoint's processor config, else the format's."""
    for name in fmt.processor_files:
        path = folder / name
        if not path.is_file():
            continue
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UnsupportedCheckpointError(f"{path}: cannot read: {exc}") from exc
        mean = tuple(float(x) for x in raw.get("image_mean", OPENAI_CLIP_MEAN))
        std = tuple(float(x) for x in raw.get("image_std", OPENAI_CLIP_STD))
        return mean, std, _resize_mode(raw)  # type: ignore[return-value]
    return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, fmt.default_resize


def _resize_mode(raw: Mapping[str, Any]) -> Literal["pad", "crop", "stretch"]:
    """How a processor config makes frames square.

    ``do_pad`` means "pad to a square" only for ``LlavaImageProcessor``; for the
    LLaVA-NeXT/OneVision processors it pads the batch of tiles, not the image.
    """
    kind = str(raw.get("image_processor_type") or raw.get("video_processor_type") or "")
    if raw.get("do_pad") and kind.startswith("LlavaImageProcessor"):
        return "pad"
    if raw.get("do_center_crop"):
        return "crop"
    return "stretch"


def _sampling(sampling: SamplingConfig | Mapping[str, Any] | None, fmt: HFFormat
              ) -> SamplingConfig:
    if sampling is None:
        return copy.deepcopy(fmt.sampling)
    if isinstance(sampling, SamplingConfig):
        return sampling
    from vidlm.config import from_dict

    return from_dict(SamplingConfig, dict(sampling), where="sampling")
