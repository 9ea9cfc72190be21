"""Several sources as one dataset, and the seeded held-out split: images (or, for the embedded photos, whole photos)
that never train, so probes, validation and evaluation see what the model has not."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from gan_color.data.base import ImageDataset


class ConcatImageDataset(ImageDataset):
    """The images of `parts` in order (e.g. `data.train=/photos-128,/imagenet-sample`)."""

    def __init__(self, parts: Sequence[ImageDataset]) -> None:
        first = parts[0]
        super().__init__(size=first.size, train=first.train, to_lab=first.to_lab)
        self.parts = list(parts)
        self.offsets = [0]
        for part in self.parts:
            self.offsets.append(self.offsets[-1] + len(part))
        self.skipped = [entry for part in self.parts for entry in part.skipped]
        self.filter_report = {"sources": [part.filter_report for part in self.parts]}

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[ImageDataset, int]:
        part = bisect.bisect_right(self.offsets, index) - 1
        return self.parts[part], index - self.offsets[part]

    def load(self, index: int) -> Image.Image:
        part, local = self.locate(index)
        return part.load(local)

    def crop(self, image: Image.Image, index: int) -> torch.Tensor:
        part, local = self.locate(index)
        return part.crop(image, local)

    def describe(self, index: int) -> str:
        part, local = self.locate(index)
        return part.describe(local)

    def split_key(self, index: int) -> str:
        part, local = self.locate(index)
        return part.split_key(local)


class SubsetImageDataset(ImageDataset):
    """The images `indices` of `base`, with the base's crops (so an eval crop is the same image either way)."""

    def __init__(self, base: ImageDataset, indices: Sequence[int]) -> None:
        super().__init__(size=base.size, train=base.train, to_lab=base.to_lab)
        if not indices:
            raise ValueError(f"an empty selection of {type(base).__name__}")
        self.base, self.indices = base, list(indices)
        self.skipped, self.filter_report = base.skipped, base.filter_report

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Image.Image:
        return self.base.load(self.indices[index])

    def crop(self, image: Image.Image, index: int) -> torch.Tensor:
        return self.base.crop(image, self.indices[index])

    def describe(self, index: int) -> str:
        return self.base.describe(self.indices[index])

    def split_key(self, index: int) -> str:
        return self.base.split_key(self.indices[index])


def split_rank(key: str, seed: int) -> str:
    """A key's place in the seeded split order (SHA-256 of "seed:key"): the same on every machine, and independent
    of which other keys exist. `data.holdout` and `gan-color results` both split by it."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def holdout_keys(keys: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The held-out keys: the `fraction` (at least one, never all) of the distinct keys whose seeded hash is lowest.
    A key's rank depends only on itself and the seed, so adding images to a folder rarely moves old ones across."""
    distinct = sorted(set(keys), key=lambda k: split_rank(k, seed))
    if fraction <= 0 or len(distinct) < 2:
        return set()
    count = min(len(distinct) - 1, max(1, round(fraction * len(distinct))))
    return set(distinct[:count])


def split_dataset(dataset: ImageDataset, held_out: set[str], *, keep_held_out: bool) -> ImageDataset:
    """The images of `dataset` whose split key is (keep_held_out=True) or is not in `held_out`."""
    indices = [i for i in range(len(dataset)) if (dataset.split_key(i) in held_out) == keep_held_out]
    return SubsetImageDataset(dataset, indices)


def describe_split(train: ImageDataset, held_out: ImageDataset) -> dict[str, Any]:
    return {"train_images": len(train), "held_out_images": len(held_out)}
