"""A resumable, rank-aware sampler: the same global order on any world size.

Epoch ``e``'s order is a permutation seeded by ``(seed, e)`` (or ``0..n-1`` without
shuffling), padded by wrapping to a multiple of ``world_size``. Rank ``r`` takes
positions ``r, r + W, r + 2W, ...``. With micro-batch ``m`` and accumulation ``a``,
optimizer step ``s`` therefore sees global positions ``[s*G, (s+1)*G)`` with
``G = m * a * W`` whatever ``W`` is, which is what makes one process and several
agree. ``start`` skips micro-batches already consumed (resume).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, num_items: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True) -> None:
        if num_items < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.num_items = num_items
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0  # items (of this rank) to skip at the start of the epoch

    def set_position(self, epoch: int, start_item: int = 0) -> None:
        self.epoch, self.start = epoch, start_item

    def global_order(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        total = -(-len(order) // self.world_size) * self.world_size
        return (order * (total // len(order) + 1))[:total]

    def __len__(self) -> int:
        return -(-self.num_items // self.world_size)

    def __iter__(self) -> Iterator[int]:
        mine = self.global_order(self.epoch)[self.rank::self.world_size]
        return iter(mine[self.start:])
