"""The benchmark's clock (images/s of a step, with the device synchronized around it), Accelerate's process-wide state
reset around each case, and the environment a result was measured in."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

import accelerate
import torch
from accelerate.state import AcceleratorState, GradientState

from gan_color.devices import device_name


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so the clock measures work done and not work launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def throughput(step: Callable[[], int], *, warmup: int, steps: int, device: torch.device) -> float:
    """Images/s of `steps` calls of `step` (each returns its image count) after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    synchronize(device)
    tic = time.perf_counter()
    images = sum(step() for _ in range(steps))
    synchronize(device)
    return images / (time.perf_counter() - tic)


@contextlib.contextmanager
def accelerate_session(device: torch.device) -> Iterator[None]:
    """Each case builds its own Accelerator with its own mixed precision. Accelerate keeps one process-wide state
    that refuses a second precision, so it is cleared around every case (as Accelerate's own tests do), with the
    launcher's environment defaults masked: the benchmark chooses the device and precision of each case itself."""
    saved = {key: os.environ.pop(key, None) for key in ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_CPU")}
    cudnn_benchmark = torch.backends.cudnn.benchmark  # the fast recipe turns it on: no case may inherit that
    if device.type == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    try:
        yield
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        torch.backends.cudnn.benchmark = cudnn_benchmark
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def environment(device: torch.device) -> dict[str, Any]:
    """The device, library versions, CPU count, threads and load a result was measured with."""
    return {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "accelerate": accelerate.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average_start": load_average()}


def load_average() -> list[float] | None:
    """1/5/15-minute load: above the core count, other processes shared the machine during the run."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
