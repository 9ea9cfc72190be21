"""Devices, decided in one place: which device a command runs on (`--device auto|cpu|cuda|cuda:1|mps`), whether
training has an accelerator and which device type it trains on, the device's readable name for reports, and this
process's rank in a multi-process launch."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch


def has_accelerator() -> bool:
    """Whether torch sees any accelerator (CUDA, MPS, XPU, ...): training then leaves the device to Accelerate,
    which picks it the same way."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def training_device_type() -> str:
    """'cuda' or 'cpu': the device type a training run will use, known before the Accelerator exists (Accelerate's
    CPU override included, as the benchmark and `accelerate launch --cpu` set it). Decides the fast recipe."""
    forced_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return "cuda" if torch.cuda.is_available() and not forced_cpu else "cpu"


def launch_rank() -> int:
    """This process's global rank as torchrun / accelerate launch set it (0 when started plainly)."""
    return int(os.environ.get("RANK", "0"))


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU when present, else Apple MPS, else CPU; anything else is passed to torch, and
    asking for CUDA where torch sees none is a ValueError (a message) rather than a traceback later on."""
    if str(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for but torch sees no CUDA GPU")
    return device


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (/proc/cpuinfo, else what `platform` knows)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
