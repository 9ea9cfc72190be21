"""Classification colorizers: logits over the Q ab bins per pixel (Zhang et al., ECCV 2016).

`eccv16` is the paper's VGG-style network (blocks 1-8, dilated blocks 5-6, one upsampling; logits at 1/4 of the
input's resolution); `unet_classifier` adds U-Net-style additive skips (block 3->6, 2->7, 1->8) and predicts at full
resolution. `out_channels` defaults to Q = len(gan_color.ab_grid.ab_bins()).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.blocks import check_channels, crop_to, final_activation, pad_to_multiple
from gan_color import ab_grid
from gan_color.registry import BASELINE_NETWORKS


def zhang_block(in_channels: int, out_channels: int, convs: int, *, stride: int = 1, dilation: int = 1,
                norm: bool = True) -> nn.Sequential:
    """`convs` x [conv3 + ReLU], the last with `stride`, then batch norm, as in Zhang et al.'s released model."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, stride=stride if i == convs - 1 else 1,
                      padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
        ]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def default_bins(out_channels: int | None) -> int:
    return len(ab_grid.ab_bins()) if out_channels is None else out_channels


@BASELINE_NETWORKS.register("eccv16")
class ECCV16(nn.Module):
    """Zhang et al. 2016, Table 4: conv1-conv8 (width x 1, 2, 4, 8, 8, 8, 8, 4 channels; width 64 = the paper), the
    first three blocks halve the resolution, conv5-6 use dilation 2, conv8 starts with a x2 transposed convolution;
    a 1x1 convolution gives Q logits at 1/4 of the input's resolution (as in the paper)."""

    stride = 8  # the deepest features are at 1/8
    output_scale = 4  # logits at 1/4

    def __init__(self, *, in_channels: int = 1, out_channels: int | None = None, final: str = "none",
                 width: int = 64) -> None:
        super().__init__()
        out_channels = default_bins(out_channels)
        check_channels(in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        w = width
        self.features = nn.Sequential(
            zhang_block(in_channels, w, 2, stride=2),  # conv1-3 each end at half the resolution
            zhang_block(w, 2 * w, 2, stride=2),
            zhang_block(2 * w, 4 * w, 3, stride=2),
            zhang_block(4 * w, 8 * w, 3),
            zhang_block(8 * w, 8 * w, 3, dilation=2),  # conv5-6: dilation widens context without downsampling
            zhang_block(8 * w, 8 * w, 3, dilation=2),
            zhang_block(8 * w, 8 * w, 3),
            nn.ConvTranspose2d(8 * w, 4 * w, 4, stride=2, padding=1),  # conv8: x2 upsampling, then two convs
            nn.ReLU(inplace=True),
            zhang_block(4 * w, 4 * w, 2, norm=False),
        )
        self.head = nn.Sequential(nn.Conv2d(4 * w, out_channels, 1), final_activation(final))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = self.head(self.features(pad_to_multiple(x, self.stride)))
        return crop_to(y, -(-height // self.output_scale), -(-width // self.output_scale))


@BASELINE_NETWORKS.register("unet_classifier")
class UNetClassifier(nn.Module):
    """Blocks 1-5 as an encoder (1, 1/2, 1/4, 1/8, 1/8 dilated), blocks 6-8 upsample x2 each and ADD the features
    of blocks 3, 2, 1 (additive skips, as Zhang et al.'s 2017 interactive network); Q logits at full resolution."""

    stride = 8

    def __init__(self, *, in_channels: int = 1, out_channels: int | None = None, final: str = "none",
                 width: int = 64) -> None:
        super().__init__()
        out_channels = default_bins(out_channels)
        check_channels(in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        w = width
        self.encoder = nn.ModuleList([
            zhang_block(in_channels, w, 2),
            zhang_block(w, 2 * w, 2, stride=2),
            zhang_block(2 * w, 4 * w, 3, stride=2),
            zhang_block(4 * w, 8 * w, 3, stride=2),
            zhang_block(8 * w, 8 * w, 3, dilation=2),
        ])
        self.up = nn.ModuleList(nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1)
                                for c_in, c in ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w)))
        self.decoder = nn.ModuleList([
            zhang_block(4 * w, 4 * w, 2),  # block 6 (+ block 3)
            zhang_block(2 * w, 2 * w, 1),  # block 7 (+ block 2)
            zhang_block(w, w, 1, norm=False),  # block 8 (+ block 1)
        ])
        self.head = nn.Sequential(nn.Conv2d(w, out_channels, 1), final_activation(final))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        features = []
        for block in self.encoder:
            x = block(x)
            features.append(x)
        x = features[-1]
        for up, block, skip in zip(self.up, self.decoder, reversed(features[:3])):
            x = block(torch.relu(up(x) + skip))
        return crop_to(self.head(x), height, width)
