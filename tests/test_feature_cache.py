"""FeatureCache: keys, round trip, LRU eviction under a size bound, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest
import torch

from vidlm.feature_cache import CacheError, FeatureCache, content_hash
from vidlm.model.config import SamplingConfig


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_round_trip_keeps_tensors_and_meta(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", max_bytes=10**7)
    video = _file(tmp_path, "v.mp4", b"x" * 5000)
    k = cache.key(video, SamplingConfig(), "tower-a", "conn-a")
    assert cache.get(k) is None
    tokens = torch.randn(12, 8)
    stamps = torch.arange(4, dtype=torch.float64) / 2
    assert cache.put(k, {"tokens": tokens, "timestamps": stamps}, {"num_frames": 4, "src": "v"})
    got, meta = cache.get_with_meta(k)
    assert torch.equal(got["tokens"], tokens) and got["timestamps"].dtype == torch.float64
    assert meta == {"num_frames": 4, "src": "v"}
    assert cache.stats.hits == 1 and cache.stats.misses == 1 and cache.stats.writes == 1


def test_key_depends_on_content_sampling_tower_and_connector(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    a = _file(tmp_path, "a.mp4", b"a" * 3000)
    a_copy = _file(tmp_path, "copy.mp4", b"a" * 3000)
    b = _file(tmp_path, "b.mp4", b"a" * 2999 + b"b")
    base = cache.key(a, SamplingConfig(num_frames=8), "t1", None)
    assert cache.key(a_copy, SamplingConfig(num_frames=8), "t1", None) == base  # content, not path
    assert cache.key(b, SamplingConfig(num_frames=8), "t1", None) != base
    assert cache.key(a, SamplingConfig(num_frames=9), "t1", None) != base
    assert cache.key(a, {"mode": "uniform", "num_frames": 8}, "t1", None) != base
    assert cache.key(a, SamplingConfig(num_frames=8), "t2", None) != base
    assert cache.key(a, SamplingConfig(num_frames=8), "t1", "c1") != base


def test_fast_hash_reads_sampled_chunks_and_full_hash_sees_everything(tmp_path: Path) -> None:
    big = bytearray(os.urandom(3 * 1024 * 1024))
    p = _file(tmp_path, "big.bin", bytes(big))
    fast, full = content_hash(p, mode="fast"), content_hash(p, mode="full")
    big[0] ^= 0xFF  # the first chunk is always sampled
    p.write_bytes(bytes(big))
    assert content_hash(p, mode="fast") != fast and content_hash(p, mode="full") != full
    big[0] ^= 0xFF
    big[100_000] ^= 0xFF  # between sampled chunks: only the full hash notices (documented)
    p.write_bytes(bytes(big))
    assert content_hash(p, mode="fast") == fast
    assert content_hash(p, mode="full") != full


def test_missing_file_and_bad_key_are_typed_errors(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    with pytest.raises(CacheError, match=r"nope\.mp4"):
        cache.key(tmp_path / "nope.mp4", SamplingConfig(), "t")
    with pytest.raises(CacheError, match="invalid cache key"):
        cache.get("../../etc/passwd")
    with pytest.raises(CacheError):
        FeatureCache(tmp_path / "d", max_bytes=0)


def test_lru_eviction_keeps_recently_used(tmp_path: Path) -> None:
    one = torch.zeros(1000, dtype=torch.float32)  # ~4 KB per entry
    cache = FeatureCache(tmp_path / "c", max_bytes=3 * 4000 + 1500)
    keys = [cache.key(_file(tmp_path, f"{i}.bin", bytes([i]) * 100), {}, "t") for i in range(5)]
    for i, k in enumerate(keys[:3]):
        cache.put(k, {"x": one + i})
        past = time.time() - 100 + i  # distinct, ordered last-used times
        os.utime(cache._path(k), (past, past))
    assert cache.get(keys[0]) is not None  # touch: now the most recent
    cache.put(keys[3], {"x": one})
    assert cache.get(keys[1]) is None  # the least recently used went
    assert cache.get(keys[0]) is not None and cache.get(keys[2]) is not None
    assert cache.size_bytes() <= cache.max_bytes and len(cache) == 3
    assert cache.stats.evictions == 1


def test_entry_larger_than_bound_is_not_stored(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", max_bytes=1000)
    k = cache.key(_file(tmp_path, "v", b"v"), {}, "t")
    assert cache.put(k, {"x": torch.zeros(10_000)}) is False
    assert cache.get(k) is None and len(cache) == 0
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.name != ".lock"]


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    k = cache.key(_file(tmp_path, "v", b"v"), {}, "t")
    cache.put(k, {"x": torch.ones(3)})
    cache._path(k).write_bytes(b"garbage")
    assert cache.get(k) is None


def _writer(root: str, worker: int, n: int, out: mp.Queue) -> None:
    cache = FeatureCache(root, max_bytes=15_000)
    bad = 0
    for i in range(n):
        key = f"{(i % 6):02x}" * 32  # 6 shared keys, all workers write them
        value = torch.full((1000,), float(worker * 1000 + i))
        cache.put(key, {"x": value}, {"worker": worker, "i": i})
        got = cache.get_with_meta(key)
        if got is not None:  # a reader sees a whole entry, never a torn one
            tensors, meta = got
            expect = float(meta["worker"] * 1000 + meta["i"])
            bad += int(not torch.all(tensors["x"] == expect))
    out.put(bad)


def test_concurrent_processes_never_see_torn_entries_and_respect_bound(tmp_path: Path) -> None:
    root = str(tmp_path / "shared")
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(root, w, 40, out)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert [out.get(timeout=5) for _ in procs] == [0, 0, 0]
    cache = FeatureCache(root, max_bytes=15_000)
    assert cache.size_bytes() <= 15_000
    assert not list(Path(root).rglob("*.tmp"))  # no temporary files left behind
    assert 1 <= len(cache) <= 3  # ~4.1 KB entries under a 15 KB bound
