"""What `gan-color benchmark` measures: its sections, the variants of the GAN step, the presets, the settings of a run,
a row of the result and the wall-clock budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = ("train", "variants", "data", "colorize")
GENERATORS = ("resnet_6blocks", "resnet_9blocks")
# Variant -> config overrides of the GAN step. "reference" is not a config: it is the upstream pix2pix step
# (tools/benchmark/reference.py), fp32 eager, the yardstick of every variant; "fp32" is the project's plain step.
REFERENCE = "reference"
VARIANTS: dict[str, list[str]] = {  # in order of interest: a --budget cut drops the last ones
    REFERENCE: [],
    "fp32": [],
    "fast": ["train.recipe=fast"],
    "bf16": ["train.mixed_precision=bf16"],
    "channels_last": ["train.channels_last=true"],
    "bf16+channels_last": ["train.mixed_precision=bf16", "train.channels_last=true"],
    "fp16": ["train.mixed_precision=fp16"],
    "bf16+compile": ["train.mixed_precision=bf16", "train.compile=true"],
    "bf16+channels_last+compile": ["train.mixed_precision=bf16", "train.channels_last=true", "train.compile=true"],
    "fast+cudagraphs": ["train.recipe=fast", "train.compile_mode=reduce-overhead"],
    "compile": ["train.compile=true"],
}
COMPILED = {"compile", "bf16+compile", "bf16+channels_last+compile", "fast+cudagraphs"}  # + "fast" on a GPU
# Defaults of a full run, of --quick (< 2 min on 2 CPU cores) and of --preset gpu (the GPU table, < 8 min on one
# GPU: --budget stops starting cases after 400 s and records the rest as not run); explicit flags override them.
DEFAULTS = {"sizes": [64, 128, 256], "steps": 10, "warmup": 2, "repeats": 2, "batch_size": 8, "ngf": None,
            "ndf": None, "data_images": 256, "generators": list(GENERATORS)}
QUICK = {"sizes": [64], "steps": 2, "warmup": 1, "repeats": 1, "batch_size": 4, "ngf": 16, "ndf": 16,
         "data_images": 48, "generators": ["resnet_6blocks"]}
GPU = {"sizes": [128, 256], "steps": 20, "warmup": 5, "repeats": 1, "batch_size": 16, "ngf": None, "ndf": None,
       "data_images": 1000, "generators": ["resnet_9blocks"], "variant_sizes": [256, 128, 64],
       "variant_batch_sizes": [16, 1], "budget": 400.0, "workers": 12, "baselines": [],
       "only": ["variants", "colorize", "data"]}
PRESETS = {"default": DEFAULTS, "quick": QUICK, "gpu": GPU}
NOT_RUN = "not run: the --budget ran out"


@dataclass
class Row:
    """One measurement. `images_per_sec` is None when the case was skipped (`note` says why); `ratio` divides it by
    the throughput of the `baseline` row of the same section and size."""

    section: str
    name: str
    size: int
    batch_size: int
    images_per_sec: float | None = None
    baseline: str = ""
    ratio: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Settings:
    sizes: list[int]
    steps: int
    warmup: int
    repeats: int
    batch_size: int
    device: str = "auto"
    ngf: int | None = None
    ndf: int | None = None
    generators: list[str] = field(default_factory=lambda: list(GENERATORS))
    baselines: list[Path] = field(default_factory=list)
    variant_size: int | None = None
    compile: str = "auto"  # auto (on GPUs only) | on | off
    data: str | None = None  # image folder for the data and colorize sections (None = JPEGs written from scikit-image)
    data_images: int = 256
    workers: int = 2
    threads: int = -1  # torch intra-op threads (0 = torch's default; -1 = 1 on a CPU device, torch's elsewhere)
    only: list[str] = field(default_factory=lambda: list(SECTIONS))  # sections, run in this order
    variant_sizes: list[int] | None = None  # None: [variant_size or the largest size on a GPU, smallest on CPU]
    variant_batch_sizes: list[int] | None = None  # None: [batch_size]
    budget: float = 0.0  # seconds after which no new case starts (0 = no limit); the rest are recorded as not run


class Budget:
    """Wall-clock allowance of the whole run (`--budget`): no case starts once too little of it is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> float:
        return float("inf") if not self.seconds else self.seconds - (time.perf_counter() - self.start)

    def allows(self, needs: float) -> bool:
        return self.left() >= needs


def add_ratios(rows: list[Row]) -> list[Row]:
    """Each row's `ratio` to its `baseline` row of the same section, size and batch (measured in the same run)."""
    rates = {(r.section, r.name, r.size, r.batch_size): r.images_per_sec for r in rows}
    for row in rows:
        reference = rates.get((row.section, row.baseline, row.size, row.batch_size)) if row.baseline else None
        if row.images_per_sec and reference:
            row.ratio = row.images_per_sec / reference
    return rows
