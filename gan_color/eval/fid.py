"""FID with torch-fidelity (Heusel et al. 2017; the TF Inception-v3 of the reference implementation) between uint8
images, with cached real-set statistics and an optional local Inception weights file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from gan_color import color
from gan_color.eval.weights import MetricUnavailable, check_weights_file, ensure_hub_weights

INCEPTION_WHAT = "FID Inception-v3 (TF 2015-12-05)"


def fid_key(count: int) -> str:
    """Metric key with the sample count, stylegan-style: fid100, fid1k, fid50k."""
    return f"fid{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"fid{count}"


def require_torch_fidelity() -> None:
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        message = "fid: the 'torch-fidelity' package is not installed. Fix: pip install torch-fidelity"
        raise MetricUnavailable(message) from None


def inception_weights(weights_path: str | os.PathLike | None = None, *, allow_download: bool = True) -> Path:
    """The Inception weights file torch-fidelity should load: `weights_path` if given, else the torch hub cache file
    (downloaded when allowed). Raises MetricUnavailable with the fix when neither is there."""
    require_torch_fidelity()
    if weights_path:
        return check_weights_file(weights_path, metric="fid", what=INCEPTION_WHAT)
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return ensure_hub_weights(URL_INCEPTION_V3, metric="fid", what=INCEPTION_WHAT, allow_download=allow_download)


class Uint8Images(Dataset):
    """uint8 [3,H,W] views (torch-fidelity's input contract) of a dataset whose items are sRGB floats in [0, 1],
    either tensors or dicts with an 'rgb' tensor; uint8 items pass through."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = self.dataset[index]
        return color.rgb_to_uint8(item["rgb"] if isinstance(item, dict) else item)


def files_key(paths: Sequence[str | os.PathLike], *, root: str | os.PathLike | None = None, **protocol: Any) -> str:
    """A short hash of a file list (relative names, sizes, modification times) and the protocol (size, crop...)
    that produced the images: the name real-set statistics are cached under."""
    digest = hashlib.sha1()
    for key in sorted(protocol):
        digest.update(f"{key}={protocol[key]}\n".encode())
    for path in paths:
        stat = os.stat(path)
        name = Path(path).relative_to(root).as_posix() if root else str(path)
        digest.update(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def compute_fid(fake: str | os.PathLike | Dataset, real: str | os.PathLike | Dataset, *,
                device: str | torch.device = "cpu", real_cache_name: str | None = None,
                cache_root: str | os.PathLike | None = None, weights_path: str | os.PathLike | None = None,
                feature_extractor: str | None = None, feature_layer: str | None = None, allow_download: bool = True,
                batch_size: int = 32) -> float:
    """FID between `fake` and `real`: folders of image files or datasets of uint8 [3,H,W] tensors.

    `real_cache_name` caches the real set's Inception statistics in `cache_root` (default: torch-fidelity's,
    $TORCH_HOME/fidelity_cache). `feature_extractor` names another registered torch-fidelity extractor (tests use a
    small stand-in); otherwise the Inception weights come from `weights_path` or the torch hub cache.
    `feature_layer` picks another Inception block ('64', '192', '768'; default the standard 2048-d pool3): quicker
    checks of the same network, not comparable with published FIDs.
    """
    import torch_fidelity

    kwargs: dict[str, Any] = dict(
        input1=str(fake) if isinstance(fake, (str, os.PathLike)) else fake,
        input2=str(real) if isinstance(real, (str, os.PathLike)) else real,
        fid=True, cuda=torch.device(device).type == "cuda", batch_size=batch_size, verbose=False,
        save_cpu_ram=True,  # no DataLoader worker processes: images here are few or already decoded
    )
    if feature_layer:
        kwargs["feature_layer_fid"] = feature_layer
    if feature_extractor:
        kwargs["feature_extractor"] = feature_extractor
    else:
        weights = inception_weights(weights_path, allow_download=allow_download)
        kwargs["feature_extractor_weights_path"] = str(weights)
        if weights_path and real_cache_name:  # statistics of other weights must not share a cache entry
            real_cache_name = f"{real_cache_name}-{hashlib.sha1(str(weights).encode()).hexdigest()[:8]}"
    kwargs["cache"] = bool(real_cache_name)
    if real_cache_name:
        kwargs.update(input2_cache_name=f"gan_color-{real_cache_name}",
                      cache_root=str(cache_root) if cache_root else None)
    return float(torch_fidelity.calculate_metrics(**kwargs)["frechet_inception_distance"])
