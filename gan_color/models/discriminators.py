"""Conditional PatchGAN discriminator (pix2pix `NLayerDiscriminator`): sees L and ab, scores overlapping patches."""

from __future__ import annotations

import torch
from torch import nn

from gan_color.models.layers import conv_bias, init_weights, norm_layer
from gan_color.registry import DISCRIMINATORS


class PatchDiscriminator(nn.Module):
    """4x4 convs with LeakyReLU(0.2); n_layers=3 gives the 70x70 receptive field (a 30x30 map for 256 px input)."""

    def __init__(self, *, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        norm_cls, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last feature layer keeps the resolution (pix2pix)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_cls(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))  # one logit per patch
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers
        init_weights(self)

    def forward(self, gray_l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        # Conditional GAN: D judges the (condition, output) pair, so it can penalise colours implausible for this L.
        return self.model(torch.cat([gray_l, ab], dim=1))

    @property
    def receptive_field(self) -> int:
        """Receptive field in px of one output logit (70 for n_layers=3)."""
        field = 1
        for layer in reversed([m for m in self.model if isinstance(m, nn.Conv2d)]):
            field = field * layer.stride[0] + (layer.kernel_size[0] - layer.stride[0])
        return field


@DISCRIMINATORS.register("patchgan")
def patchgan(*, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> PatchDiscriminator:
    return PatchDiscriminator(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm)


@DISCRIMINATORS.register("pixelgan")
def pixelgan(*, in_channels: int = 3, ndf: int = 64, norm: str = "instance") -> nn.Module:
    """pix2pix 1x1 PixelGAN discriminator, for ablations."""
    bias = conv_bias(norm)
    net = nn.Sequential(
        nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
        norm_layer(norm)(ndf * 2), nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 2, 1, 1, bias=bias),
    )
    return _Conditional(init_weights(net))


class _Conditional(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.model = net

    def forward(self, gray_l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([gray_l, ab], dim=1))
