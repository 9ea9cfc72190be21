"""Any photo as colorization reads it: its full-resolution CIE L (16-bit precise, EXIF-upright, any Pillow mode) and
its alpha, converted in strips so memory follows the image, with the size limit checked before decoding."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from gan_color import color
from gan_color.data.images import DECODE_ERRORS

# Full-resolution work runs on horizontal strips of about this many pixels: temporaries stay small whatever the
# image size, and every per-pixel step is independent, so strips give bit-identical results.
STRIP_PIXELS = 1 << 20
# Inputs larger than this are refused with a message before decoding (`--max-pixels`; 0 = no limit). Colorizing an
# image holds at most about BYTES_PER_PIXEL bytes per pixel beyond the interpreter (measured: 16.1 for a 100 MP
# JPEG, tests/test_colorize.py): its L (4, float32), the ab upsampled once, exactly as one pass would (8), the
# uint8 output (3) and strips of STRIP_PIXELS. Before strips it was ~81.
DEFAULT_MAX_PIXELS = 120_000_000
BYTES_PER_PIXEL = 18

@dataclass
class GrayImage:
    """An input reduced to what colorization uses: CIE L [1, H, W] in [0, 100] at full precision (16-bit inputs keep
    their 16 bits) and the alpha channel (uint8 [H, W]) to carry through, if any."""

    lightness: torch.Tensor
    alpha: np.ndarray | None = None


def _gray_values(image: Image.Image, peak: float | None = None) -> np.ndarray:
    """A single-channel image's values as float32 in [0, 1] by its nominal range (16-bit stays 16-bit precise).
    `peak` is the whole image's maximum when `image` is a strip of it (the range is the image's, not the strip's)."""
    array = np.asarray(image).astype(np.float32)
    if image.mode.startswith("I;16"):
        return array / 65535.0
    if peak is None:
        peak = float(array.max()) if array.size else 0.0
    if image.mode == "F" and peak <= 1.0:
        return np.clip(array, 0.0, 1.0)
    if image.mode in ("I", "F") and peak > 255.0:
        return np.clip(array / 65535.0, 0.0, 1.0)  # 'I' from a 16-bit source (older Pillow opens 16-bit PNG as 'I')
    return array / 255.0


def _strip_lightness(strip: Image.Image, peak: float | None) -> torch.Tensor:
    """CIE L [1, h, w] of one strip of an image already in mode 1, L, I, F, I;16* or RGB."""
    if strip.mode in ("1", "L", "I", "F") or strip.mode.startswith("I;16"):
        gray = torch.from_numpy(_gray_values(strip.convert("L") if strip.mode == "1" else strip, peak))
        return color.rgb_to_lightness(gray[None])  # one channel: gray, decoded once
    rgb = torch.from_numpy(np.array(strip.convert("RGB"))).permute(2, 0, 1)  # uint8: rgb_to_lab scales it
    return color.rgb_to_lightness(rgb)


def to_gray(image: Image.Image) -> GrayImage:
    """Upright (EXIF) Pillow image of any mode -> `GrayImage`. Colour inputs give their CIE L, as in training.
    Converted strip by strip: beyond the decoded image, memory grows by the 4-byte L only."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P" or "transparency" in image.info:
        # palette / colour-key transparency -> a real alpha channel; palettes may hold colours, so go through RGB
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    alpha = None
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        alpha = np.asarray(image.getchannel("A")).copy()
    peak = None
    if image.mode in ("I", "F"):
        peak = float(image.getextrema()[1]) if image.width and image.height else 0.0
    width, height = image.size
    lightness = torch.empty(1, height, width)
    rows = max(1, STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        if strip.mode in ("LA", "La"):
            strip = strip.convert("L")
        elif strip.mode in ("PA", "RGBA", "RGBa"):
            strip = strip.convert("RGB")
        lightness[:, top: top + rows] = _strip_lightness(strip, peak)
    return GrayImage(lightness=lightness, alpha=alpha)


def load_gray(path: str | os.PathLike, *, max_pixels: int = 0) -> GrayImage:
    with Image.open(path) as image:
        check_pixels(image.size, max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is max_pixels
            image.load()
        return to_gray(image)


class TooLargeError(ValueError):
    """An input above `--max-pixels`."""


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if max_pixels and width * height > max_pixels:
        raise TooLargeError(
            f"{width}x{height} = {width * height / 1e6:.1f} MP exceeds --max-pixels {max_pixels} (colorizing needs "
            f"about {BYTES_PER_PIXEL * width * height / 1e9:.1f} GB for it); raise --max-pixels or downscale it")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header (no decode); (0, 0) when unreadable (decoding then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except DECODE_ERRORS:
        return 0, 0


def gray_rgb(image: GrayImage) -> torch.Tensor:
    """The input as the model saw it (its L with no colour), for side-by-side pairs."""
    lab = torch.cat([image.lightness, torch.zeros(2, *image.lightness.shape[1:])])
    return color.lab_to_rgb(lab[None])[0]
