"""Resumable data loading: an epoch-seeded sampler and per-item augmentation seeds.

Each item's random crop/flip is drawn from a generator seeded by (seed, epoch, index), never from worker or process
RNG, so a resumed run (which skips the epoch's first batches) sees exactly the batches an unbroken run would, for
any number of workers or processes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch; yields `epoch * n + index` so the dataset knows the epoch of each item."""

    def __init__(self, length: int, *, seed: int, shuffle: bool = True) -> None:
        self.length, self.seed, self.shuffle, self.epoch = length, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = range(self.length)
        offset = self.epoch * self.length
        return iter(offset + i for i in order)

    def __len__(self) -> int:
        return self.length


class SeededItems(Dataset):
    """Wraps a dataset so item `epoch * n + index` is drawn with torch's RNG seeded by (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, *, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int) -> Any:
        epoch, index = divmod(key, len(self.dataset))
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.dataset[index]


def make_train_loader(dataset: Dataset, *, batch_size: int, num_workers: int, seed: int,
                      pin_memory: bool = False) -> tuple[DataLoader, EpochSampler]:
    if len(dataset) < batch_size:
        raise ValueError(f"the training set has {len(dataset)} images, fewer than data.batch_size={batch_size}")
    sampler = EpochSampler(len(dataset), seed=seed)
    loader = DataLoader(
        SeededItems(dataset, seed=seed), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        drop_last=True, pin_memory=pin_memory, persistent_workers=num_workers > 0,
    )
    return loader, sampler
