"""Train/eval crops (PIL in, float RGB tensor in [0, 1] out) and the RGB -> normalized L/ab step (`add_lab`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2

from gan_color import color

# Random-resized-crop area range. ImageNet classifiers use (0.08, 1); colorization needs scene context for the colour
# of each object, so crops keep at least ~35% of the image (~60% of each side) while still adding scale variety.
TRAIN_SCALE = (0.35, 1.0)


def to_float_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 [3, H, W] in [0, 1]."""
    return v2.functional.to_dtype(v2.functional.pil_to_tensor(image), torch.float32, scale=True)


def train_transform(size: int, scale: tuple[float, float] = TRAIN_SCALE) -> Callable[[Image.Image], torch.Tensor]:
    """Random resized crop + horizontal flip (pix2pix-style jitter); draws from torch's global RNG, so it is seeded
    by torch.manual_seed and per DataLoader worker."""
    return v2.Compose(
        [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip(), to_float_tensor]
    )


def eval_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Deterministic: resize the short side to `size`, then centre crop."""
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), to_float_tensor])


def min_decode_side(size: int, train: bool, scale: tuple[float, float] = TRAIN_SCALE) -> int:
    """Smallest short side an image may be decoded at (JPEG draft) so the final crop is never upsampled."""
    return math.ceil(size / math.sqrt(scale[0])) if train else size


def add_lab(batch: dict[str, Any]) -> dict[str, Any]:
    """Return `batch` with normalized `gray_l` [.., 1, H, W] and `real_ab` [.., 2, H, W] computed from `batch["rgb"]`
    ([B, 3, H, W] or [3, H, W], on any device) unless both are already there."""
    if "gray_l" in batch and "real_ab" in batch:
        return batch
    rgb = batch["rgb"]
    gray_l, real_ab = color.rgb_to_model_inputs(rgb if rgb.dim() == 4 else rgb.unsqueeze(0))
    if rgb.dim() == 3:
        gray_l, real_ab = gray_l.squeeze(0), real_ab.squeeze(0)
    return {**batch, "gray_l": gray_l, "real_ab": real_ab}
