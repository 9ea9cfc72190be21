"""Pretrained metric weights (LPIPS AlexNet/VGG, FID Inception) from the torch hub cache, with a clear message instead
of a traceback or a hanging download when they cannot be had. Weights are only ever read as tensors (safetensors or
`torch.load(weights_only=True)`): a file from a cache or the command line can never run code."""

from __future__ import annotations

import hashlib
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch

OFFLINE_FIX = (
    "Fix: run once on a machine with internet access (the file is then cached), copy the file into that folder, or "
    "point TORCH_HOME at a prepared torch hub cache (see docs/evaluation.md, 'Offline weights')."
)
DOWNLOAD_TIMEOUT_S = 20.0


class MetricUnavailable(RuntimeError):
    """A metric that cannot run here (missing weights, missing package); the message says why and how to fix it."""


class WeightsRejected(ValueError):
    """A weights or statistics file that is not plain tensors, or not the file it claims to be; it was not used."""


def hub_checkpoint(url: str) -> Path:
    """Where torch.hub's `load_state_dict_from_url(url)` looks for its file: $TORCH_HOME/hub/checkpoints/<name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def ensure_hub_weights(url: str, *, metric: str, what: str, allow_download: bool = True,
                       timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Path of the cached weights file for `url`, downloading it (bounded by `timeout`) when allowed and missing.

    Raises MetricUnavailable naming the expected path, the download error and the fix, so one missing file turns
    off one metric rather than the whole evaluation.
    """
    path = hub_checkpoint(url)
    if path.is_file():
        return path
    if not allow_download:
        raise MetricUnavailable(f"{metric}: the {what} weights are not in the torch hub cache ({path}) and downloads "
                                f"are off. {OFFLINE_FIX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # urllib in torch.hub has no timeout of its own: a blackholed network would hang
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception as err:  # noqa: BLE001 - any failure (DNS, proxy, TLS, timeout, disk) means the same to the user
        raise MetricUnavailable(f"{metric}: the {what} weights are not in the torch hub cache ({path}) and could not "
                                f"be downloaded from {url} ({type(err).__name__}: {err}). {OFFLINE_FIX}") from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def check_weights_file(path: str | os.PathLike, *, metric: str, what: str) -> Path:
    """A user-given local weights file, or MetricUnavailable when it does not exist."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MetricUnavailable(f"{metric}: the {what} weights file {str(path)!r} does not exist. Fix: pass the path "
                                "of an existing file, or leave the option out to use the torch hub cache.")
    return path


def tensors_sha256(tensors: dict[str, torch.Tensor], *, skip_prefixes: tuple[str, ...] = ()) -> str:
    """SHA-256 of a state dict's content (sorted names, dtypes, shapes, bytes): the same for one set of weights in
    any container (.pth written by any torch version, .safetensors)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        if name.startswith(skip_prefixes):
            continue
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\t{tensor.dtype}\t{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_tensors(path: str | os.PathLike, *, metric: str, what: str) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a .safetensors file or a torch file read with weights_only=True (never a
    pickle); WeightsRejected in one line when the file holds anything else or is damaged."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - refused pickles, truncation, wrong format: one message
        reason = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise WeightsRejected(f"{metric}: refused the {what} weights file {str(path)!r}: it is not a plain tensor "
                              f"file ({type(err).__name__}: {reason[:200]}); nothing in it was run. Fix: replace it "
                              "with the genuine file (see docs/evaluation.md, 'Offline weights').") from None
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise WeightsRejected(f"{metric}: refused the {what} weights file {str(path)!r}: it is not a state dict of "
                              "tensors. Fix: replace it with the genuine file.")
    return tensors


def load_lpips(net: str, url: str, *, allow_download: bool = True) -> torch.nn.Module:
    """lpips.LPIPS(net) (v0.1) with its ImageNet backbone and linear heads read as tensors: the backbone from the
    torch hub cache (torchvision's loader would unpickle it), the heads from the lpips package."""
    import lpips

    metric, what = f"lpips_{net}", f"torchvision ImageNet {net} (LPIPS backbone)"
    backbone = load_tensors(ensure_hub_weights(url, metric=metric, what=what, allow_download=allow_download),
                            metric=metric, what=what)
    heads_file = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    heads = load_tensors(heads_file, metric=metric, what="LPIPS v0.1 linear heads")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation notice for lpips' `pretrained=` argument
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    # lpips keeps torchvision's `features[i]` as `slice<k>.<i>`: map the backbone's names onto those
    features = {}
    for name in model.net.state_dict():
        _, index, param = name.split(".", 2)
        features[name] = backbone.get(f"features.{index}.{param}")
    missing = [name for name, value in features.items() if value is None]
    if missing:
        raise WeightsRejected(f"{metric}: the {what} weights file has no tensors for {missing[:3]}. Fix: replace it "
                              "with the genuine torchvision file.")
    try:
        model.net.load_state_dict(features, strict=True)
        result = model.load_state_dict(heads, strict=False)
    except RuntimeError as err:
        raise WeightsRejected(f"{metric}: the {what} weights do not fit: {str(err).splitlines()[0]}") from None
    # lins.* alias lin0..lin4 and scaling_layer holds constants: every lin<i> tensor must come from the heads file
    if result.unexpected_keys or [k for k in result.missing_keys if k.startswith("lin") and not k.startswith("lins.")]:
        raise WeightsRejected(f"{metric}: the LPIPS heads file {heads_file} does not match lpips.LPIPS({net!r})")
    return model.eval()
