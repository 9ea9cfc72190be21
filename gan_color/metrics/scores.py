"""Colorization metrics at one boundary with explicit input contracts, registered in `METRICS` with the protocol in
the name (psnr_rgb_uint8, ssim_rgb_uint8, lpips_alex, fid, colorfulness, delta_colorfulness, auc_ab_0_150,
bin_accuracy); `cheap_metrics` is the in-training validation subset."""

from __future__ import annotations

import inspect
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from gan_color import ab_grid, color
from gan_color.metrics import fid as fid_lib
from gan_color.metrics.weights import MetricUnavailable, load_lpips
from gan_color.registry import METRICS

# uint8 PSNR of two identical images is infinite; capping keeps dataset means finite (100 dB = one pixel value in
# ~10^6 off by one, far above anything a colorizer reaches).
PSNR_MAX = 100.0
AUC_MAX_THRESHOLD = 150  # Zhang et al. 2016, Sec. 3.1: thresholds 0..150 in ab (CIE units)


# ----------------------------------------------------------------------------------------------------------------
# Input contracts


def uint8_to_lpips(rgb: Tensor) -> Tensor:
    """uint8 RGB -> float in [-1, 1], the input range of lpips.LPIPS (normalize=False)."""
    _check_uint8(rgb)
    return rgb.float() / 127.5 - 1.0


def _check_uint8(*tensors: Tensor) -> None:
    for tensor in tensors:
        if tensor.dtype != torch.uint8 or tensor.dim() != 4 or tensor.shape[1] != 3:
            raise TypeError(f"expected uint8 RGB [B,3,H,W], got {tensor.dtype} {tuple(tensor.shape)}")


# ----------------------------------------------------------------------------------------------------------------
# Per-image metric functions


def psnr_uint8(fake: Tensor, real: Tensor) -> Tensor:
    """PSNR in dB per image of uint8 RGB [B,3,H,W] with peak 255 (scikit-image's definition), capped at PSNR_MAX."""
    _check_uint8(fake, real)
    mse = (fake.double() - real.double()).pow(2).flatten(1).mean(1)
    psnr = 10.0 * torch.log10(255.0**2 / mse.clamp_min(1e-30))
    return psnr.clamp(max=PSNR_MAX).float()


def ssim_uint8(fake: Tensor, real: Tensor) -> Tensor:
    """SSIM per image of uint8 RGB via skimage.metrics.structural_similarity (7x7 uniform window, data_range=255,
    channels averaged), the implementation most colorization code bases report."""
    from skimage.metrics import structural_similarity

    _check_uint8(fake, real)
    fake_np = fake.permute(0, 2, 3, 1).cpu().numpy()
    real_np = real.permute(0, 2, 3, 1).cpu().numpy()
    values = [structural_similarity(r, f, data_range=255, channel_axis=-1) for f, r in zip(fake_np, real_np)]
    return torch.tensor(np.asarray(values, dtype=np.float64)).float()


def auc_ab(fake_ab: Tensor, real_ab: Tensor, max_threshold: int = AUC_MAX_THRESHOLD) -> Tensor:
    """Zhang et al. (2016) AuC per image: the fraction of pixels whose ab error (L2, CIE units) is <= t, swept over
    t = 0, 1, ..., max_threshold, integrated (trapezoid) and divided by max_threshold, so a perfect prediction is 1."""
    error = (fake_ab.float() - real_ab.float()).pow(2).sum(1).sqrt().flatten(1)
    error = error.sort(dim=1).values.contiguous()
    thresholds = torch.arange(0, max_threshold + 1, device=error.device, dtype=error.dtype)
    below = torch.searchsorted(error, thresholds.expand(len(error), -1).contiguous(), right=True)
    cdf = below.to(error.dtype) / error.shape[1]
    return (torch.trapezoid(cdf, thresholds, dim=1) / max_threshold).cpu()


def bin_accuracy(ab_logits: Tensor, real_ab: Tensor, bins: Tensor) -> Tensor:
    """Per image: fraction of pixels whose argmax bin equals the nearest bin of the true ab (CIE units). Logits at a
    lower resolution are compared after nearest upsampling of the argmax map, so no bin is invented by blending."""
    predicted = ab_logits.argmax(1)
    if predicted.shape[-2:] != real_ab.shape[-2:]:
        predicted = F.interpolate(predicted[:, None].float(), size=real_ab.shape[-2:], mode="nearest")[:, 0].long()
    target = ab_grid.encode_ab_nearest(real_ab.float(), bins.to(real_ab.device))
    return (predicted == target).float().flatten(1).mean(1).cpu()


# ----------------------------------------------------------------------------------------------------------------
# Batches and the metric protocol


@dataclass
class EvalBatch:
    """Outputs and ground truth of one batch. rgb: sRGB [B,3,H,W] in [0, 1]; ab: normalized (color.normalize_ab), or
    None to derive it from the rgb; ab_logits: raw classifier logits [B,Q,h,w] (Zhang et al. models only)."""

    fake_rgb: Tensor
    real_rgb: Tensor
    fake_ab: Tensor | None = None
    real_ab: Tensor | None = None
    ab_logits: Tensor | None = None
    ab_bin_size: int = ab_grid.AB_BIN_SIZE

    @cached_property
    def fake_uint8(self) -> Tensor:
        return color.rgb_to_uint8(self.fake_rgb)

    @cached_property
    def real_uint8(self) -> Tensor:
        return color.rgb_to_uint8(self.real_rgb)

    @cached_property
    def fake_ab_cie(self) -> Tensor:
        return _ab_cie(self.fake_ab, self.fake_rgb)

    @cached_property
    def real_ab_cie(self) -> Tensor:
        return _ab_cie(self.real_ab, self.real_rgb)


def _ab_cie(ab: Tensor | None, rgb: Tensor) -> Tensor:
    return color.rgb_to_lab(rgb)[:, 1:] if ab is None else color.denormalize_ab(ab.float())


class Metric(ABC):
    """Accumulates over batches. `update` returns per-image columns ({column: Tensor[B]}, may be empty); `result`
    returns the dataset numbers (keys may differ from `name`, e.g. fid100). `requires` names an optional EvalBatch
    field the metric cannot do without ("ab_logits" = classifiers only)."""

    name: str = ""
    requires: str = ""

    @abstractmethod
    def update(self, batch: EvalBatch) -> dict[str, Tensor]: ...

    @abstractmethod
    def result(self) -> dict[str, float]: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most metrics hold nothing to release
        """Release temporary files or models (called once, after `result`)."""


class PerImageMetric(Metric):
    """A metric computed per image and reported as the mean over images."""

    def __init__(self) -> None:
        self.values: list[Tensor] = []

    @abstractmethod
    def per_image(self, batch: EvalBatch) -> Tensor: ...

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        values = self.per_image(batch).detach().double().cpu().flatten()
        self.values.append(values)
        return {self.name: values}

    def result(self) -> dict[str, float]:
        return {self.name: float(torch.cat(self.values).mean())} if self.values else {}


@METRICS.register("psnr_rgb_uint8")
class PSNR(PerImageMetric):
    name = "psnr_rgb_uint8"

    def per_image(self, batch: EvalBatch) -> Tensor:
        return psnr_uint8(batch.fake_uint8, batch.real_uint8)


@METRICS.register("ssim_rgb_uint8")
class SSIM(PerImageMetric):
    name = "ssim_rgb_uint8"

    def per_image(self, batch: EvalBatch) -> Tensor:
        return ssim_uint8(batch.fake_uint8, batch.real_uint8)


@METRICS.register("auc_ab_0_150")
class AuC(PerImageMetric):
    name = "auc_ab_0_150"

    def per_image(self, batch: EvalBatch) -> Tensor:
        return auc_ab(batch.fake_ab_cie, batch.real_ab_cie)


@METRICS.register("bin_accuracy")
class BinAccuracy(PerImageMetric):
    name = "bin_accuracy"
    requires = "ab_logits"

    def per_image(self, batch: EvalBatch) -> Tensor:
        if batch.ab_logits is None:
            raise ValueError("bin_accuracy needs the raw ab logits of a classification model")
        return bin_accuracy(batch.ab_logits, batch.real_ab_cie, ab_grid.ab_bins(batch.ab_bin_size))


@METRICS.register("colorfulness")
class Colorfulness(PerImageMetric):
    """Hasler & Suesstrunk (2003) colourfulness of the outputs (0-255 scale)."""

    name = "colorfulness"

    def per_image(self, batch: EvalBatch) -> Tensor:
        return color.colorfulness(batch.fake_rgb.float())


@METRICS.register("delta_colorfulness")
class DeltaColorfulness(Metric):
    """|mean CF(outputs) - mean CF(ground truth)| over the dataset; also reports the ground truth's mean CF."""

    name = "delta_colorfulness"

    def __init__(self) -> None:
        self.fake: list[Tensor] = []
        self.real: list[Tensor] = []

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        self.fake.append(color.colorfulness(batch.fake_rgb.float()).double().cpu())
        self.real.append(color.colorfulness(batch.real_rgb.float()).double().cpu())
        return {"colorfulness_real": self.real[-1]}

    def result(self) -> dict[str, float]:
        if not self.fake:
            return {}
        fake, real = float(torch.cat(self.fake).mean()), float(torch.cat(self.real).mean())
        return {self.name: abs(fake - real), "colorfulness_real": real}


# ----------------------------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018), pretrained backbones from the torch hub cache


def backbone_url(net: str) -> str:
    """Download URL of the torchvision ImageNet weights lpips builds its backbone from (its cache file name)."""
    from torchvision import models

    weights = {"alex": models.AlexNet_Weights.IMAGENET1K_V1, "vgg": models.VGG16_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise ValueError(f"LPIPS backbone must be one of {sorted(weights)}, got {net!r}")
    return weights[net].url


class LPIPS(PerImageMetric):
    """LPIPS v0.1 with the lpips package; images enter as uint8 and are mapped to [-1, 1]."""

    def __init__(self, *, net: str = "alex", device: str | torch.device = "cpu", allow_download: bool = True) -> None:
        super().__init__()
        self.name = f"lpips_{net}"
        try:
            import lpips  # noqa: F401
        except ImportError:
            message = f"{self.name}: the 'lpips' package is not installed. Fix: pip install lpips"
            raise MetricUnavailable(message) from None
        # weights read as tensors only: lpips' own loading goes through torchvision, which unpickles the hub file
        self.model = load_lpips(net, backbone_url(net), allow_download=allow_download).to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def per_image(self, batch: EvalBatch) -> Tensor:
        fake = uint8_to_lpips(batch.fake_uint8).to(self.device)
        real = uint8_to_lpips(batch.real_uint8).to(self.device)
        return self.model(fake, real).flatten()

    def close(self) -> None:
        self.model = None


@METRICS.register("lpips_alex")
def lpips_alex(*, device: str | torch.device = "cpu", allow_download: bool = True) -> LPIPS:
    return LPIPS(net="alex", device=device, allow_download=allow_download)


@METRICS.register("lpips_vgg")
def lpips_vgg(*, device: str | torch.device = "cpu", allow_download: bool = True) -> LPIPS:
    return LPIPS(net="vgg", device=device, allow_download=allow_download)


# ----------------------------------------------------------------------------------------------------------------
# FID over the whole set (torch-fidelity)


@METRICS.register("fid")
class FID(Metric):
    """FID between all outputs (written as lossless uint8 PNGs to a temporary folder) and `real` (a folder or a
    dataset of uint8 images); the reported key carries the sample count (fid100, fid10k). `real_cache_name` caches
    the real set's statistics across runs."""

    name = "fid"

    def __init__(self, *, real: Any, real_cache_name: str | None = None, device: str | torch.device = "cpu",
                 cache_root: str | None = None, weights_path: str | None = None, feature_extractor: str | None = None,
                 allow_download: bool = True, batch_size: int = 32) -> None:
        self.options = dict(real_cache_name=real_cache_name, device=device, cache_root=cache_root,
                            feature_extractor=feature_extractor, batch_size=batch_size)
        fid_lib.require_torch_fidelity()
        if feature_extractor is None:  # fail now, before any image is written, when the weights are missing
            self.options["weights_path"] = fid_lib.inception_weights(weights_path, allow_download=allow_download)
        self.real = real
        self.folder = tempfile.TemporaryDirectory(prefix="gan_color_fid_")
        self.count = 0

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        for image in batch.fake_uint8.cpu():
            path = Path(self.folder.name) / f"{self.count:08d}.png"
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, compress_level=1)
            self.count += 1
        return {}

    def result(self) -> dict[str, float]:
        if self.count < 2:
            raise MetricUnavailable(f"fid: needs at least 2 images, got {self.count}")
        value = fid_lib.compute_fid(self.folder.name, self.real, **self.options)
        return {fid_lib.fid_key(self.count): value}

    def close(self) -> None:
        self.folder.cleanup()


# ----------------------------------------------------------------------------------------------------------------


def build_metric(name: str, **options: Any) -> Metric:
    """Build metric `name`, passing only the `options` its constructor takes (device, allow_download, real, ...)."""
    constructor = METRICS.get(name)
    params = inspect.signature(constructor).parameters
    return constructor(**{key: value for key, value in options.items() if key in params})


@torch.no_grad()
def cheap_metrics(fake_rgb: Tensor, real_rgb: Tensor, fake_ab: Tensor | None = None,
                  real_ab: Tensor | None = None) -> dict[str, float]:
    """Batch means of PSNR, AuC, colourfulness and delta-colourfulness (no pretrained networks) for validation
    during training. rgb: sRGB [B,3,H,W] in [0, 1]; ab: normalized (as the model predicts), derived when None."""
    batch = EvalBatch(fake_rgb=fake_rgb, real_rgb=real_rgb, fake_ab=fake_ab, real_ab=real_ab)
    fake_cf, real_cf = color.colorfulness(fake_rgb.float()), color.colorfulness(real_rgb.float())
    return {
        "psnr_rgb_uint8": float(psnr_uint8(batch.fake_uint8, batch.real_uint8).mean()),
        "auc_ab_0_150": float(auc_ab(batch.fake_ab_cie, batch.real_ab_cie).mean()),
        "colorfulness": float(fake_cf.mean()),
        "delta_colorfulness": float((fake_cf.mean() - real_cf.mean()).abs()),
    }
