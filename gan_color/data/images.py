"""Image files: recursive discovery, cheap header checks, EXIF orientation and any Pillow mode -> 8-bit RGB."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger("gan_color.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Transparent pixels are composited on white, as browsers and viewers show them; the colour stored under alpha = 0 is
# arbitrary (often black), so dropping alpha would teach the model colours nobody sees.
BACKGROUND = (255, 255, 255)
# What Pillow raises on malformed or truncated files (measured by fuzzing JPEG/PNG/WebP/BMP/TIFF bytes).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def list_images(root: str | Path) -> list[Path]:
    """Image files under `root` (recursive, extensions case-insensitive, hidden files/folders skipped), sorted."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .ipynb_checkpoints, .git, ...
        for name in filenames:
            # macOS '._x.jpg' AppleDouble files carry the image's extension but no image.
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def describe_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def probe(path: str | Path) -> str | None:
    """Why `path` cannot be an image (unreadable header), or None. Parses the header only, no pixel decode."""
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header is parsed by open(); touch it so lazy plugins fail here
    except DECODE_ERRORS as err:
        return describe_error(err)
    return None


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int = 512) -> Iterator[R]:
    """`map(fn, items)` on a thread pool, in order, with at most `window` tasks in flight (bounded memory)."""
    # Threads suffice: Pillow releases the GIL while decoding and resampling.
    iterator = iter(items)
    if workers <= 1:
        yield from map(fn, iterator)
        return
    with ThreadPoolExecutor(workers) as pool:
        while chunk := list(islice(iterator, window)):
            yield from pool.map(fn, chunk)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: alpha composited on white, 16-bit/32-bit/float rescaled (not clipped) to 8 bit."""
    if image.mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_to_uint8(np.asarray(image), image.mode)).convert("RGB")
    if "transparency" in image.info:
        image = image.convert("RGBA")  # palette / colour-key transparency -> a real alpha channel
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = image.convert("LA").convert("RGBA") if image.mode == "La" else image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """Rescale a high-bit-depth grayscale array to 0..255 by its nominal range (clipping would whiten the image)."""
    array = array.astype(np.float64)
    peak = float(array.max()) if array.size else 0.0
    if mode.startswith("I;16"):
        scale = 255.0 / 65535.0
    elif mode == "F" and peak <= 1.0:
        scale = 255.0  # float images are conventionally in [0, 1]
    elif peak <= 255.0:
        scale = 1.0  # 'I'/'F' holding 8-bit values
    elif peak <= 65535.0:
        scale = 255.0 / 65535.0  # 'I' from a 16-bit source (older Pillow opens 16-bit PNGs as 'I')
    else:
        scale = 255.0 / peak
    return np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)


def load_rgb(path: str | Path, min_side: int = 0) -> Image.Image:
    """Decode `path` to upright RGB. For JPEG, `min_side` lets libjpeg decode at 1/2..1/8 scale (Image.draft) while
    keeping both sides >= min_side, which is several times faster for large photos and small targets."""
    with Image.open(path) as image:
        if min_side:
            image.draft(None, (min_side, min_side))  # a no-op for formats other than JPEG
        image = ImageOps.exif_transpose(image)  # returns a loaded copy, so the file can close
        return to_rgb(image)


def load_thumbnail(path: str | Path, side: int) -> Image.Image:
    """Small RGB version of `path` (longest side <= side) for cheap per-image statistics; orientation irrelevant."""
    with Image.open(path) as image:
        image.draft(None, (side, side))
        image.load()  # decode while the file is open
        image = to_rgb(image)
        image.thumbnail((side, side))
        return image


def thumbnail_of(image: Image.Image, side: int) -> Image.Image:
    image = image.copy()
    image.thumbnail((side, side))
    return image


def check_readable(paths: Sequence[Path], workers: int) -> tuple[list[Path], list[tuple[str, str]]]:
    """Split `paths` into readable ones and (path, reason) for the rest, logging one warning per bad file."""
    good, skipped = [], []
    for path, reason in zip(paths, ordered_map(probe, paths, workers)):
        if reason is None:
            good.append(path)
        else:
            logger.warning("skipping unreadable image %s (%s)", path, reason)
            skipped.append((str(path), reason))
    return good, skipped
