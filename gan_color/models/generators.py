"""pix2pix generators (Isola et al. 2017; Johnson et al. 2016 ResNet design): L (1 channel) in, ab (2 channels) out."""

from __future__ import annotations

import torch
from torch import nn

from gan_color.models.layers import conv_bias, init_weights, norm_layer
from gan_color.registry import GENERATORS


class ResnetBlock(nn.Module):
    """conv3-norm-ReLU-(dropout)-conv3-norm with reflection padding and an identity shortcut."""

    def __init__(self, channels: int, *, norm: str, dropout: bool) -> None:
        super().__init__()
        norm_cls, bias = norm_layer(norm), conv_bias(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_cls(channels)]
        layers.append(nn.ReLU(True))
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_cls(channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out, tanh (pix2pix `ResnetGenerator`)."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 2,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        norm_cls, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm_cls(ngf), nn.ReLU(True)
        ]
        for i in range(2):  # two stride-2 downsamplings
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_cls(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm=norm, dropout=dropout) for _ in range(n_blocks)]
        for i in range(2):  # two transposed-conv upsamplings
            c = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_cls(c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        return self.model(gray_l)


@GENERATORS.register("resnet_6blocks")
def resnet_6blocks(*, in_channels: int = 1, out_channels: int = 2, ngf: int = 64, norm: str = "instance",
                   dropout: bool = False) -> ResnetGenerator:
    return ResnetGenerator(in_channels=in_channels, out_channels=out_channels, ngf=ngf, n_blocks=6, norm=norm,
                           dropout=dropout)


@GENERATORS.register("resnet_9blocks")
def resnet_9blocks(*, in_channels: int = 1, out_channels: int = 2, ngf: int = 64, norm: str = "instance",
                   dropout: bool = False) -> ResnetGenerator:
    return ResnetGenerator(in_channels=in_channels, out_channels=out_channels, ngf=ngf, n_blocks=9, norm=norm,
                           dropout=dropout)


class UnetSkipBlock(nn.Module):
    """One level of the pix2pix U-Net: down (conv4 s2) -> inner levels -> up (convT4 s2), concatenated with input."""

    def __init__(self, outer: int, inner: int, *, in_channels: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", dropout: bool = False,
                 out_channels: int | None = None) -> None:
        super().__init__()
        self.outermost = outermost
        norm_cls, bias = norm_layer(norm), conv_bias(norm)
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, out_channels or outer, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm_cls(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, norm_cls(inner), submodule, nn.ReLU(True), up, norm_cls(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """pix2pix `UnetGenerator`: `num_downs` halvings (8 for 256 px input), skip connections between mirrored levels."""

    def __init__(self, *, in_channels: int = 1, out_channels: int = 2, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True) -> None:
        super().__init__()
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipBlock(ngf, ngf, in_channels=in_channels, out_channels=out_channels, submodule=block,
                                   outermost=True, norm=norm)
        self.num_downs = num_downs
        init_weights(self)

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        return self.model(gray_l)


@GENERATORS.register("unet_256")
def unet_256(*, in_channels: int = 1, out_channels: int = 2, ngf: int = 64, norm: str = "batch",
             dropout: bool = True) -> UnetGenerator:
    return UnetGenerator(in_channels=in_channels, out_channels=out_channels, num_downs=8, ngf=ngf, norm=norm,
                         dropout=dropout)


@GENERATORS.register("unet_128")
def unet_128(*, in_channels: int = 1, out_channels: int = 2, ngf: int = 64, norm: str = "batch",
             dropout: bool = True) -> UnetGenerator:
    return UnetGenerator(in_channels=in_channels, out_channels=out_channels, num_downs=7, ngf=ngf, norm=norm,
                         dropout=dropout)
