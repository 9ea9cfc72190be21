"""Registry-wide network tests: shapes, every parameter gets a gradient, no NaN; pix2pix reference sizes."""

from __future__ import annotations

import pytest
import torch

from gan_color.models import build_colorizer, build_discriminator
from gan_color.registry import BASELINE_NETWORKS, DISCRIMINATORS, GENERATORS

# Small settings so the registry-wide tests stay fast; (kwargs, input size). Unlisted names use defaults at 32 px.
SMALL = {
    "resnet_6blocks": ({"ngf": 8}, 32),
    "resnet_9blocks": ({"ngf": 8}, 32),
    "unet_128": ({"ngf": 4}, 128),
    "unet_256": ({"ngf": 4}, 256),
    "cnn_encoder_decoder": ({"width": 8}, 32),
    "unet_regressor": ({"width": 4}, 32),
    "resnet18_regressor": ({"stages": 2}, 32),
    "eccv16": ({"width": 4}, 32),
    "unet_classifier": ({"width": 4}, 32),
    "effnet_lite0_unet": ({"pretrained": False, "decoder_channels": [16, 8, 8, 8]}, 64),
    "effnet_lite2_unet": ({"pretrained": False, "decoder_channels": [16, 8, 8, 8]}, 64),
}
SMALL_D = {"patchgan": {"ndf": 8}, "pixelgan": {"ndf": 8}}


def resnet_reference_params(in_ch: int, out_ch: int, ngf: int = 64, n_blocks: int = 9) -> int:
    """Parameter count of pix2pix `ResnetGenerator` (instance norm => conv biases, no norm affine), by formula."""
    count = in_ch * ngf * 49 + ngf  # c7s1-ngf
    count += (ngf * 2 * ngf * 9 + 2 * ngf) + (2 * ngf * 4 * ngf * 9 + 4 * ngf)  # two downsamplings
    count += n_blocks * 2 * (4 * ngf * 4 * ngf * 9 + 4 * ngf)  # residual blocks, two 3x3 convs each
    count += (4 * ngf * 2 * ngf * 9 + 2 * ngf) + (2 * ngf * ngf * 9 + ngf)  # two transposed convs
    return count + ngf * out_ch * 49 + out_ch  # c7s1-out


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet_9blocks_matches_pix2pix_parameter_count():
    assert n_params(build_colorizer("resnet_9blocks")) == resnet_reference_params(1, 2)
    # the reference's published RGB->RGB size: 11.378 M
    assert n_params(build_colorizer("resnet_9blocks", in_channels=3, out_channels=3)) == 11_378_179
    assert n_params(build_colorizer("resnet_6blocks")) == resnet_reference_params(1, 2, n_blocks=6)


def test_patchgan_is_70x70_with_30x30_map():
    d = build_discriminator("patchgan")
    assert d.receptive_field == 70
    out = d(torch.zeros(1, 1, 256, 256), torch.zeros(1, 2, 256, 256))
    assert out.shape == (1, 1, 30, 30)
    assert n_params(d) == 2_764_737  # pix2pix NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3)


def test_unet_256_matches_pix2pix_parameter_count():
    assert n_params(build_colorizer("unet_256", in_channels=3, out_channels=3)) == 54_413_955


def test_pix2pix_init_is_normal_002():
    g = build_colorizer("resnet_9blocks", ngf=16)
    conv = g.model[1]
    assert abs(conv.weight.std().item() - 0.02) < 0.003 and conv.bias.abs().max().item() == 0


@pytest.mark.parametrize("name", GENERATORS.names() + BASELINE_NETWORKS.names())
def test_colorizer_shapes_and_gradients(name):
    kwargs, size = SMALL.get(name, ({}, 32))
    torch.manual_seed(0)
    net = build_colorizer(name, **kwargs)
    in_channels = getattr(net, "in_channels", kwargs.get("in_channels", 1))
    x = torch.randn(2, in_channels, size, size)
    out = net(x)
    assert out.shape[0] == 2 and out.shape[-1] > 0 and torch.isfinite(out).all()
    out.float().square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_discriminator_shapes_and_gradients(name, norm):
    torch.manual_seed(0)
    d = build_discriminator(name, norm=norm, **SMALL_D.get(name, {}))
    gray_l, ab = torch.randn(2, 1, 64, 64), torch.randn(2, 2, 64, 64, requires_grad=True)
    out = d(gray_l, ab)
    assert out.shape[:2] == (2, 1) and torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())
    assert ab.grad is not None and ab.grad.abs().sum() > 0


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("dropout", [False, True])
def test_resnet_generator_options(norm, dropout):
    g = build_colorizer("resnet_6blocks", ngf=8, norm=norm, dropout=dropout)
    out = g(torch.randn(2, 1, 36, 36))
    assert out.shape == (2, 2, 36, 36) and out.abs().max() <= 1  # tanh output = normalized ab


def test_bad_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="norm must be one of"):
        build_colorizer("resnet_6blocks", norm="group")
