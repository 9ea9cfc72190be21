"""A dataset over any folder of images (recursive, sorted); unreadable files are skipped with one warning each."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from gan_color.data import filters
from gan_color.data.base import ImageDataset
from gan_color.data.images import IMAGE_EXTENSIONS, check_readable, default_workers, list_images, load_rgb
from gan_color.data.images import load_thumbnail as _load_thumbnail

logger = logging.getLogger("gan_color.data")


class FolderDataset(ImageDataset):
    """Images under `root` in sorted relative-path order. `limit` keeps the first N files (before the filters, so it
    also bounds their cost). Headers are checked at construction (no pixel decode); files that only fail when fully
    decoded (truncated) are replaced at load time by the next image, see `ImageDataset`."""

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
        workers: int = 0,
    ) -> None:
        super().__init__(size=size, train=train, to_lab=to_lab)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ValueError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        paths = list_images(self.root)
        if not paths:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(self.root)!r}")
        if limit > 0:
            paths = paths[:limit]
        workers = workers or default_workers()
        self.paths, self.skipped = check_readable(paths, workers)
        keep = self.apply_filters(
            len(self.paths),
            lambda i: filters.image_stats(_load_thumbnail(self.paths[i], filters.THUMBNAIL_SIDE)),
            drop_grayscale=drop_grayscale,
            min_colorfulness=min_colorfulness,
            workers=workers,
        )
        self.paths = [self.paths[i] for i in keep]
        if not self.paths:
            raise ValueError(
                f"none of the {len(paths)} image files under {str(self.root)!r} is usable: {self.summary}"
            )
        logger.info("image folder %s: %s", self.root, self.summary)

    @property
    def summary(self) -> str:
        return (
            f"{len(self.paths)} images, {len(self.skipped)} unreadable skipped, filters: {self.filter_report or 'off'}"
        )

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        return load_rgb(self.paths[index], self.decode_side)

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def split_key(self, index: int) -> str:
        return f"{self.root.name}/{self.paths[index].relative_to(self.root).as_posix()}"
