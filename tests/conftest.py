"""Shared pytest fixtures (CPU-only, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def imagenet_dir() -> Path:
    """The 1000-image ImageNet sample next to the repository (../shared/data); tests using it skip without it."""
    path = SHARED_DATA / "imagenet-1k-sample"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path
