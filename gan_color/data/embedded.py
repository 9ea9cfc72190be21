"""The default offline dataset: colour photos bundled inside scikit-image, served as random crops."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from gan_color.data.base import ImageDataset
from gan_color.data.transforms import TRAIN_SCALE

# Natural colour photos that ship inside the scikit-image wheel (skimage/data/*.png|jpg), so loading them never
# triggers a pooch download. Microscopy, astronomy and synthetic images (ihc, hubble, retina, colorwheel) are left
# out: they would teach colours unlike those of photographs.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")


@cache
def load_photos() -> tuple[np.ndarray, ...]:
    """The bundled photos as uint8 [H, W, 3] arrays (cached per process)."""
    from skimage import data  # imported lazily: scikit-image is only needed for this dataset

    loaders = {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }
    return tuple(np.ascontiguousarray(loaders[name]()[..., :3]) for name in PHOTOS)


class EmbeddedDataset(ImageDataset):
    """`length` crops cycling over the bundled photos. Train: random resized crop + flip (torch's global RNG). Eval:
    a fixed square crop per index (seeded by `seed` and the index), so a validation set is varied but identical on
    every call."""

    def __init__(self, *, size: int, train: bool, to_lab: bool = True, length: int = 2048, seed: int = 0) -> None:
        super().__init__(size=size, train=train, to_lab=to_lab)
        if length < 1:
            raise ValueError(f"embedded dataset length must be >= 1, got {length}")
        self.length, self.seed = length, seed
        self.photos = [Image.fromarray(array) for array in load_photos()]

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> Image.Image:
        return self.photos[index % len(self.photos)]

    def describe(self, index: int) -> str:
        return f"skimage.data.{PHOTOS[index % len(self.photos)]}"

    def split_key(self, index: int) -> str:  # whole photos are held out, not crops of photos that train
        return self.describe(index)

    def crop(self, image: Image.Image, index: int) -> torch.Tensor:
        if self.train:
            return self.transform(image)
        # A private generator, so evaluation neither consumes nor depends on the global RNG state.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        u_scale, u_left, u_top, u_flip = torch.rand(4, generator=generator).tolist()
        width, height = image.size
        side = min(width, height) * math.sqrt(TRAIN_SCALE[0] + u_scale * (TRAIN_SCALE[1] - TRAIN_SCALE[0]))
        left, top = u_left * (width - side), u_top * (height - side)
        patch = image.resize(
            (self.size, self.size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
        )
        if u_flip < 0.5:
            patch = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return v2.functional.pil_to_tensor(patch)
