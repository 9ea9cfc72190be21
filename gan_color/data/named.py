"""Named torchvision datasets (cifar10, stl10, places365), downloaded on first use into $GAN_COLOR_DATA
(default ~/.cache/gan_color/datasets); failures become a `DatasetUnavailableError` that says how to proceed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torchvision import datasets

from gan_color.data import filters
from gan_color.data.base import ImageDataset
from gan_color.data.images import default_workers, thumbnail_of, to_rgb

logger = logging.getLogger("gan_color.data")


class DatasetUnavailableError(RuntimeError):
    """A named dataset could not be downloaded or opened."""


# name -> (train split, eval split) constructors. Looked up through the `datasets` module at call time. STL-10 trains
# on its 100k unlabeled images too (labels are irrelevant to colorization); Places365 uses the 256 px "small" release.
_OPENERS: dict[str, Callable[[str, bool], Any]] = {
    "cifar10": lambda root, train: datasets.CIFAR10(root, train=train, download=True),
    "stl10": lambda root, train: datasets.STL10(root, split="train+unlabeled" if train else "test", download=True),
    "places365": lambda root, train: datasets.Places365(
        root, split="train-standard" if train else "val", small=True, download=True
    ),
}
NAMED_DATASETS = tuple(_OPENERS)


def data_root() -> Path:
    """Where named datasets are downloaded: $GAN_COLOR_DATA, else ~/.cache/gan_color/datasets."""
    return Path(os.environ.get("GAN_COLOR_DATA") or Path.home() / ".cache" / "gan_color" / "datasets").expanduser()


def open_named(name: str, *, train: bool, root: str | Path | None = None) -> Any:
    """The torchvision dataset `name`, downloading it if needed, or a DatasetUnavailableError."""
    if name not in _OPENERS:
        raise ValueError(f"unknown named dataset {name!r}; choose from {list(NAMED_DATASETS)}")
    folder = Path(root).expanduser() if root else data_root() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _OPENERS[name](str(folder), train)
    # URLError/HTTPError/socket errors are OSErrors; torchvision raises RuntimeError for a missing/corrupt archive.
    except (OSError, RuntimeError, ValueError) as err:
        raise DatasetUnavailableError(
            f"could not download or open the {name!r} dataset in {folder} ({type(err).__name__}: {err}). Named "
            f"datasets are downloaded on first use, which needs internet access. Either download it where there is "
            f"access into {folder} (set $GAN_COLOR_DATA to choose the root), or train on an image folder or a "
            f"prepare-data cache instead, e.g. data.train=/path/to/images (or data.train=embedded to try offline)."
        ) from err


class NamedDataset(ImageDataset):
    """A torchvision dataset's images (labels dropped) with this package's crops, filters and L/ab conversion."""

    def __init__(
        self,
        name: str,
        *,
        size: int,
        train: bool,
        to_lab: bool = True,
        limit: int = 0,
        drop_grayscale: bool = False,
        min_colorfulness: float = 0.0,
        root: str | Path | None = None,
    ) -> None:
        super().__init__(size=size, train=train, to_lab=to_lab)
        self.name = name
        self.dataset = open_named(name, train=train, root=root)
        count = len(self.dataset) if limit <= 0 else min(limit, len(self.dataset))
        self.indices = list(range(count))  # `describe` works during filtering
        self.indices = self.apply_filters(
            count,
            lambda i: filters.image_stats(thumbnail_of(self._raw(i), filters.THUMBNAIL_SIDE)),
            drop_grayscale=drop_grayscale,
            min_colorfulness=min_colorfulness,
            workers=default_workers(),
        )
        split = "train" if train else "eval"
        logger.info("%s (%s split): %d images, filters: %s", name, split, len(self), self.filter_report or "off")

    def _raw(self, index: int) -> Image.Image:
        return to_rgb(self.dataset[index][0])

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Image.Image:
        return self._raw(self.indices[index])

    def describe(self, index: int) -> str:
        return f"{self.name}[{self.indices[index]}]"
