"""Dataset filters on small thumbnails: drop grayscale images (as Zhang et al. 2016 did for ImageNet) and images whose
Hasler & Suesstrunk (2003) colourfulness is below a minimum."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from gan_color import color
from gan_color.data.images import DECODE_ERRORS, describe_error, ordered_map
from gan_color.data.transforms import to_float_tensor

logger = logging.getLogger("gan_color.data")

THUMBNAIL_SIDE = 64  # statistics are computed on thumbnails no larger than this (fast, and JPEG noise averages out)
CHROMA_THRESHOLD = 5.0  # CIE ab units: below ~5 a colour difference is barely visible, so the image is grayscale


def image_stats(image: Image.Image) -> tuple[float, float]:
    """(max chroma |ab| over pixels in CIE units, Hasler-Suesstrunk colourfulness) of an RGB thumbnail."""
    rgb = to_float_tensor(image).unsqueeze(0)
    ab = color.rgb_to_lab(rgb)[:, 1:]
    max_chroma = ab.square().sum(dim=1).sqrt().amax()
    return float(max_chroma), float(color.colorfulness(rgb)[0])


def is_grayscale(max_chroma: float, threshold: float = CHROMA_THRESHOLD) -> bool:
    """No pixel has visible chroma."""
    return max_chroma <= threshold


def compute_stats(
    stats_of: Callable[[int], tuple[float, float]], count: int, workers: int
) -> list[tuple[float, float] | str]:
    """`stats_of(i)` for i in 0..count-1 on a thread pool; a decode error gives its reason string instead."""

    def one(index: int) -> tuple[float, float] | str:
        try:
            return stats_of(index)
        except DECODE_ERRORS as err:
            return describe_error(err)

    return list(ordered_map(one, range(count), workers))


def select(
    stats: Sequence[tuple[float, float]],
    *,
    drop_grayscale: bool,
    min_colorfulness: float,
    chroma_threshold: float = CHROMA_THRESHOLD,
) -> tuple[list[int], dict[str, Any]]:
    """Indices passing the filters, and a report of how many each filter dropped (grayscale is checked first)."""
    kept, gray, dull = [], 0, 0
    for index, (max_chroma, colorfulness) in enumerate(stats):
        if drop_grayscale and is_grayscale(max_chroma, chroma_threshold):
            gray += 1
        elif colorfulness < min_colorfulness:
            dull += 1
        else:
            kept.append(index)
    report = {
        "considered": len(stats),
        "kept": len(kept),
        "dropped_grayscale": gray,
        "dropped_low_colorfulness": dull,
        "drop_grayscale": drop_grayscale,
        "chroma_threshold": chroma_threshold,
        "min_colorfulness": min_colorfulness,
    }
    logger.info(
        "filters kept %d of %d images (%d grayscale, %d with colourfulness < %g dropped)",
        len(kept),
        len(stats),
        gray,
        dull,
        min_colorfulness,
    )
    return kept, report
