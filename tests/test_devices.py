"""Devices are decided in one module: `auto` picks CUDA, then MPS, then CPU; CUDA asked for without one is a message;
every command resolves devices through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from gan_color import devices

PACKAGE = Path(devices.__file__).parent


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    mps = getattr(torch.backends, "mps", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert devices.resolve_device("auto") == devices.resolve_device() == torch.device("cpu")
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: True)
        assert devices.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")


def test_named_devices_pass_through_and_missing_cuda_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    assert devices.resolve_device("cpu") == devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--device cuda:1 was asked for but torch sees no CUDA GPU"):
        devices.resolve_device("cuda:1")


def test_training_device_type_follows_accelerates_cpu_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "false")
    assert devices.training_device_type() == "cuda"
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    assert devices.training_device_type() == "cpu"
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.training_device_type() == "cpu"


def test_device_name_is_readable() -> None:
    name = devices.device_name(torch.device("cpu"))
    assert isinstance(name, str) and name.strip()


def test_no_other_module_resolves_devices() -> None:
    resolver = re.compile(r"^def (resolve_device|device_name|has_accelerator|training_device_type|recipe_device)\(",
                          re.M)
    defining = [path.relative_to(PACKAGE).as_posix() for path in sorted(PACKAGE.rglob("*.py"))
                if resolver.search(path.read_text())]
    assert defining == ["devices.py"]
    importing_commands = [path.relative_to(PACKAGE).as_posix() for path in sorted((PACKAGE / "eval").glob("*.py"))
                          if re.search(r"^from gan_color\.(colorize|benchmark) import", path.read_text(), re.M)]
    assert importing_commands == []
