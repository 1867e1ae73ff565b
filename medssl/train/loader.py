"""The fast input path: images stay in memory as uint8; the loader yields only index batches.

Every epoch has its own seeded permutation (Lightning calls ``set_epoch`` before each epoch), so a run resumed
from the checkpoint of epoch ``e`` sees exactly the batches an uninterrupted run would. With several processes
each rank takes every ``world``-th batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class IndexBatches(Sampler[torch.Tensor]):
    """Yields LongTensors of image indices, one per batch (incomplete last batch dropped)."""

    def __init__(
        self, indices: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        self.indices = indices
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices) // (self.batch_size * self.world)

    def __iter__(self) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = self.indices[torch.randperm(len(self.indices), generator=generator)]
        for i in range(len(self)):
            start = (i * self.world + self.rank) * self.batch_size
            yield order[start : start + self.batch_size]


class _Passthrough(Dataset):
    """``dataset[batch] == batch``: the sampler already produced the batch of indices."""

    def __getitem__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


def index_loader(batches: IndexBatches) -> DataLoader:
    """A DataLoader without workers: batches are index tensors, pixels are gathered on the device."""
    return DataLoader(_Passthrough(), sampler=batches, batch_size=None, num_workers=0)
