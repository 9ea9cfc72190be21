"""Regression colorizers (continuous output): a plain CNN encoder-decoder, a U-Net, and a ResNet-18-encoder network.

Each takes `in_channels` (1 = normalized L, 3 = gray as sRGB), `out_channels` (2 = ab, 3 = RGB) and `final`
(tanh for normalized ab, sigmoid for sRGB), so the `regression` objective picks Lab or RGB output.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.blocks import check_channels, conv_bn_relu, crop_to, final_activation, pad_to_multiple, up_bn_relu
from gan_color.registry import BASELINE_NETWORKS


@BASELINE_NETWORKS.register("cnn_encoder_decoder")
class CNNEncoderDecoder(nn.Module):
    """4 x [conv3-BN-ReLU-maxpool] down (width x 1, 2, 4, 8), 4 x [convT4 s2-BN-ReLU] up, conv3 + final activation.

    With width 64 (the seed's 64/128/256/512 channels), 1 input and 2 output channels: 4,337,602 parameters.
    """

    stride = 16

    def __init__(self, *, in_channels: int = 1, out_channels: int = 2, final: str = "tanh", width: int = 64) -> None:
        super().__init__()
        check_channels(in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        widths = [width, 2 * width, 4 * width, 8 * width]
        down: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *widths[:-1]], widths):
            down += [*conv_bn_relu(c_in, c_out), nn.MaxPool2d(2)]
        up: list[nn.Module] = []
        for c_in in reversed(widths):
            up += up_bn_relu(c_in, c_in // 2)
        self.encoder, self.decoder = nn.Sequential(*down), nn.Sequential(*up)
        self.head = nn.Sequential(nn.Conv2d(width // 2, out_channels, 3, padding=1), final_activation(final))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = self.head(self.decoder(self.encoder(pad_to_multiple(x, self.stride))))
        return crop_to(y, height, width)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(in_channels, out_channels), *conv_bn_relu(out_channels, out_channels))


@BASELINE_NETWORKS.register("unet_regressor")
class UNetRegressor(nn.Module):
    """Ronneberger et al. 2015 U-Net, 4 levels: double conv3 per level, maxpool down, convT2 up, concatenated skips.

    Width 64 is the original (31M parameters); the encoder runs at 1, 1/2, 1/4, 1/8 and the bottleneck at 1/16.
    """

    stride = 16

    def __init__(self, *, in_channels: int = 1, out_channels: int = 2, final: str = "tanh", width: int = 64) -> None:
        super().__init__()
        check_channels(in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        widths = [width * 2**i for i in range(4)]
        self.down = nn.ModuleList(double_conv(c_in, c) for c_in, c in zip([in_channels, *widths[:-1]], widths))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(widths[-1], 2 * widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * c, c, 2, stride=2) for c in reversed(widths))
        self.merge = nn.ModuleList(double_conv(2 * c, c) for c in reversed(widths))
        self.head = nn.Sequential(nn.Conv2d(width, out_channels, 1), final_activation(final))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return crop_to(self.head(x), height, width)
