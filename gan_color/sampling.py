"""Probe grids: a fixed, seeded set of held-out images rendered as [gray | generated | ground truth] rows."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from gan_color import color
from gan_color.inference import ExportSpec, model_input, raw_to_ab


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
