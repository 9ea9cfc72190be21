"""Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016) as the `classification` objective: per-pixel
multinomial cross entropy against soft-encoded ab targets, optional class rebalancing from the training set's prior.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from baselines.regression import expected_kwargs_conflicts, unsupported_network
from gan_color import ab_grid, color
from gan_color.inference import DECODE_METHODS, ExportSpec
from gan_color.loader import SeededItems
from gan_color.objectives import Objective
from gan_color.registry import OBJECTIVES

PRIOR_FILE = "class_prior.json"
PRIOR_FORMAT = "gan-color-class-prior"
SOFT_ENCODE_NEIGHBOURS = 5  # Zhang et al. sec. 2.1: the 5 nearest bins, Gaussian-weighted (sigma = 5)


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
        for batch in tqdm(loader, desc="class prior", disable=not progress, dynamic_ncols=True):
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


@OBJECTIVES.register("classification")
class ClassificationObjective(Objective):
    """Logits over Q = len(ab_bins(bin_size)) bins at the network's own resolution (the target ab is subsampled to
    it), loss = sum over pixels of v(Z) * H(Z, softmax(logits)) (Zhang eq. 2) with v the rebalancing weight of the
    target's nearest bin (eq. 3-4) or 1; decoded at inference by annealed mean (T = 0.38), mode or mean."""

    uses_discriminator = False
    output = "ab_logits"
    in_channels = 1

    def __init__(self, *, rebalance: bool = True, lam: float = 0.5, sigma: float = 5.0, temperature: float = 0.38,
                 decode: str = "annealed_mean", bin_size: int = ab_grid.AB_BIN_SIZE, prior_images: int = 0,
                 prior_workers: int = 0) -> None:
        if decode not in DECODE_METHODS:
            raise ValueError(f"decode must be one of {DECODE_METHODS}, got {decode!r}")
        checks = [(temperature > 0, f"temperature must be > 0 (decode=mode is the T -> 0 limit), got {temperature}"),
                  (0.0 <= lam <= 1.0, f"lam must lie in [0, 1], got {lam}"),
                  (sigma > 0, f"sigma must be > 0, got {sigma}"),
                  (bin_size >= 1, f"bin_size must be >= 1, got {bin_size}"),
                  (prior_images >= 0, f"prior_images must be >= 0 (0 = all), got {prior_images}"),
                  (prior_workers >= 0, f"prior_workers must be >= 0, got {prior_workers}")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.rebalance, self.lam, self.sigma = rebalance, lam, sigma
        self.temperature, self.decode, self.bin_size = temperature, decode, int(bin_size)
        self.prior_images, self.prior_workers = prior_images, prior_workers
        self.bins = ab_grid.ab_bins(self.bin_size)
        self.num_bins = len(self.bins)
        self.weights: torch.Tensor | None = None
        self._on_device: dict[tuple[str, torch.device], torch.Tensor] = {}

    def network_kwargs(self) -> dict[str, Any]:
        return {"in_channels": 1, "out_channels": self.num_bins, "final": "none"}

    def model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, **self.network_kwargs()}

    def export_fields(self) -> dict[str, Any]:
        default_color = {f.name: f for f in dataclasses.fields(ExportSpec)}["color"].default_factory()
        return {"output": self.output, "in_channels": 1, "num_bins": self.num_bins, "decode": self.decode,
                "temperature": self.temperature, "color": {**default_color, "ab_bin_size": self.bin_size}}

    # -- the class prior ------------------------------------------------------------------------------------------

    def set_prior(self, counts: torch.Tensor) -> None:
        """Rebalancing weights (Zhang eq. 4) from bin counts; they multiply each pixel's loss by its nearest bin's."""
        self.weights = ab_grid.rebalance_weights(counts, self.bins, lam=self.lam, sigma=self.sigma)
        self._on_device.clear()

    def prepare(self, *, dataset: Any, run_dir: Path, accelerator: Any) -> dict[str, Any]:
        """Compute the empirical prior once (main process first; the loop makes the others wait), cache it in the
        run folder, reload it on resume; returns the numbers to log once."""
        if not self.rebalance:
            return {}
        path = Path(run_dir) / PRIOR_FILE
        cached = self.read_prior(path, dataset_size=len(dataset))
        if cached is None:
            counts, images = compute_counts(dataset, self.bins, images=self.prior_images, workers=self.prior_workers,
                                            device=accelerator.device, progress=accelerator.is_local_main_process)
            if accelerator.is_main_process:
                self.write_prior(path, counts, images=images, dataset_size=len(dataset))
        else:
            counts, images = cached
        self.set_prior(counts)
        return {**prior_summary(counts, self.weights), "prior/images": images, "prior/cached": int(cached is not None)}

    def prior_key(self, dataset_size: int) -> dict[str, int]:
        """What a cached prior must match to be reused."""
        return {"bin_size": self.bin_size, "num_bins": self.num_bins, "requested_images": self.prior_images,
                "dataset_size": dataset_size}

    def read_prior(self, path: Path, *, dataset_size: int) -> tuple[torch.Tensor, int] | None:
        """(counts, images) from a cache that matches this objective and dataset, else None (recompute)."""
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        key = self.prior_key(dataset_size)
        if payload.get("format") != PRIOR_FORMAT or any(payload.get(k) != v for k, v in key.items()):
            return None
        return torch.tensor(payload["counts"], dtype=torch.int64), int(payload["images"])

    def write_prior(self, path: Path, counts: torch.Tensor, *, images: int, dataset_size: int) -> None:
        payload = {"format": PRIOR_FORMAT, **self.prior_key(dataset_size), "images": images,
                   "counts": counts.tolist()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written prior to be reused

    # -- the loss -------------------------------------------------------------------------------------------------

    def device_tensor(self, name: str, device: torch.device) -> torch.Tensor:
        """`self.bins` / `self.weights` on `device`, copied once rather than every step."""
        key = (name, device)
        if key not in self._on_device:
            self._on_device[key] = getattr(self, name).to(device)
        return self._on_device[key]

    @torch.no_grad()
    def encode_target(self, real_ab: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-encoded target [B,Q,h,w] and nearest bin [B,h,w] at the logits' size. A lower-resolution network's
        target is the ab subsampled to its grid (every 4th pixel for ECCV16, as Zhang et al.'s training net)."""
        real_ab = real_ab.float()
        if tuple(real_ab.shape[-2:]) != tuple(size):
            real_ab = F.interpolate(real_ab, size=tuple(size), mode="nearest")
        bins = self.device_tensor("bins", real_ab.device)
        target = ab_grid.soft_encode_ab(color.denormalize_ab(real_ab), bins, k=SOFT_ENCODE_NEIGHBOURS,
                                        sigma=self.sigma)
        return target, target.argmax(dim=1)  # the largest Gaussian weight is the nearest bin's

    def loss(self, logits: torch.Tensor, real_ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the optimised loss, the plain cross entropy): mean over pixels of v(Z) * -sum_q Z_q log softmax(z)_q."""
        target, nearest = self.encode_target(real_ab, tuple(logits.shape[-2:]))
        per_pixel = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
        plain = per_pixel.mean()
        if not self.rebalance:
            return plain, plain
        if self.weights is None:
            raise RuntimeError("rebalance=true needs the class prior: call prepare() (the training loop does) or "
                               "set_prior(counts) first")
        return (per_pixel * self.device_tensor("weights", per_pixel.device)[nearest]).mean(), plain

    def training_step(self, batch, networks, optimizers, accelerator):
        network, optimizer = networks["generator"], optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        with accelerator.autocast():
            logits = network(batch["gray_l"])
        loss, plain = self.loss(logits, batch["real_ab"])
        accelerator.backward(loss)
        optimizer.step()
        return {"loss/total": loss.detach(), "loss/CE": plain.detach()}

    @torch.no_grad()
    def validation_metrics(self, raw: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Per-pixel accuracy of the most probable bin against the nearest bin, and the (unweighted) cross entropy."""
        target, nearest = self.encode_target(batch["real_ab"], tuple(raw.shape[-2:]))
        cross_entropy = -(target * F.log_softmax(raw.float(), dim=1)).sum(dim=1).mean()
        accuracy = (raw.argmax(dim=1) == nearest).float().mean()
        return {"bin_accuracy": accuracy.item(), "cross_entropy": cross_entropy.item()}

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        objective = cls(**cfg.objective.kwargs)
        why = f"objective classification (1-channel L in, {objective.num_bins} bin logits out)"
        return (unsupported_network(cfg.model.name, "classification")
                or expected_kwargs_conflicts(cfg.model.kwargs, objective.network_kwargs(), why))
