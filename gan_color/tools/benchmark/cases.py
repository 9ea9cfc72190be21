"""The training-step cases of the benchmark: which configs (the GAN per generator, each baseline, the variants of
the GAN step) at which sizes, why a variant cannot run on this device, and the config of one measured case."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_color.config import Config, load_config
from gan_color.models import colorizer_registry
from gan_color.registry import OBJECTIVES
from gan_color.tools.benchmark.settings import COMPILED, REFERENCE, VARIANTS, Settings


@dataclass
class TrainCase:
    section: str
    name: str
    size: int
    config: Path | None
    overrides: list[str]
    baseline: str = ""
    skip: str = ""
    batch_size: int = 0
    compiled: bool = False  # its first round spends a long warm-up (the budget keeps room for it)


def gan_overrides(generator: str) -> list[str]:
    return [f"model.name={generator}", "model.kwargs={}", "objective.name=pix2pix", "discriminator.name=patchgan"]


def train_cases(settings: Settings, device: torch.device) -> list[TrainCase]:
    cases = []
    reference = f"gan_{settings.generators[0]}" if settings.generators else ""
    if "train" in settings.only:
        for size in settings.sizes:
            cases += [TrainCase("train", f"gan_{g}", size, None, gan_overrides(g),
                                baseline="" if f"gan_{g}" == reference else reference) for g in settings.generators]
            cases += [TrainCase("train", f"baseline_{p.stem}", size, p, [], baseline=reference)
                      for p in settings.baselines]
    if "variants" in settings.only and settings.generators:
        gan = gan_overrides(settings.generators[0])
        for size in variant_sizes(settings, device):
            for batch in settings.variant_batch_sizes or [settings.batch_size]:
                cases += [TrainCase("variants", name, size, None, gan + overrides, batch_size=batch,
                                    baseline="" if name == REFERENCE else REFERENCE,
                                    skip=variant_skip(name, device, settings, size=size, largest=variant_sizes(
                                        settings, device)[0]),
                                    compiled=name in COMPILED or (name == "fast" and device.type == "cuda"))
                          for name, overrides in VARIANTS.items()]
    return cases


def variant_sizes(settings: Settings, device: torch.device) -> list[int]:
    """Sizes of the variant comparison, largest first (the most telling cases run before any budget runs out)."""
    if settings.variant_sizes:
        return sorted(settings.variant_sizes, reverse=True)
    return [settings.variant_size or (max(settings.sizes) if device.type == "cuda" else min(settings.sizes))]


def variant_skip(name: str, device: torch.device, settings: Settings, *, size: int = 0, largest: int = 0) -> str:
    """Why a variant cannot run here ('' when it can)."""
    if "fp16" in name and device.type != "cuda":
        return "fp16 autocast with a gradient scaler needs a CUDA GPU"
    if "bf16" in name and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16 support"
    if "bf16" in name and device.type == "mps":
        return "bf16 autocast is not supported on MPS by this torch"
    if name == "fast+cudagraphs" and device.type != "cuda":
        return "CUDA graphs need a CUDA GPU"
    if name in COMPILED:
        if settings.compile == "off" or (settings.compile == "auto" and device.type != "cuda"):
            return "torch.compile warm-up takes minutes on a CPU; pass --compile on to measure it"
        if settings.compile == "auto" and size != largest and name != "fast+cudagraphs":
            return "compile variants run at the largest variant size only (--compile on: at every size)"
    return ""


def width_overrides(model: str, *, ngf: int | None, ndf: int | None, uses_discriminator: bool) -> list[str]:
    """Shrink the networks (for CPUs): `ngf` sets the generator's `ngf` or a baseline's `width`, `ndf` D's `ndf`."""
    params = inspect.signature(colorizer_registry(model).get(model)).parameters
    overrides = []
    if ngf is not None:
        overrides += [f"model.kwargs.{key}={ngf}" for key in ("ngf", "width") if key in params]
    if ndf is not None and uses_discriminator:
        overrides.append(f"discriminator.kwargs.ndf={ndf}")
    return overrides


def train_config(config: Path | None, overrides: list[str], *, size: int, settings: Settings, workdir: Path,
                 batch_size: int | None = None) -> Config:
    """The config of one measured case: its own YAML (or the GAN defaults) on a small embedded dataset, no tracking,
    a fresh run folder; the schedule is irrelevant to speed."""
    batch_size = batch_size or settings.batch_size
    base = [f"data.size={size}", f"data.batch_size={batch_size}", "data.num_workers=0", "data.train=embedded",
            "data.val=", f"data.embedded_length={max(2 * batch_size, 8)}", "train.num_probes=1",
            "train.validate_every=0", "train.resume=never", f"train.output_dir={workdir}", "tracking.wandb=false",
            "tracking.tensorboard=false", "train.channels_last=false", "train.compile=false", "optim.steps=100000",
            "optim.decay_steps=0"]
    cfg = load_config(config, [*base, *overrides])
    uses_d = getattr(OBJECTIVES.get(cfg.objective.name), "uses_discriminator", False)
    extra = width_overrides(cfg.model.name, ngf=settings.ngf, ndf=settings.ndf, uses_discriminator=uses_d)
    cfg = load_config(config, [*base, *overrides, *extra]) if extra else cfg
    if not any(o.startswith("train.mixed_precision=") for o in overrides):
        cfg.train.mixed_precision = "no"  # fp32 unless the case says otherwise, whatever its YAML asks for
    return cfg
