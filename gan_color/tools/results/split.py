"""The fixed split of an image folder into training and held-out images, shared by every model of the table."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gan_color.data import list_images
from gan_color.data.split import split_rank

HELDOUT = "heldout"  # the held-out folder's name, hence each run's eval/heldout/ folder


def split_order(files: list[str], seed: int) -> list[str]:
    """Files ordered by a hash of (seed, relative path): the same on every machine and library version, and a
    file's place does not depend on which other files exist."""
    return sorted(files, key=lambda name: split_rank(name, seed))


def make_split(data: str | os.PathLike, out: str | os.PathLike, *, train: int, heldout: int,
               seed: int = 0) -> dict[str, Path]:
    """Folders `out/train` and `out/heldout` of symlinks to `heldout` + `train` disjoint images of `data` (held-out
    images first in the hash order, then training images), rebuilt on every call; `out/split.json` lists them."""
    data, out = Path(data).resolve(), Path(out)
    names = [p.relative_to(data).as_posix() for p in list_images(data)]
    if train < 1 or heldout < 1 or train + heldout > len(names):
        raise ValueError(f"{data} holds {len(names)} images; cannot split off {train} training and {heldout} "
                         "held-out images (both must be >= 1)")
    order = split_order(names, seed)
    chosen = {HELDOUT: sorted(order[:heldout]), "train": sorted(order[heldout:heldout + train])}
    folders = {}
    for split, files in chosen.items():
        folder = out / split
        if folder.exists():
            shutil.rmtree(folder)  # only symlinks live here
        for name in files:
            link = folder / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(data / name)
        folders[split] = folder
    manifest = {"data": str(data), "seed": seed, **chosen}
    (out / "split.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folders
