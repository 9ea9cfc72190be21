"""Train/eval crops (PIL in, uint8 RGB tensor out) and the step that turns RGB into float RGB plus normalized L/ab
(`add_lab`), run on the device for whole batches: items stay uint8, a quarter of float32's bytes through the loader
workers' shared memory and the host-to-device copy."""

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
    return rgb_to_float(v2.functional.pil_to_tensor(image))


def rgb_to_float(rgb: torch.Tensor) -> torch.Tensor:
    """RGB as items carry it (uint8 0-255) or already float -> float32 in [0, 1], on the tensor's device."""
    return v2.functional.to_dtype(rgb, torch.float32, scale=True)


def train_transform(size: int, scale: tuple[float, float] = TRAIN_SCALE) -> Callable[[Image.Image], torch.Tensor]:
    """Random resized crop + horizontal flip (pix2pix-style jitter) -> uint8 [3, size, size]; draws from torch's
    global RNG, so it is seeded by torch.manual_seed and per DataLoader worker."""
    return v2.Compose(
        [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()]
    )


def eval_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Deterministic: resize the short side to `size`, then centre crop -> uint8 [3, size, size]."""
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.PILToTensor()])


def min_decode_side(size: int, train: bool, scale: tuple[float, float] = TRAIN_SCALE) -> int:
    """Smallest short side an image may be decoded at (JPEG draft) so the final crop is never upsampled."""
    return math.ceil(size / math.sqrt(scale[0])) if train else size


def add_lab(batch: dict[str, Any]) -> dict[str, Any]:
    """Return `batch` with `rgb` ([B, 3, H, W] or [3, H, W], uint8 or float, any device) as float32 in [0, 1], and
    normalized `gray_l` [.., 1, H, W] and `real_ab` [.., 2, H, W] computed from it unless both are already there."""
    rgb = rgb_to_float(batch["rgb"])
    if "gray_l" in batch and "real_ab" in batch:
        return {**batch, "rgb": rgb}
    gray_l, real_ab = color.rgb_to_model_inputs(rgb if rgb.dim() == 4 else rgb.unsqueeze(0))
    if rgb.dim() == 3:
        gray_l, real_ab = gray_l.squeeze(0), real_ab.squeeze(0)
    return {**batch, "rgb": rgb, "gray_l": gray_l, "real_ab": real_ab}
