"""Data pipeline: image folders, prepare-data caches, the embedded scikit-image photos and named torchvision datasets,
all giving dicts with `rgb` (and normalized `gray_l`/`real_ab`); `build_dataset` picks one from a spec string."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from gan_color.data.base import ImageDataset
from gan_color.data.cache import CacheDataset, is_cache, prepare_data
from gan_color.data.embedded import EmbeddedDataset
from gan_color.data.folder import FolderDataset
from gan_color.data.images import IMAGE_EXTENSIONS, list_images
from gan_color.data.named import NAMED_DATASETS, DatasetUnavailableError, NamedDataset
from gan_color.data.split import ConcatImageDataset, SubsetImageDataset, holdout_keys, split_dataset
from gan_color.data.transforms import TRAIN_SCALE, add_lab
from gan_color.registry import DATASETS

__all__ = [
    "IMAGE_EXTENSIONS",
    "NAMED_DATASETS",
    "TRAIN_SCALE",
    "CacheDataset",
    "ConcatImageDataset",
    "DatasetUnavailableError",
    "EmbeddedDataset",
    "FolderDataset",
    "ImageDataset",
    "NamedDataset",
    "SubsetImageDataset",
    "add_lab",
    "build_dataset",
    "dataset_kind",
    "holdout_keys",
    "is_cache",
    "list_images",
    "prepare_data",
    "split_dataset",
    "split_sources",
]

DATASETS.register("folder")(FolderDataset)
DATASETS.register("cache")(CacheDataset)
DATASETS.register("embedded")(EmbeddedDataset)
for _name in NAMED_DATASETS:
    DATASETS.register(_name)(partial(NamedDataset, _name))


def dataset_kind(spec: str) -> str:
    """'embedded', a named dataset, 'cache' or 'folder' for a dataset spec; ValueError for a path that is missing."""
    if spec == "embedded" or spec in NAMED_DATASETS:
        return spec
    path = Path(spec).expanduser()
    if is_cache(path):
        return "cache"
    if path.is_dir():
        return "folder"
    raise ValueError(
        f"dataset {spec!r}: no such folder. Pass an image folder, a prepare-data cache, 'embedded' "
        f"or one of {list(NAMED_DATASETS)}"
    )


def split_sources(spec: str) -> list[str]:
    """The sources of a dataset spec: several are joined by commas (`/data/photos-128,/data/imagenet-sample`)."""
    sources = [part.strip() for part in spec.split(",")]
    if not all(sources):
        raise ValueError(f"dataset {spec!r}: an empty source between commas")
    return sources


def build_dataset(
    spec: str,
    *,
    size: int,
    train: bool,
    to_lab: bool = True,
    limit: int = 0,
    drop_grayscale: bool = False,
    min_colorfulness: float = 0.0,
    seed: int = 0,
    embedded_length: int = 2048,
) -> ImageDataset:
    """The dataset named by `spec` (folder path, cache path, 'embedded', 'cifar10', 'stl10', 'places365').
    `limit` keeps the first N images before filtering; the embedded photos are all in colour, so it ignores the
    filters and `limit`, and uses `seed` and `embedded_length` (the other kinds are deterministic without a seed).
    Several comma-separated sources make one dataset (`limit` applies to each)."""
    sources = split_sources(spec)
    if len(sources) > 1:
        options = dict(size=size, train=train, to_lab=to_lab, limit=limit, drop_grayscale=drop_grayscale,
                       min_colorfulness=min_colorfulness, seed=seed, embedded_length=embedded_length)
        return ConcatImageDataset([build_dataset(source, **options) for source in sources])
    kind = dataset_kind(spec)
    common = {"size": size, "train": train, "to_lab": to_lab}
    if kind == "embedded":
        return DATASETS.build(kind, length=embedded_length, seed=seed, **common)
    selection = {"limit": limit, "drop_grayscale": drop_grayscale, "min_colorfulness": min_colorfulness}
    if kind in NAMED_DATASETS:
        return DATASETS.build(kind, **common, **selection)
    return DATASETS.build(kind, root=spec, **common, **selection)
