"""Probe grids: a fixed, seeded set of held-out images rendered as [gray | generated | ground truth] rows, saved
in the run folder and logged, captioned, to the enabled trackers."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from gan_color import color
from gan_color.inference import ExportSpec, model_input, raw_to_ab
from gan_color.tracking import log_images


def probe_indices(length: int, count: int, *, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(length, generator=generator)[: min(count, length)].tolist()


def collate_probes(dataset, indices: list[int]) -> dict[str, torch.Tensor]:
    items = [dataset[i] for i in indices]
    return {key: torch.stack([item[key] for item in items]) for key in ("gray_l", "real_ab", "rgb")}


@torch.no_grad()
def predict_raw(network: torch.nn.Module, gray_l: torch.Tensor, spec: ExportSpec) -> torch.Tensor:
    """A colorizer network's raw output in eval mode (restoring its train/eval mode afterwards)."""
    was_training = network.training
    network.eval()
    try:
        return network(model_input(gray_l, spec.in_channels))
    finally:
        network.train(was_training)


def predict_ab(network: torch.nn.Module, gray_l: torch.Tensor, spec: ExportSpec) -> torch.Tensor:
    """Normalized ab at the input's size from any colorizer network."""
    return raw_to_ab(predict_raw(network, gray_l, spec), spec, size=tuple(gray_l.shape[-2:]))


def render_grid(gray_l: torch.Tensor, fake_ab: torch.Tensor, real_ab: torch.Tensor, path: str | Path) -> Path:
    """Save rows of [gray | generated | ground truth] as one PNG."""
    gray = color.model_outputs_to_rgb(gray_l, torch.zeros_like(real_ab))
    fake = color.model_outputs_to_rgb(gray_l, fake_ab)
    real = color.model_outputs_to_rgb(gray_l, real_ab)
    rows = torch.stack([gray, fake, real], dim=1).flatten(0, 1)  # [3B,3,H,W], row-major triplets
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(rows.float().cpu(), path, nrow=3, padding=2, pad_value=1.0)
    return path


def held_out_examples(gray_l: torch.Tensor, fake_ab: torch.Tensor, real_ab: torch.Tensor, *, count: int = 4,
                      names: list[str] | None = None) -> list[tuple[Image.Image, str]]:
    """The first `count` images as [gray | generated | ground truth] PIL strips, captioned with their PSNR."""
    from gan_color.eval.metrics import psnr_uint8  # evaluation is optional for training
    from gan_color.eval.sheets import to_pil

    gray_l, fake_ab, real_ab = gray_l[:count], fake_ab[:count], real_ab[:count]
    gray = color.model_outputs_to_rgb(gray_l, torch.zeros_like(real_ab))
    fake = color.model_outputs_to_rgb(gray_l, fake_ab)
    real = color.model_outputs_to_rgb(gray_l, real_ab)
    psnr = psnr_uint8(color.rgb_to_uint8(fake), color.rgb_to_uint8(real)).tolist()
    examples = []
    for i in range(gray_l.shape[0]):
        strip = make_grid(torch.stack([gray[i], fake[i], real[i]]).float().cpu(), nrow=3, padding=2, pad_value=1.0)
        name = names[i] if names else f"held-out image {i + 1}"
        examples.append((to_pil(strip), f"{name}: gray | generated | truth, PSNR {psnr[i]:.1f} dB"))
    return examples


def log_samples(accelerator, grid: Path, *, step: int) -> None:
    """The probe grid just written, to every enabled tracker, captioned."""
    if accelerator.trackers:
        with Image.open(grid) as image:
            caption = f"step {step}: fixed held-out probes, each row gray input | generated | ground truth"
            log_images(accelerator, "samples/probes", [(image.convert("RGB"), caption)], step=step,
                       description="fixed held-out probes, each row gray input | generated | ground truth")


def log_held_out(accelerator, gray_l: torch.Tensor, fake_ab: torch.Tensor, real_ab: torch.Tensor, *,
                 step: int) -> None:
    """A few validation colorizations, each captioned with its PSNR, to every enabled tracker (main process)."""
    if accelerator.is_main_process and accelerator.trackers:
        examples = held_out_examples(gray_l, fake_ab, real_ab)
        log_images(accelerator, "val/held_out", examples, step=step,
                   description="the first validation images, each gray input | generated | ground truth")
