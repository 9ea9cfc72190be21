"""Networks by name: GAN generators and discriminators here, baseline networks registered by the baselines plugin."""

from __future__ import annotations

from typing import Any

from torch import nn

from gan_color.models import discriminators, encoder_unet, generators  # noqa: F401  (registers the networks)
from gan_color.registry import BASELINE_NETWORKS, DISCRIMINATORS, GENERATORS, Registry, closest


def colorizer_registry(name: str) -> Registry:
    """The registry that holds colorizer network `name`: GAN generators first, then baseline networks."""
    for registry in (GENERATORS, BASELINE_NETWORKS):
        if name in registry:
            return registry
    choices = GENERATORS.names() + BASELINE_NETWORKS.names()
    raise KeyError(f"unknown model {name!r}{closest(name, choices)}; choose from {choices}")


def check_colorizer(name: str, kwargs: dict[str, Any]) -> None:
    colorizer_registry(name).check_kwargs(name, kwargs)


def build_colorizer(name: str, **kwargs: Any) -> nn.Module:
    """Build a colorizer network (GAN generator or baseline) by registered name."""
    return colorizer_registry(name).build(name, **kwargs)


def build_discriminator(name: str, **kwargs: Any) -> nn.Module:
    return DISCRIMINATORS.build(name, **kwargs)
