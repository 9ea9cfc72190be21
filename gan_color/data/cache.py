"""`gan-color prepare-data SRC DST --size N`: decode and resize an image folder once into a compact cache (a uint8
images.npy memmap [N, S, S, 3] plus index.json with source paths and filter statistics), and the dataset reading it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torchvision.transforms import v2
from tqdm.auto import tqdm

from gan_color.data import filters
from gan_color.data.base import ImageDataset
from gan_color.data.images import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    default_workers,
    describe_error,
    list_images,
    load_rgb,
    load_thumbnail,
    ordered_map,
)

logger = logging.getLogger("gan_color.data")

CACHE_FORMAT = "gan_color.cache/1"
INDEX_FILE = "index.json"
IMAGES_FILE = "images.npy"


def is_cache(path: str | Path) -> bool:
    """Whether `path` is a folder written by `prepare_data` (its index.json names the cache format)."""
    index = Path(path).expanduser() / INDEX_FILE
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text()).get("format") == CACHE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def square_crop(image: Image.Image, size: int) -> Image.Image:
    """Short side -> `size`, then centre crop: the same ops as the eval transform, so eval items from a cache at the
    training size equal those read from the folder."""
    return v2.functional.center_crop(v2.functional.resize(image, size, antialias=True), size)


def _prepare_one(path: Path, size: int) -> tuple[np.ndarray, float, float] | str:
    try:
        array = np.asarray(square_crop(load_rgb(path, size), size))
        # Statistics from the same thumbnail a FolderDataset filter would use, so filters agree on folder and cache.
        max_chroma, colorfulness = filters.image_stats(load_thumbnail(path, filters.THUMBNAIL_SIDE))
    except DECODE_ERRORS as err:
        return describe_error(err)
    return array, max_chroma, colorfulness


def prepare_data(
    src: str | Path,
    dst: str | Path,
    size: int,
    *,
    workers: int = 0,
    limit: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the cache of the images under `src` (short side resized to `size`, centre square) to folder `dst`.
    Unreadable files are skipped with a warning and listed in the index. Returns `dst`."""
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if size < 1 or limit < 0:
        raise ValueError(f"the size must be >= 1 px and the limit >= 0 (0 = all), got {size} and {limit}")
    if not src.is_dir():
        raise ValueError(f"prepare-data source {str(src)!r} does not exist or is not a folder")
    paths = list_images(src)[: limit if limit > 0 else None]
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(src)!r}")
    if (dst / INDEX_FILE).exists() and not overwrite:
        raise ValueError(f"{str(dst)!r} already holds a cache; pass overwrite=True (--overwrite) to replace it")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / INDEX_FILE).unlink(missing_ok=True)  # the index is written last: no index = incomplete cache
    entries = _write_images(paths, src, dst / IMAGES_FILE, size, workers or default_workers(), progress)
    if not entries["paths"]:  # an empty cache would only fail later, in training
        (dst / IMAGES_FILE).unlink(missing_ok=True)
        first = entries["skipped"][0] if entries["skipped"] else ["", ""]
        raise ValueError(f"none of the {len(paths)} image files under {str(src)!r} can be decoded (e.g. "
                         f"{Path(first[0]).name}: {first[1]}); nothing was cached")
    index = {
        "format": CACHE_FORMAT,
        "size": size,
        "count": len(entries["paths"]),
        "source": str(src.resolve()),
        **entries,
        "grayscale": [filters.is_grayscale(c) for c in entries["max_chroma"]],
        "chroma_threshold": filters.CHROMA_THRESHOLD,
        "thumbnail_side": filters.THUMBNAIL_SIDE,
    }
    tmp = dst / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, dst / INDEX_FILE)
    logger.info("prepare-data: %d images cached in %s (%d skipped)", index["count"], dst, len(entries["skipped"]))
    return dst


def _write_images(paths: list[Path], src: Path, out: Path, size: int, workers: int, progress: bool) -> dict[str, list]:
    """Decode `paths` in parallel into the memmap `out` in order, skipping unreadable ones; returns index lists."""
    images = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    entries: dict[str, list] = {"paths": [], "max_chroma": [], "colorfulness": [], "skipped": []}
    results = ordered_map(lambda p: _prepare_one(p, size), paths, workers)
    # The bar comes first in zip: zip stops at the first exhausted iterator, and tqdm counts an item (and closes at
    # 100%) only when it is asked for the next one.
    for result, path in zip(tqdm(results, total=len(paths), desc="prepare-data", disable=not progress), paths):
        if isinstance(result, str):
            logger.warning("skipping unreadable image %s (%s)", path, result)
            entries["skipped"].append([str(path), result])
            continue
        images[len(entries["paths"])] = result[0]
        entries["paths"].append(path.relative_to(src).as_posix())
        entries["max_chroma"].append(round(result[1], 3))
        entries["colorfulness"].append(round(result[2], 3))
    images.flush()
    del images
    if len(entries["paths"]) < len(paths):
        _truncate(out, len(entries["paths"]))
    return entries


def _truncate(path: Path, count: int) -> None:
    """Rewrite the memmap keeping its first `count` rows (only after skipped files, which are rare)."""
    full = np.load(path, mmap_mode="r")
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, full[:count])
    del full
    os.replace(tmp, path)


class CacheDataset(ImageDataset):
    """Images of a `prepare_data` cache. Filters read the statistics stored in its index (no decoding). Random crops
    are taken from the cached centre square; a `size` above the cache's is served upsampled (with a warning)."""

    def __init__(
        self,
        root: str | Path,
        *,
        size: int,
        train: bool,
        to_lab: bool = True,
        limit: int = 0,
        drop_grayscale: bool = False,
        min_colorfulness: float = 0.0,
    ) -> None:
        super().__init__(size=size, train=train, to_lab=to_lab)
        self.root = Path(root).expanduser()
        if not is_cache(self.root):
            raise ValueError(
                f"{str(self.root)!r} is not a prepare-data cache (no {INDEX_FILE} of format {CACHE_FORMAT})"
            )
        self.index: dict[str, Any] = json.loads((self.root / INDEX_FILE).read_text())
        if size > self.index["size"]:
            logger.warning(
                "cache %s holds %d px images; serving %d px upsamples them", self.root, self.index["size"], size
            )
        count = self.index["count"] if limit <= 0 else min(limit, self.index["count"])
        self.indices = list(range(count))  # `describe` works during filtering
        stats = list(zip(self.index["max_chroma"], self.index["colorfulness"]))
        self.indices = self.apply_filters(
            count, stats.__getitem__, drop_grayscale=drop_grayscale, min_colorfulness=min_colorfulness
        )
        if not self.indices:
            raise ValueError(f"no image of the cache {str(self.root)!r} passes the filters: {self.filter_report}")
        self._images: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers started with 'spawn' pickle the dataset: reopen the memmap there instead of copying it.
        return {**self.__dict__, "_images": None}

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Image.Image:
        if self._images is None:
            self._images = np.load(self.root / IMAGES_FILE, mmap_mode="r")
        return Image.fromarray(np.array(self._images[self.indices[index]]))

    def describe(self, index: int) -> str:
        return str(Path(self.index["source"]) / self.index["paths"][self.indices[index]])

    def split_key(self, index: int) -> str:  # the same key as the source folder's: one split for folder and cache
        return f"{Path(self.index['source']).name}/{self.index['paths'][self.indices[index]]}"


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gan-color prepare-data`."""
    parser.add_argument("src", help="folder of images (searched recursively)")
    parser.add_argument("dst", help="output folder for images.npy + index.json")
    parser.add_argument("--size", type=int, default=256, help="short side resize + centre crop size in px")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0 = min(8, CPU count))")
    parser.add_argument("--limit", type=int, default=0, help="cache only the first N images (0 = all)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cache in DST")


def run_cli(args: argparse.Namespace) -> int:
    """Run `prepare-data`; returns the process exit status."""
    try:
        dst = prepare_data(
            args.src, args.dst, args.size, workers=args.workers, limit=args.limit, overwrite=args.overwrite
        )
    except ValueError as err:
        print(f"prepare-data: error: {err}", file=sys.stderr)
        return 2
    index = json.loads((dst / INDEX_FILE).read_text())
    print(
        f"cached {index['count']} images of {args.size} px in {dst} "
        f"({len(index['skipped'])} unreadable skipped, {sum(index['grayscale'])} grayscale flagged)"
    )
    return 0
