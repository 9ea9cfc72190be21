"""Pretrained metric weights (LPIPS AlexNet/VGG, FID Inception) from the torch hub cache, with a clear message instead
of a traceback or a hanging download when they cannot be had."""

from __future__ import annotations

import os
import socket
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
