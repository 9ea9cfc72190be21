"""Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016) as the `classification` objective: per-pixel
multinomial cross entropy against soft-encoded ab targets, optional class rebalancing from the training set's prior.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from baselines.regression import expected_kwargs_conflicts, unsupported_network
from gan_color import ab_grid, ab_prior, color
from gan_color.inference import DECODE_METHODS, ExportSpec
from gan_color.objectives import Objective
from gan_color.registry import OBJECTIVES

SOFT_ENCODE_NEIGHBOURS = 5  # Zhang et al. sec. 2.1: the 5 nearest bins, Gaussian-weighted (sigma = 5)


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
        """Count the empirical prior once, cache it in the run folder, read it back on resume; returns the numbers to
        log once."""
        if not self.rebalance:
            return {}
        counts, images, cached = ab_prior.run_prior(dataset, self.bins, key=self.prior_key(len(dataset)),
                                                    images=self.prior_images, workers=self.prior_workers,
                                                    run_dir=run_dir, accelerator=accelerator)
        self.set_prior(counts)
        return {**ab_prior.prior_summary(counts, self.weights), "prior/images": images, "prior/cached": int(cached)}

    def prior_key(self, dataset_size: int) -> dict[str, int]:
        """What a cached prior must match to be reused."""
        return {"bin_size": self.bin_size, "num_bins": self.num_bins, "requested_images": self.prior_images,
                "dataset_size": dataset_size}

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
