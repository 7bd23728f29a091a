"""A size-bounded, process-safe on-disk cache of tensors keyed by video content.

Used to skip decoding and the vision tower on a second question about the same
video (chat, batch, server, demo) and by training to reuse vision features.

Layout under ``root``::

    root/
      .lock                      file lock held while writing or evicting
      ab/abcdef....safetensors   one entry: tensors + JSON metadata (``__vidlm_meta__``)

Keys come from :meth:`FeatureCache.key`: a SHA-256 over the file's *content hash*,
the sampling config, the vision tower id and (when the cached tensors are the
connector's output) the connector id. Content hashing has two modes:

* ``"fast"`` (default): SHA-256 of the file size and 16 evenly spaced 64 KiB chunks
  (files up to 1 MiB are hashed whole). It reads at most 1 MiB whatever the file
  size. Two different files collide only if they have the same size and agree on
  every sampled chunk; for natural videos that does not happen, but an in-place edit
  that keeps the size and touches no sampled chunk would go unnoticed.
* ``"full"``: SHA-256 streamed over the whole file; exact, costs a full read.

Eviction is least-recently-used: every :meth:`get` hit sets the entry's mtime to
now (atime is unreliable under ``noatime``/``relatime`` mounts), and :meth:`put`
deletes the entries with the oldest mtime until the total is within ``max_bytes``.

Concurrency: an entry is written to a temporary file in the same folder and moved
into place with :func:`os.replace` (atomic on POSIX), so a reader sees either no
entry or a whole one. Eviction and the size scan run under an exclusive
``filelock`` on ``root/.lock``. A reader whose entry is evicted mid-read gets a miss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file

from vidlm.errors import VidlmError

HashMode = Literal["fast", "full"]

META_KEY = "__vidlm_meta__"
ENTRY_SUFFIX = ".safetensors"
FAST_CHUNKS = 16
FAST_CHUNK_BYTES = 64 * 1024
STREAM_BYTES = 1024 * 1024
DEFAULT_MAX_BYTES = 2 * 1024**3


class CacheError(VidlmError):
    """The cache directory is unusable, or a key's input file cannot be hashed."""


@dataclass(frozen=True)
class CacheStats:
    """Counters of one :class:`FeatureCache` object (this process only)."""

    hits: int
    misses: int
    writes: int
    evictions: int


def content_hash(path: str | Path, *, mode: HashMode = "fast") -> str:
    """Hex SHA-256 identifying a file's content (see the module docstring for modes)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            digest = hashlib.sha256(f"vidlm-content-v1:{mode}:{size}:".encode())
            if mode == "full" or size <= FAST_CHUNKS * FAST_CHUNK_BYTES:
                while block := fh.read(STREAM_BYTES):
                    digest.update(block)
            elif mode == "fast":
                step = (size - FAST_CHUNK_BYTES) // (FAST_CHUNKS - 1)
                for i in range(FAST_CHUNKS):
                    fh.seek(i * step)
                    digest.update(fh.read(FAST_CHUNK_BYTES))
            else:
                raise CacheError(f"unknown hash mode {mode!r}; use 'fast' or 'full'")
    except OSError as exc:
        raise _hash_error(path, exc) from exc
    return digest.hexdigest()


def _hash_error(path: Path, exc: OSError) -> CacheError:
    return CacheError(f"{path}: cannot hash file for the feature cache: {exc.strerror or exc}")


def _canonical(value: Any) -> Any:
    """A JSON-able, order-independent form of a config (dataclass, mapping or scalar)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_canonical(dataclasses.asdict(value))}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


class FeatureCache:
    """Tensors on disk, keyed by content, bounded by ``max_bytes`` with LRU eviction.

    >>> cache = FeatureCache("~/.cache/vidlm/features", max_bytes=2 * 1024**3)
    >>> k = cache.key("clip.mp4", sampling_cfg, tower_id="clip-l-336", connector_id="slowfast")
    >>> cache.get(k) or cache.put(k, {"tokens": tokens}, {"num_frames": 32})
    """

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, *,
                 hash_mode: HashMode = "fast") -> None:
        if max_bytes <= 0:
            raise CacheError(f"max_bytes must be positive, got {max_bytes}")
        if hash_mode not in ("fast", "full"):
            raise CacheError(f"unknown hash mode {hash_mode!r}; use 'fast' or 'full'")
        self.root = Path(root).expanduser()
        self.max_bytes = int(max_bytes)
        self.hash_mode: HashMode = hash_mode
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            raise CacheError(f"{self.root}: cannot create the feature cache: {reason}") from exc
        self._lock = FileLock(str(self.root / ".lock"))
        # (path, size, mtime_ns, inode) -> content hash, so a hot video is hashed once per process
        self._hash_memo: dict[tuple[str, int, int, int], str] = {}
        self._hits = self._misses = self._writes = self._evictions = 0

    # ---- keys -------------------------------------------------------------------------
    def file_hash(self, file_path: str | Path) -> str:
        """The content hash of ``file_path`` (memoised on path, size, mtime and inode)."""
        path = Path(file_path)
        try:
            st = path.stat()
        except OSError as exc:
            raise _hash_error(path, exc) from exc
        memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if memo_key not in self._hash_memo:
            self._hash_memo[memo_key] = content_hash(path, mode=self.hash_mode)
        return self._hash_memo[memo_key]

    def key(self, file_path: str | Path, sampling_cfg: Any, tower_id: str,
            connector_id: str | None = None) -> str:
        """A hex key for tensors derived from ``file_path`` under these settings.

        ``sampling_cfg``: a dataclass (e.g. ``SamplingConfig``) or a mapping.
        ``tower_id``/``connector_id``: strings that change whenever the weights or
        settings producing the tensors change; ``connector_id=None`` means the
        cached tensors are vision-tower features, not connector output.
        """
        parts = {
            "content": self.file_hash(file_path),
            "hash_mode": self.hash_mode,
            "sampling": _canonical(sampling_cfg),
            "tower": tower_id,
            "connector": connector_id,
        }
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    # ---- entries ----------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise CacheError(f"invalid cache key {key!r}: expected a hex digest from .key()")
        return self.root / key[:2] / f"{key}{ENTRY_SUFFIX}"

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        """The tensors stored under ``key``, or ``None`` on a miss. A hit marks it recently used."""
        entry = self._read(key)
        return None if entry is None else entry[0]

    def get_with_meta(self, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """``(tensors, meta)`` stored under ``key``, or ``None`` on a miss."""
        return self._read(key)

    def _read(self, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        path = self._path(key)
        try:
            # One read of one open file: a concurrent os.replace can't pair this entry's
            # metadata with another writer's tensors (safe_open may reopen the path).
            data = path.read_bytes()
            tensors = safetensors_load(data)
            meta = json.loads(_header_metadata(data).get(META_KEY, "{}"))
            now = time.time()
            os.utime(path, (now, now))
        except (SafetensorError, ValueError, OSError, KeyError):
            # missing, evicted mid-read, or corrupt (a crashed writer never leaves one: os.replace)
            self._misses += 1
            return None
        self._hits += 1
        return tensors, meta

    def put(self, key: str, tensors: Mapping[str, torch.Tensor],
            meta: Mapping[str, Any] | None = None) -> bool:
        """Store ``tensors`` (and JSON-able ``meta``) under ``key``; evict LRU entries to fit.

        Returns ``False`` (storing nothing) when the entry alone exceeds ``max_bytes``.
        """
        path = self._path(key)
        flat = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
        if not flat:
            raise CacheError("put() needs at least one tensor")
        metadata = {META_KEY: json.dumps(_canonical(dict(meta or {})))}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(flat, tmp_name, metadata=metadata)
            if os.path.getsize(tmp_name) > self.max_bytes:
                return False
            with self._lock:
                os.replace(tmp_name, path)
                self._writes += 1
                self._evict_locked(keep=path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return True

    # ---- size and eviction ------------------------------------------------------------
    def entries(self) -> list[tuple[Path, int, float]]:
        """All entries as ``(path, bytes, last_used)``, oldest first."""
        found: list[tuple[Path, int, float]] = []
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for item in os.scandir(sub):
                if item.name.endswith(ENTRY_SUFFIX) and not item.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        st = item.stat()
                        found.append((Path(item.path), st.st_size, st.st_mtime))
        return sorted(found, key=lambda e: e[2])

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def __len__(self) -> int:
        return len(self.entries())

    def _evict_locked(self, *, keep: Path | None = None) -> None:
        items = self.entries()
        total = sum(size for _, size, _ in items)
        for path, size, _ in items:
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                self._evictions += 1
            total -= size

    def clear(self) -> None:
        with self._lock:
            for path, _, _ in self.entries():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    @property
    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, self._writes, self._evictions)


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file held in ``data`` (8-byte length + JSON)."""
    if len(data) < 8:
        raise ValueError("safetensors file too short")
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return dict(header.get("__metadata__") or {})
