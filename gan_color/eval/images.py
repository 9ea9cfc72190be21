"""The images `evaluate` scores: a folder under the fixed protocol (the same crops for every model) or its files at
full resolution; a file that cannot be decoded is left out and reported, never replaced by another image."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, default_collate
from torchvision.transforms.v2.functional import pil_to_tensor

from gan_color.data import FolderDataset
from gan_color.data.base import ImageDataset
from gan_color.data.images import DECODE_ERRORS, describe_error, load_rgb


class FullResolutionImages(Dataset):
    """The images of `paths` at their own size (items: `rgb` uint8 [3,H,W], `index`), for full-resolution mode."""

    def __init__(self, paths: Sequence[Path], root: Path, *, skipped: Sequence = (),
                 filter_report: dict[str, Any] | None = None) -> None:
        self.paths, self.root = list(paths), root
        self.skipped, self.filter_report = list(skipped), filter_report or {}  # what the folder left out, and why

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"rgb": pil_to_tensor(load_rgb(self.paths[index])), "index": index}


class OwnPixels(Dataset):
    """`images` where an item that cannot be decoded comes back as {'index', 'error'}: a folder dataset would serve
    the next decodable image in its place, and that image's pixels would be scored under the broken file's name."""

    def __init__(self, images: Dataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            if isinstance(self.images, ImageDataset) and not self.images.to_lab:  # this file, never a stand-in
                return {"rgb": self.images.crop(self.images.load(index), index), "index": index}
            return self.images[index]
        except DECODE_ERRORS as err:
            return {"index": index, "error": describe_error(err)}


def collate_own_pixels(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of the decodable items, plus `failed`: (index, reason) of the others."""
    good = [item for item in items if "error" not in item]
    batch = default_collate(good) if good else {}
    batch["failed"] = [(item["index"], item["error"]) for item in items if "error" in item]
    return batch


class ScoredImages(Dataset):
    """The items of `images` at `indices` (filled in while scoring): FID's real set is the images actually scored."""

    def __init__(self, images: Dataset, indices: list[int]) -> None:
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.images[self.indices[index]]


def open_images(data: str | os.PathLike | Dataset, *, size: int, limit: int = 0, drop_grayscale: bool = True,
                full_resolution: bool = False) -> Dataset:
    """The evaluation images: a folder under the fixed protocol (resize short side to `size` + centre crop, the same
    crops for every model), the same files at full resolution, or a given dataset of {'rgb', 'index'} items."""
    if isinstance(data, Dataset):
        return data
    folder = FolderDataset(data, size=size, train=False, to_lab=False, limit=limit, drop_grayscale=drop_grayscale)
    if full_resolution:
        return FullResolutionImages(folder.paths, folder.root, skipped=folder.skipped,
                                    filter_report=folder.filter_report)
    return folder


def image_name(images: Dataset, index: int) -> str:
    paths, root = getattr(images, "paths", None), getattr(images, "root", None)
    if paths is None:
        return str(index)
    return Path(paths[index]).relative_to(root).as_posix() if root else str(paths[index])


def describe_data(data: Any, images: Dataset, *, failed: Sequence[tuple[str, str]] = (),
                   scored: int | None = None) -> dict[str, Any]:
    root = getattr(images, "root", None)
    unreadable = [*getattr(images, "skipped", []), *failed]  # bad headers (found up front), then failed decodes
    left_out = {"unreadable": [[str(name), str(reason)] for name, reason in unreadable],
                "filters": getattr(images, "filter_report", {})}
    count = len(images) if scored is None else scored
    if root is None:
        return {"name": type(data).__name__, "root": None, "images": count, **left_out}
    return {"name": Path(root).resolve().name, "root": str(Path(root).resolve()), "images": count, **left_out}


def left_out_text(data: dict[str, Any]) -> str:
    """Why some files of the folder were not scored ("" when none was left out)."""
    filters, unreadable = data.get("filters") or {}, data.get("unreadable") or []
    reasons = []
    if filters.get("dropped_grayscale"):
        reasons.append(f"{filters['dropped_grayscale']} without colour (grayscale; --keep-grayscale scores them)")
    if filters.get("dropped_low_colorfulness"):
        reasons.append(f"{filters['dropped_low_colorfulness']} below the colourfulness threshold")
    if unreadable:
        reasons.append(f"{len(unreadable)} unreadable ({', '.join(Path(n).name for n, _ in unreadable[:3])}"
                       f"{', ...' if len(unreadable) > 3 else ''})")
    if not reasons:
        return ""
    total = data.get("images", 0) + len(unreadable) + filters.get("dropped_grayscale", 0) \
        + filters.get("dropped_low_colorfulness", 0)
    return f"scored {data.get('images', 0)} of {total} files; left out: {'; '.join(reasons)}"
