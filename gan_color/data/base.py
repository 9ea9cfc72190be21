"""Shared dataset behaviour: crops, optional L/ab conversion, filters, and deterministic replacement of images that
fail to decode."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from gan_color.data import filters
from gan_color.data.images import DECODE_ERRORS, describe_error
from gan_color.data.transforms import add_lab, eval_transform, min_decode_side, train_transform

logger = logging.getLogger("gan_color.data")


class ImageDataset(Dataset, abc.ABC):
    """Items are dicts: `rgb` uint8 [3, S, S] and `index`; with `to_lab`, `add_lab` has run on the item: `rgb` is
    float32 in [0, 1] and the normalized `gray_l` [1, S, S] and `real_ab` [2, S, S] are there. Without it, training
    runs `add_lab` on each batch on the device. Subclasses implement `__len__`, `load(i) -> PIL RGB` and `describe(i)`.

    `skipped` lists (name, reason) of every image left out or replaced; `filter_report` says what filters dropped.
    """

    def __init__(self, *, size: int, train: bool, to_lab: bool = True) -> None:
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.size, self.train, self.to_lab = size, train, to_lab
        self.transform = train_transform(size) if train else eval_transform(size)
        self.decode_side = min_decode_side(size, train)
        self.skipped: list[tuple[str, str]] = []
        self.filter_report: dict[str, Any] = {}
        self._failed: set[int] = set()

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load(self, index: int) -> Image.Image:
        """Decoded RGB image `index` (may raise one of DECODE_ERRORS)."""

    def describe(self, index: int) -> str:
        return f"{type(self).__name__}[{index}]"

    def split_key(self, index: int) -> str:
        """What the held-out split assigns (gan_color.data.split): stable across machines and folder locations."""
        return self.describe(index)

    def crop(self, image: Image.Image, index: int) -> torch.Tensor:
        return self.transform(image)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        item = {"rgb": self.crop(self._decode(index), index), "index": index}
        return add_lab(item) if self.to_lab else item

    def _decode(self, index: int) -> Image.Image:
        """Image `index`, or when it cannot be decoded the next one that can (deterministic, so an epoch keeps its
        length). Each bad image is warned about once (per process) and recorded in `skipped`."""
        count = len(self)
        for step in range(count):
            candidate = (index + step) % count
            if candidate in self._failed:
                continue
            try:
                return self.load(candidate)
            except DECODE_ERRORS as err:
                self._failed.add(candidate)
                self.skipped.append((self.describe(candidate), describe_error(err)))
                logger.warning(
                    "cannot decode %s (%s); the next decodable image is served in its place",
                    self.describe(candidate),
                    describe_error(err),
                )
        raise RuntimeError(f"none of the {count} images of {type(self).__name__} can be decoded")

    def apply_filters(
        self,
        count: int,
        stats_of: Callable[[int], tuple[float, float]],
        *,
        drop_grayscale: bool,
        min_colorfulness: float,
        workers: int = 1,
    ) -> list[int]:
        """Indices in range(count) that pass the filters (all when none is on); fills `filter_report`. `stats_of(i)`
        gives (max chroma, colourfulness) of image i; images that fail to decode there are skipped."""
        if not drop_grayscale and min_colorfulness <= 0:
            return list(range(count))
        stats = filters.compute_stats(stats_of, count, workers)
        readable = []
        for index, value in enumerate(stats):
            if isinstance(value, str):
                self.skipped.append((self.describe(index), value))
                logger.warning("skipping undecodable image %s (%s)", self.describe(index), value)
            else:
                readable.append(index)
        kept, self.filter_report = filters.select(
            [stats[i] for i in readable], drop_grayscale=drop_grayscale, min_colorfulness=min_colorfulness
        )
        return [readable[i] for i in kept]
