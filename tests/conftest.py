"""Shared pytest fixtures (CPU-only, offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


@pytest.fixture(scope="session")
def imagenet_dir() -> Path:
    """The 1000-image ImageNet sample next to the repository (../shared/data); tests using it skip without it."""
    path = SHARED_DATA / "imagenet-1k-sample"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def prepared_torch_home() -> Path:
    """A torch hub cache with the real LPIPS/FID weights, built once from ../shared/weights into .torch_home/."""
    if not (SHARED_WEIGHTS / "make_torch_home.py").is_file():
        pytest.skip(f"{SHARED_WEIGHTS} is missing")
    home = REPO / ".torch_home"
    if not (home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth").is_file():
        subprocess.run([sys.executable, str(SHARED_WEIGHTS / "make_torch_home.py"), str(home)], check=True,
                       capture_output=True)
    return home
