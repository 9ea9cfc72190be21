"""Building blocks shared by the networks: normalization layers by name and the pix2pix weight init."""

from __future__ import annotations

import functools

from torch import nn

NORMS = ("instance", "batch", "none")


def norm_layer(norm: str):
    """pix2pix `get_norm_layer`: instance norm without affine/running stats, batch norm with both, or identity."""
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def conv_bias(norm: str) -> bool:
    """pix2pix: convolutions before a batch norm need no bias (BN has its own shift); instance/no norm keep it."""
    return norm != "batch"


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """pix2pix `init_weights(init_type='normal')`: conv weights ~ N(0, 0.02), biases 0, BN weights ~ N(1, 0.02)."""

    def init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(init)
    return module
