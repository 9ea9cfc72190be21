"""Probe grids: a fixed, seeded set of held-out images rendered as [gray | generated | ground truth] rows, saved
in the run folder and logged, captioned, to the enabled trackers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from gan_color import color
from gan_color.inference import ExportSpec, model_input, raw_to_ab
from gan_color.metrics.scores import psnr_uint8
from gan_color.sheets import render_sheet, save_sheet, to_pil
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


def choose_probes(held_out, seen, count: int, *, seed: int) -> dict[str, Any]:
    """`count` fixed probes from `held_out` (eval crops the model never trains on). With `seen` (eval crops of the
    training images), half of them (rounded down) come from there instead and every row gets a label, so a grid
    shows side by side what the model has and has not seen: a near-perfect seen row next to an off unseen one is
    memorisation, not skill. Returns the collated batch plus "labels" (empty when all probes are held out)."""
    n_seen = count // 2 if seen is not None and len(seen) and count >= 2 else 0
    unseen = probe_indices(len(held_out), count - n_seen, seed=seed)
    probes: dict[str, Any] = collate_probes(held_out, unseen)
    if not n_seen:
        return {**probes, "labels": []}
    seen_indices = probe_indices(len(seen), n_seen, seed=seed)
    more = collate_probes(seen, seen_indices)
    probes = {key: torch.cat([probes[key], more[key]]) for key in probes}
    probes["labels"] = ([f"unseen (held out): {held_out.split_key(i)}" for i in unseen]
                        + [f"seen in training: {seen.split_key(i)}" for i in seen_indices])
    return probes


def render_grid(gray_l: torch.Tensor, fake_ab: torch.Tensor, real_ab: torch.Tensor, path: str | Path, *,
                labels: list[str] | None = None) -> Path:
    """Save rows of [gray | generated | ground truth] as one PNG; with `labels`, a sheet with column titles and each
    row's label above it."""
    gray = color.model_outputs_to_rgb(gray_l, torch.zeros_like(real_ab))
    fake = color.model_outputs_to_rgb(gray_l, fake_ab)
    real = color.model_outputs_to_rgb(gray_l, real_ab)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if labels:
        size = gray_l.shape[-1]
        rows = [[to_pil(t[i]) for t in (gray, fake, real)] for i in range(gray_l.shape[0])]
        sheet = render_sheet(rows, columns=["gray input", "generated", "ground truth"], captions=labels,
                             cell=size if size >= 96 else 2 * size if size >= 48 else 96)
        return save_sheet(sheet, path)
    rows = torch.stack([gray, fake, real], dim=1).flatten(0, 1)  # [3B,3,H,W], row-major triplets
    save_image(rows.float().cpu(), path, nrow=3, padding=2, pad_value=1.0)
    return path


def held_out_examples(gray_l: torch.Tensor, fake_ab: torch.Tensor, real_ab: torch.Tensor, *, count: int = 4,
                      names: list[str] | None = None) -> list[tuple[Image.Image, str]]:
    """The first `count` images as [gray | generated | ground truth] PIL strips, captioned with their PSNR."""
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
            caption = f"step {step}: fixed probes, each row gray input | generated | ground truth"
            log_images(accelerator, "samples/probes", [(image.convert("RGB"), caption)], step=step,
                       description="fixed probes, each row gray input | generated | ground truth")


def log_held_out(accelerator, gray_l: torch.Tensor, fake_ab: torch.Tensor, real_ab: torch.Tensor, *,
                 step: int) -> None:
    """A few validation colorizations, each captioned with its PSNR, to every enabled tracker (main process)."""
    if accelerator.is_main_process and accelerator.trackers:
        examples = held_out_examples(gray_l, fake_ab, real_ab)
        log_images(accelerator, "val/held_out", examples, step=step,
                   description="the first validation images, each gray input | generated | ground truth")
