"""A U-Net colorizer on an ImageNet-pretrained EfficientNet-Lite encoder: the semantic features tell it what things
are (sky, grass, skin, fur), the decoder paints their colours back at full resolution (DeOldify's and DDColor's
recipe: a pretrained classifier as the encoder of an image-to-image generator)."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from gan_color import color
from gan_color.models.pretrained import EFFICIENTNET_LITE, load_efficientnet_lite
from gan_color.registry import GENERATORS

DECODER_CHANNELS = (256, 128, 64, 32)  # at strides 16, 8, 4, 2


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]


class DecoderBlock(nn.Module):
    """x2 bilinear upsampling, concatenation with the encoder's skip feature, two conv3-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*conv_bn_relu(in_channels + skip_channels, out_channels),
                                   *conv_bn_relu(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))


class EncoderUNet(nn.Module):
    """Gray L -> the gray sRGB image the encoder was trained on (scaled to its input range) -> EfficientNet-Lite
    features at strides 2..32 -> U-Net decoder with a skip at every stride -> conv3 -> tanh ab at half resolution,
    upsampled bilinearly (chroma is smooth: Zhang et al. predict it at a quarter; the exact full-resolution L is
    what carries the edges). The encoder's first convolution takes one channel: its RGB filters summed, which
    responds to a gray image exactly as the RGB filters do to that image in three equal channels."""

    def __init__(self, *, variant: str = "lite0", pretrained: bool = True, out_channels: int = 2,
                 decoder_channels: tuple[int, ...] | list[int] = DECODER_CHANNELS,
                 freeze_encoder: bool = False) -> None:
        super().__init__()
        self.freeze_encoder = freeze_encoder
        if variant not in EFFICIENTNET_LITE:
            raise ValueError(f"variant must be one of {sorted(EFFICIENTNET_LITE)}, got {variant!r}")
        decoder_channels = tuple(int(c) for c in decoder_channels)
        if len(decoder_channels) != 4 or min(decoder_channels) < 1:
            raise ValueError(f"decoder_channels must be 4 positive widths (strides 16..2), got {decoder_channels}")
        weights = EFFICIENTNET_LITE[variant]
        self.encoder = timm.create_model(weights.timm_arch, features_only=True, pretrained=False, in_chans=1)
        if pretrained:
            self.load_imagenet(variant)
        low, high = weights.input_range
        self.input_scale, self.input_shift = high - low, low
        skips = self.encoder.feature_info.channels()  # strides 2, 4, 8, 16, 32
        widths = (skips[-1], *decoder_channels)
        skip_widths = tuple(reversed(skips[:-1]))  # strides 16, 8, 4, 2
        self.decoder = nn.ModuleList(DecoderBlock(widths[i], skip_widths[i], widths[i + 1]) for i in range(4))
        self.head = nn.Sequential(nn.Conv2d(decoder_channels[-1], out_channels, 3, padding=1), nn.Tanh())
        self.stride = 32
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> EncoderUNet:
        """A frozen encoder stays in eval mode: its BatchNorm keeps ImageNet's statistics."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def load_imagenet(self, variant: str) -> None:
        depths = [len(stage) for stage in self.encoder.blocks]
        state = load_efficientnet_lite(variant, depths)
        state = {k: v for k, v in state.items() if not k.startswith(("conv_head", "bn2", "classifier"))}
        state["conv_stem.weight"] = state["conv_stem.weight"].sum(1, keepdim=True)  # RGB filters -> one gray input
        self.encoder.load_state_dict(state, strict=True)

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        height, width = gray_l.shape[-2:]
        pad_h, pad_w = -height % self.stride, -width % self.stride
        x = F.pad(gray_l, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else gray_l
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            features = self.encoder(color.gray_l_to_srgb(x) * self.input_scale + self.input_shift)
        y = features[-1]
        for block, skip in zip(self.decoder, reversed(features[:-1])):
            y = block(y, skip)
        ab = F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return ab[..., :height, :width]


@GENERATORS.register("effnet_lite0_unet")
def effnet_lite0_unet(*, pretrained: bool = True, out_channels: int = 2, freeze_encoder: bool = False,
                      decoder_channels: tuple[int, ...] | list[int] = DECODER_CHANNELS) -> EncoderUNet:
    """U-Net on ImageNet EfficientNet-Lite0 (4.7M encoder parameters, 87.8% top-1 on our 1000-photo sample)."""
    return EncoderUNet(variant="lite0", pretrained=pretrained, out_channels=out_channels,
                       decoder_channels=decoder_channels, freeze_encoder=freeze_encoder)


@GENERATORS.register("effnet_lite2_unet")
def effnet_lite2_unet(*, pretrained: bool = True, out_channels: int = 2, freeze_encoder: bool = False,
                      decoder_channels: tuple[int, ...] | list[int] = DECODER_CHANNELS) -> EncoderUNet:
    """U-Net on ImageNet EfficientNet-Lite2 (larger, slower; see docs/pretrained.md)."""
    return EncoderUNet(variant="lite2", pretrained=pretrained, out_channels=out_channels,
                       decoder_channels=decoder_channels, freeze_encoder=freeze_encoder)
