"""The empirical ab prior of a training set (Zhang et al. 2016, sec. 2.2): nearest-bin counts over its photos and
the rebalancing weights they give, counted once per run folder so that a resumed run rebalances identically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gan_color import ab_grid, color
from gan_color.loader import SeededItems
from gan_color.safeio import atomic_write_text

PRIOR_FILE = "class_prior.json"
PRIOR_FORMAT = "gan-color-class-prior"


def compute_counts(dataset: Any, bins: torch.Tensor, *, images: int = 0, workers: int = 0, batch_size: int = 32,
                   device: torch.device | str = "cpu", progress: bool = True) -> tuple[torch.Tensor, int]:
    """Nearest-bin histogram [Q] (int64) over `images` evenly spaced items of `dataset` (0 = all) and the number used.

    Items are drawn with fixed per-item seeds (their random crops), so the prior is reproducible and the caller's RNG
    stream, which the training crops come from, is left untouched.
    """
    total = len(dataset)
    count = total if images <= 0 else min(images, total)
    indices = torch.linspace(0, total - 1, count).round().long().unique().tolist()
    # Its own generator: a DataLoader otherwise draws its base seed from the global RNG.
    loader = DataLoader(SeededItems(dataset, seed=0), batch_size=batch_size, sampler=indices, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    counts = torch.zeros(len(bins), dtype=torch.int64)
    device_bins = bins.to(device)
    with torch.no_grad():
        for batch in tqdm(loader, desc="ab prior", disable=not progress, dynamic_ncols=True):
            ab = color.rgb_to_lab(batch["rgb"].to(device))[:, 1:]
            counts += ab_grid.bin_counts(ab, device_bins)
    return counts, len(indices)


def prior_summary(counts: torch.Tensor, weights: torch.Tensor | None) -> dict[str, float]:
    """Numbers logged once per run: the prior's entropy (bits), how many bins occur, the weights' range."""
    prior = counts.double() / counts.sum()
    seen = prior[prior > 0]
    values = {"prior/entropy_bits": float(-(seen * seen.log2()).sum()), "prior/bins_seen": int((counts > 0).sum()),
              "prior/num_bins": len(counts), "prior/pixels": int(counts.sum())}
    if weights is not None:
        values.update({"prior/weight_min": float(weights.min()), "prior/weight_max": float(weights.max())})
    return values


def read_prior(path: Path, key: dict[str, Any]) -> tuple[torch.Tensor, int] | None:
    """(counts, images) from a cached prior whose settings equal `key`, else None (count again)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if payload.get("format") != PRIOR_FORMAT or any(payload.get(k) != v for k, v in key.items()):
        return None
    return torch.tensor(payload["counts"], dtype=torch.int64), int(payload["images"])


def write_prior(path: Path, counts: torch.Tensor, *, images: int, key: dict[str, Any]) -> None:
    payload = {"format": PRIOR_FORMAT, **key, "images": images, "counts": counts.tolist()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload))  # a crash never leaves a half-written prior to be reused


def run_prior(dataset: Any, bins: torch.Tensor, *, key: dict[str, Any], images: int, workers: int, run_dir: Path,
              accelerator: Any) -> tuple[torch.Tensor, int, bool]:
    """(counts, images counted, whether they came from the run folder's cache). Counted on first use (the main
    process writes the cache; the loop makes the others wait), read back on resume when `key` still matches."""
    path = Path(run_dir) / PRIOR_FILE
    cached = read_prior(path, key)
    if cached is not None:
        return cached[0], cached[1], True
    counts, used = compute_counts(dataset, bins, images=images, workers=workers, device=accelerator.device,
                                  progress=accelerator.is_local_main_process)
    if accelerator.is_main_process:
        write_prior(path, counts, images=used, key=key)
    return counts, used, False
