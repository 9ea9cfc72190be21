"""Layers shared by the baseline networks: conv-BN-ReLU blocks, the output activation by name, and padding any input
size to the network's stride (and cropping back), so every baseline colours images of any size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FINALS = ("tanh", "sigmoid", "none")


def final_activation(final: str) -> nn.Module:
    """tanh for normalized ab, sigmoid for sRGB in [0, 1], none for logits."""
    if final == "tanh":
        return nn.Tanh()
    if final == "sigmoid":
        return nn.Sigmoid()
    if final == "none":
        return nn.Identity()
    raise ValueError(f"final must be one of {FINALS}, got {final!r}")


def conv_bn_relu(in_channels: int, out_channels: int, *, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    """3x3 convolution (no bias: the batch norm shifts), batch norm, ReLU; 'same' padding for any dilation."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def up_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """x2 upsampling by a 4x4 stride-2 transposed convolution, batch norm, ReLU."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def check_channels(*, in_channels: int, out_channels: int) -> None:
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (normalized L) or 3 (gray as sRGB), got {in_channels}")
    if out_channels < 1:
        raise ValueError(f"out_channels must be >= 1, got {out_channels}")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right of x [B,C,H,W] so H and W are multiples of `multiple` (the network's stride).

    Replicate, not reflect: reflection needs the pad to be smaller than the image, which tiny inputs break.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def crop_to(y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left height x width of y (undoes `pad_to_multiple`, also at a fraction of the input's size)."""
    return y[..., :height, :width]
