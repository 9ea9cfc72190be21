"""ResNet-18-encoder regressor: torchvision's ResNet-18 cut after its early stages, with an upsampling decoder.

Optional ImageNet initialisation through torchvision's normal path (the torch hub cache under TORCH_HOME, else a
download); a 1-channel first convolution gets the sum of the RGB filters, which responds to a gray image exactly as
the RGB filters do to that image repeated in three channels.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torchvision
from torch import nn

from baselines.blocks import check_channels, conv_bn_relu, crop_to, final_activation, pad_to_multiple
from gan_color.registry import BASELINE_NETWORKS

RESNET18_WEIGHTS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
# torchvision's ImageNet input statistics; the gray (1-channel) input uses their channel means.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_imagenet_resnet18() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet-18 state dict from the hub cache (downloaded there if missing), or a
    RuntimeError that says where the file must go and how to train without it."""
    filename = Path(RESNET18_WEIGHTS.url).name
    try:
        return RESNET18_WEIGHTS.get_state_dict(progress=False, weights_only=True)
    except Exception as error:  # any failure (no network, refused, corrupt file) has the same two fixes
        target = Path(torch.hub.get_dir()) / "checkpoints" / filename
        raise RuntimeError(
            f"resnet18_regressor: pretrained=true could not load torchvision's ImageNet ResNet-18 weights "
            f"({type(error).__name__}: {error}). Either download {RESNET18_WEIGHTS.url} on a machine with internet "
            f"and copy it to {target} (the cache is $TORCH_HOME/hub/checkpoints/{filename}), or train from scratch "
            "with model.kwargs.pretrained=false."
        ) from error


@BASELINE_NETWORKS.register("resnet18_regressor")
class ResNet18Regressor(nn.Module):
    """ResNet-18 stem + the first `stages` residual stages (1/4 .. 1/32 resolution), then x2 [nearest upsampling,
    conv3-BN-ReLU] steps back to full resolution, conv3 + final activation."""

    def __init__(self, *, in_channels: int = 1, out_channels: int = 2, final: str = "tanh", pretrained: bool = False,
                 stages: int = 3) -> None:
        super().__init__()
        check_channels(in_channels=in_channels, out_channels=out_channels)
        if not 1 <= stages <= 4:
            raise ValueError(f"stages must be 1..4 (residual stages of ResNet-18 kept), got {stages}")
        self.in_channels, self.out_channels = in_channels, out_channels
        resnet = torchvision.models.resnet18(weights=None)
        if pretrained:
            resnet.load_state_dict(load_imagenet_resnet18())
        stem = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        if pretrained:
            with torch.no_grad():
                rgb_filters = resnet.conv1.weight
                stem.weight.copy_(rgb_filters.sum(1, keepdim=True) if in_channels == 1 else rgb_filters)
        layers = [resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4][:stages]
        self.encoder = nn.Sequential(stem, resnet.bn1, resnet.relu, resnet.maxpool, *layers)
        self.stride = 2 ** (stages + 1)
        channels, decoder = 64 * 2 ** (stages - 1), []
        for _ in range(int(math.log2(self.stride))):
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), *conv_bn_relu(channels, max(channels // 2, 16))]
            channels = max(channels // 2, 16)
        self.decoder = nn.Sequential(*decoder)
        self.head = nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1), final_activation(final))
        # Map our inputs (L in [-1, 1], or sRGB in [0, 1]) to the statistics the ImageNet filters expect.
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if in_channels == 1:
            mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.in_channels == 1:
            x = (x + 1) / 2  # normalized L -> [0, 1]
        x = (pad_to_multiple(x, self.stride) - self.mean) / self.std
        return crop_to(self.head(self.decoder(self.encoder(x))), height, width)
