"""`gan-color benchmark`: images/s of the training step (GAN and baselines), the data pipeline and colorize, each next
to a baseline measured in the same run (the plain fp32 step, per-image scikit-image Lab, the network alone)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gan_color import color
from gan_color.config import load_config
from gan_color.data import CacheDataset, FolderDataset, add_lab, list_images, prepare_data
from gan_color.data.embedded import load_photos
from gan_color.devices import device_name, resolve_device
from gan_color.loader import make_train_loader

SECTIONS = ("train", "variants", "data", "colorize")
GENERATORS = ("resnet_6blocks", "resnet_9blocks")
BASELINE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "baselines"
# Variant -> config overrides of the GAN step. "reference" is not a config: it is the upstream pix2pix step
# (gan_color.benchmark_reference), fp32 eager, the yardstick of every variant; "fp32" is the project's plain step.
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
# The data loader's timed window: at least this many times the batches its workers can hold prefetched (which
# arrive without work and would inflate the rate) and never fewer than MIN_WINDOW batches.
WINDOW_FACTOR, MIN_WINDOW = 10, 8


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


# ----------------------------------------------------------------------------------------------------------------
# Devices, clocks and Accelerate's process-wide state


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so the clock measures work done and not work launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def accelerate_session(device: torch.device) -> Iterator[None]:
    """Each case builds its own Accelerator with its own mixed precision. Accelerate keeps one process-wide state
    that refuses a second precision, so it is cleared around every case (as Accelerate's own tests do), with the
    launcher's environment defaults masked: the benchmark chooses the device and precision of each case itself."""
    from accelerate.state import AcceleratorState, GradientState

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
    import accelerate

    return {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "accelerate": accelerate.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average_start": load_average()}


def load_average() -> list[float] | None:
    """1/5/15-minute load: above the core count, other processes shared the machine during the run."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


# ----------------------------------------------------------------------------------------------------------------
# Training step


def width_overrides(model: str, *, ngf: int | None, ndf: int | None, uses_discriminator: bool) -> list[str]:
    """Shrink the networks (for CPUs): `ngf` sets the generator's `ngf` or a baseline's `width`, `ndf` D's `ndf`."""
    import inspect

    from gan_color.models import colorizer_registry

    params = inspect.signature(colorizer_registry(model).get(model)).parameters
    overrides = []
    if ngf is not None:
        overrides += [f"model.kwargs.{key}={ngf}" for key in ("ngf", "width") if key in params]
    if ndf is not None and uses_discriminator:
        overrides.append(f"discriminator.kwargs.ndf={ndf}")
    return overrides


def train_config(config: Path | None, overrides: list[str], *, size: int, settings: Settings, workdir: Path,
                 batch_size: int | None = None):
    """The config of one measured case: its own YAML (or the GAN defaults) on a small embedded dataset, no tracking,
    a fresh run folder; the schedule is irrelevant to speed."""
    batch_size = batch_size or settings.batch_size
    base = [f"data.size={size}", f"data.batch_size={batch_size}", "data.num_workers=0", "data.train=embedded",
            "data.val=", f"data.embedded_length={max(2 * batch_size, 8)}", "train.num_probes=1",
            "train.validate_every=0", "train.resume=never", f"train.output_dir={workdir}", "tracking.wandb=false",
            "tracking.tensorboard=false", "train.channels_last=false", "train.compile=false", "optim.steps=100000",
            "optim.decay_steps=0"]
    cfg = load_config(config, [*base, *overrides])
    from gan_color.registry import OBJECTIVES

    uses_d = getattr(OBJECTIVES.get(cfg.objective.name), "uses_discriminator", False)
    extra = width_overrides(cfg.model.name, ngf=settings.ngf, ndf=settings.ndf, uses_discriminator=uses_d)
    cfg = load_config(config, [*base, *overrides, *extra]) if extra else cfg
    if not any(o.startswith("train.mixed_precision=") for o in overrides):
        cfg.train.mixed_precision = "no"  # fp32 unless the case says otherwise, whatever its YAML asks for
    return cfg


def measure_train(cfg: Any, *, device: torch.device, warmup: int, steps: int) -> tuple[float, dict[str, Any]]:
    """Images/s of the training loop's body on one real batch already on the device (`warmup` steps excluded from
    the clock), and the networks' parameter counts."""
    from gan_color import train

    with accelerate_session(device):
        run = train.setup(cfg)
        batch = next(iter(run.loader))

        def step() -> int:
            train.train_step(run, batch)  # exactly the loop's step, on a fixed batch
            return batch["rgb"].shape[0]

        rate = throughput(step, warmup=warmup, steps=steps, device=run.accelerator.device)
        info: dict[str, Any] = {f"params_{k}": sum(p.numel() for p in v.parameters()) for k, v in run.networks.items()}
        if run.accelerator.device.type == "cuda":
            info["host_sync_free"] = host_sync_free(step)
        return rate, info


def host_sync_free(step: Callable[[], int]) -> bool | str:
    """True when one more step runs with CUDA's sync debug mode set to error, else the first line of the error:
    a step that waits for the GPU cannot queue the next one meanwhile."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return True
    except RuntimeError as err:
        return str(err).strip().splitlines()[0][:200]
    finally:
        torch.cuda.set_sync_debug_mode(0)


def measure_reference(generator: str, *, size: int, batch_size: int, settings: Settings, device: torch.device,
                      warmup: int, steps: int) -> tuple[float, dict[str, Any]]:
    """Images/s of the upstream pix2pix colorization step (benchmark_reference), fp32 eager, on one real batch
    already on the device as normalized L and ab (upstream computes Lab in its dataset, so no conversion is timed)."""
    from gan_color.benchmark_reference import Pix2PixColorization
    from gan_color.data import build_dataset

    torch.manual_seed(0)
    model = Pix2PixColorization(ngf=settings.ngf or 64, ndf=settings.ndf or 64,
                                n_blocks=9 if generator == "resnet_9blocks" else 6, device=device)
    crops = build_dataset("embedded", size=size, train=True, to_lab=False, embedded_length=batch_size)
    lab = add_lab({"rgb": torch.stack([crops[i]["rgb"] for i in range(batch_size)]).to(device)})
    model.set_input(lab["gray_l"], lab["real_ab"])

    def step() -> int:
        model.optimize_parameters()
        return batch_size

    rate = throughput(step, warmup=warmup, steps=steps, device=device)
    info = {"params_generator": sum(p.numel() for p in model.netG.parameters()),
            "params_discriminator": sum(p.numel() for p in model.netD.parameters())}
    return rate, info


def throughput(step: Callable[[], int], *, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    tic = time.perf_counter()
    images = sum(step() for _ in range(steps))
    synchronize(device)
    return images / (time.perf_counter() - tic)


@dataclass
class TrainCase:
    section: str
    name: str
    size: int
    config: Path | None
    overrides: list[str]
    baseline: str = ""
    skip: str = ""
    batch_size: int = 0
    compiled: bool = False  # its first round spends a long warm-up (the budget keeps room for it)


def gan_overrides(generator: str) -> list[str]:
    return [f"model.name={generator}", "model.kwargs={}", "objective.name=pix2pix", "discriminator.name=patchgan"]


def train_cases(settings: Settings, device: torch.device) -> list[TrainCase]:
    cases = []
    reference = f"gan_{settings.generators[0]}" if settings.generators else ""
    if "train" in settings.only:
        for size in settings.sizes:
            cases += [TrainCase("train", f"gan_{g}", size, None, gan_overrides(g),
                                baseline="" if f"gan_{g}" == reference else reference) for g in settings.generators]
            cases += [TrainCase("train", f"baseline_{p.stem}", size, p, [], baseline=reference)
                      for p in settings.baselines]
    if "variants" in settings.only and settings.generators:
        gan = gan_overrides(settings.generators[0])
        for size in variant_sizes(settings, device):
            for batch in settings.variant_batch_sizes or [settings.batch_size]:
                cases += [TrainCase("variants", name, size, None, gan + overrides, batch_size=batch,
                                    baseline="" if name == REFERENCE else REFERENCE,
                                    skip=variant_skip(name, device, settings, size=size, largest=variant_sizes(
                                        settings, device)[0]),
                                    compiled=name in COMPILED or (name == "fast" and device.type == "cuda"))
                          for name, overrides in VARIANTS.items()]
    return cases


def variant_sizes(settings: Settings, device: torch.device) -> list[int]:
    """Sizes of the variant comparison, largest first (the most telling cases run before any budget runs out)."""
    if settings.variant_sizes:
        return sorted(settings.variant_sizes, reverse=True)
    return [settings.variant_size or (max(settings.sizes) if device.type == "cuda" else min(settings.sizes))]


def variant_skip(name: str, device: torch.device, settings: Settings, *, size: int = 0, largest: int = 0) -> str:
    """Why a variant cannot run here ('' when it can)."""
    if "fp16" in name and device.type != "cuda":
        return "fp16 autocast with a gradient scaler needs a CUDA GPU"
    if "bf16" in name and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16 support"
    if "bf16" in name and device.type == "mps":
        return "bf16 autocast is not supported on MPS by this torch"
    if name == "fast+cudagraphs" and device.type != "cuda":
        return "CUDA graphs need a CUDA GPU"
    if name in COMPILED:
        if settings.compile == "off" or (settings.compile == "auto" and device.type != "cuda"):
            return "torch.compile warm-up takes minutes on a CPU; pass --compile on to measure it"
        if settings.compile == "auto" and size != largest and name != "fast+cudagraphs":
            return "compile variants run at the largest variant size only (--compile on: at every size)"
    return ""


class Budget:
    """Wall-clock allowance of the whole run (`--budget`): no case starts once too little of it is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> float:
        return float("inf") if not self.seconds else self.seconds - (time.perf_counter() - self.start)

    def allows(self, needs: float) -> bool:
        return self.left() >= needs


NOT_RUN = "not run: the --budget ran out"


def run_train(settings: Settings, device: torch.device, workdir: Path, log: Callable[[str], None], *,
              sections: tuple[str, ...] = ("train", "variants"), budget: Budget | None = None) -> list[Row]:
    """Every case `settings.repeats` times, interleaved (case order repeats per round), keeping the best round: on a
    shared machine other processes only ever slow a round down."""
    budget = budget or Budget(0)
    cases = [case for case in train_cases(settings, device) if case.section in sections]
    best: dict[int, float] = {}
    info: dict[int, dict[str, Any]] = {}
    total, done, tic = settings.repeats * sum(not case.skip for case in cases), 0, time.perf_counter()
    for round_index in range(settings.repeats):
        for i, case in enumerate(cases):
            if case.skip or i in info and "error" in info[i]:
                continue
            batch = case.batch_size or settings.batch_size
            label = f"  {case.section} {case.name} @ {case.size}px batch {batch}"
            if not budget.allows(90.0 if case.compiled and i not in best else 10.0):
                continue
            try:
                if case.name == REFERENCE:
                    rate, params = measure_reference(settings.generators[0], size=case.size, batch_size=batch,
                                                     settings=settings, device=device, warmup=settings.warmup,
                                                     steps=settings.steps)
                else:
                    cfg = train_config(case.config, [f"name=bench_{i}_{round_index}", *case.overrides],
                                       size=case.size, settings=settings, workdir=workdir, batch_size=batch)
                    rate, params = measure_train(cfg, device=device, warmup=settings.warmup, steps=settings.steps)
            except Exception as err:  # noqa: BLE001 - a size too small for a network, a compiler failure, ...
                info[i] = {"error": f"{type(err).__name__}: {err}"}
                log(f"{label}: skipped ({err})")
                continue
            best[i] = max(best.get(i, 0.0), rate)
            info[i] = params
            done += 1
            left = (time.perf_counter() - tic) / done * (total - done)  # an upper bound: later rounds are warm
            log(f"{label}: {rate:.2f} images/s (round {round_index + 1}) [{done}/{total} cases, ~{left / 60:.1f} min "
                "left]")
    rows = [Row(c.section, c.name, c.size, c.batch_size or settings.batch_size, best.get(i), c.baseline,
                note=c.skip or info.get(i, {}).get("error", "") or ("" if i in best else NOT_RUN),
                extra={k: v for k, v in info.get(i, {}).items() if k != "error"}) for i, c in enumerate(cases)]
    rows = add_ratios(rows)
    fp32 = {(r.size, r.batch_size): r.images_per_sec for r in rows if r.section == "variants" and r.name == "fp32"}
    for row in rows:  # the targets are against the project's plain step as well
        if row.section == "variants" and row.images_per_sec and fp32.get((row.size, row.batch_size)):
            row.extra["vs_fp32"] = row.images_per_sec / fp32[row.size, row.batch_size]
    return rows


def add_ratios(rows: list[Row]) -> list[Row]:
    rates = {(r.section, r.name, r.size, r.batch_size): r.images_per_sec for r in rows}
    for row in rows:
        reference = rates.get((row.section, row.baseline, row.size, row.batch_size)) if row.baseline else None
        if row.images_per_sec and reference:
            row.ratio = row.images_per_sec / reference
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Data pipeline


class SkimageLab(Dataset):
    """The pix2pix colorization reference (data/colorization_dataset.py): each crop, as a uint8 array, converted with
    skimage.color.rgb2lab in the loader worker, then normalized L/50 - 1 and ab/110."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from skimage.color import rgb2lab

        item = self.dataset[index]
        array = color.rgb_to_uint8(item["rgb"]).permute(1, 2, 0).numpy()
        lab = torch.from_numpy(rgb2lab(array).astype(np.float32)).permute(2, 0, 1)
        return {**item, "gray_l": color.normalize_l(lab[:1]), "real_ab": color.normalize_ab(lab[1:])}


def write_sample_jpegs(folder: Path, count: int, *, seed: int = 0) -> Path:
    """`count` JPEGs cut from the photos bundled with scikit-image, ImageNet-like (short side 256, aspect 1-1.5), so
    the benchmark runs offline without a dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(array) for array in load_photos()]
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(min(photo.size) * rng.uniform(0.6, 1.0))
        width = min(photo.size[0], int(side * rng.uniform(1.0, 1.5)))
        left, top = rng.integers(0, photo.size[0] - width + 1), rng.integers(0, photo.size[1] - side + 1)
        crop = photo.crop((left, top, left + width, top + side))
        crop.resize((round(256 * width / side), 256), Image.Resampling.BICUBIC).save(folder / f"{i:05d}.jpg",
                                                                                     quality=90)
    return folder


class Repeated(Dataset):
    """`dataset` repeated `times` times (index modulo its length): a timed window of many batches from few files."""

    def __init__(self, dataset: Dataset, times: int) -> None:
        self.dataset, self.times = dataset, times

    def __len__(self) -> int:
        return len(self.dataset) * self.times

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]


def single_process_rate(dataset: Dataset, items: int = 6) -> float:
    """Items/s of `dataset[i]` in this process, one thread (as in a loader worker), best of two passes: times the
    worker count, an upper bound of any loader's rate (the workers do nothing else)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = 0.0
        for _ in range(2):
            tic = time.perf_counter()
            for i in range(min(items, len(dataset))):
                dataset[i]
            best = max(best, min(items, len(dataset)) / (time.perf_counter() - tic))
        return best
    finally:
        torch.set_num_threads(threads)


def loader_throughput(dataset: Dataset, *, batch_size: int, workers: int, device: torch.device,
                      lab_on_device: bool) -> tuple[float | None, dict[str, Any]]:
    """Steady-state images/s of the training loader (its epoch-seeded sampler and per-item seeds), each batch moved to
    `device` and (with `lab_on_device`) converted to L/ab there. The first batch, and the batches the workers hold
    prefetched when it arrives, are excluded (start-up, not throughput), and the timed window is at least
    WINDOW_FACTOR times what the workers can hold prefetched (the dataset is repeated to get there), so batches that
    arrive without waiting move the figure by 10% at most. Returns (rate or None, details): None when the window is
    still too short or the rate exceeds what the workers could possibly do (`single_process_rate` x workers x 2)."""
    prefetch = 2 * workers  # DataLoader's prefetch_factor is 2 per worker
    skip = 1 + prefetch
    window = max(MIN_WINDOW, WINDOW_FACTOR * prefetch)
    times = -(-(skip + window) * batch_size // len(dataset))
    loader, _ = make_train_loader(Repeated(dataset, max(1, times)), batch_size=batch_size, num_workers=workers,
                                  seed=0, pin_memory=device.type == "cuda")
    images, timed, tic = 0, 0, 0.0
    for i, batch in enumerate(loader):
        if i == skip:
            synchronize(device)
            tic = time.perf_counter()
        rgb = batch["rgb"].to(device, non_blocking=True)
        item = add_lab({"rgb": rgb}) if lab_on_device else {k: batch[k].to(device) for k in ("gray_l", "real_ab")}
        if i >= skip:
            images += item["gray_l"].shape[0]
            timed += 1
    synchronize(device)
    rate = images / (time.perf_counter() - tic) if timed else 0.0
    ceiling = single_process_rate(dataset) * max(1, workers) * 2
    details = {"workers": workers, "skipped_batches": skip, "timed_batches": timed, "prefetch_batches": prefetch,
               "plausible_max": round(ceiling, 1), "measured": round(rate, 1)}
    if timed < max(MIN_WINDOW, WINDOW_FACTOR * prefetch):
        return None, {**details, "flag": f"window of {timed} batches is too short for {prefetch} prefetched"}
    if rate > ceiling:
        return None, {**details, "flag": f"{rate:.0f} images/s is impossible for {max(1, workers)} worker(s) at "
                                         f"{ceiling / 2 / max(1, workers):.0f} images/s each"}
    return rate, details


def data_sources(folder: Path, *, size: int, limit: int, workdir: Path, log: Callable[[str], None]):
    """(name, dataset factory) for the JPEG folder and a prepare-data cache of it (at 2x the size, as docs/data.md
    advises for random crops); also returns the images/s of building the cache."""
    cache = workdir / f"cache_{size}"
    tic = time.perf_counter()
    if not cache.exists():
        prepare_data(folder, cache, 2 * size, limit=limit, progress=False)
    built = CacheDataset(cache, size=size, train=True, to_lab=False)
    cache_rate = len(built) / (time.perf_counter() - tic)
    log(f"  prepare-data cache ({2 * size} px): {cache_rate:.1f} images/s (one-off)")

    def make(kind: str, to_lab: bool) -> Dataset:
        if kind == "folder":
            return FolderDataset(folder, size=size, train=True, to_lab=to_lab, limit=limit)
        return CacheDataset(cache, size=size, train=True, to_lab=to_lab)

    return make, cache_rate


def run_data(settings: Settings, device: torch.device, folder: Path, workdir: Path,
             log: Callable[[str], None], budget: Budget | None = None) -> list[Row]:
    """For each size and source: Lab batched on the device (what training does), Lab per item in the workers, and
    the per-image scikit-image reference, best of `repeats` interleaved rounds. A flagged measurement (window too
    short, impossible rate) gives no number, only its reason."""
    budget = budget or Budget(0)
    rows: list[Row] = []
    methods = {"lab_on_device": (False, True), "lab_per_item_torch": (True, False), "skimage_per_item": (False, False)}
    for size in settings.sizes:
        if not budget.allows(30.0):
            rows += [Row("data", f"{kind}_{method}", size, settings.batch_size, note=NOT_RUN)
                     for kind in ("folder", "cache") for method in methods]
            continue
        make, cache_rate = data_sources(folder, size=size, limit=settings.data_images, workdir=workdir, log=log)
        rows.append(Row("data", "prepare_data_cache", size, 1, cache_rate, note="one-off: decode + resize + write"))
        best: dict[tuple[str, str], float] = {}
        details: dict[tuple[str, str], dict[str, Any]] = {}
        for _ in range(settings.repeats):
            for kind in ("folder", "cache"):
                for method, (to_lab, on_device) in methods.items():
                    dataset = make(kind, to_lab)
                    dataset = SkimageLab(dataset) if method == "skimage_per_item" else dataset
                    rate, detail = loader_throughput(dataset, batch_size=settings.batch_size,
                                                     workers=settings.workers, device=device, lab_on_device=on_device)
                    if rate is not None and rate > best.get((kind, method), 0.0):
                        best[kind, method], details[kind, method] = rate, detail
                    details.setdefault((kind, method), detail)
                    shown = f"{rate:.1f} images/s" if rate is not None else f"flagged ({detail['flag']})"
                    log(f"  data {kind} {method} @ {size}px: {shown}")
        rows += [Row("data", f"{kind}_{method}", size, settings.batch_size, best.get((kind, method)),
                     baseline=f"{kind}_skimage_per_item", note=details[kind, method].get("flag", ""),
                     extra=details[kind, method]) for kind in ("folder", "cache") for method in methods]
        rows += conversion_rows(make("cache", False), settings=settings, size=size, device=device, log=log)
    return add_ratios(rows)


def conversion_rows(dataset: Dataset, *, settings: Settings, size: int, device: torch.device,
                    log: Callable[[str], None]) -> list[Row]:
    """The RGB -> normalized L/ab conversion alone, on one batch of real crops: scikit-image per image (the pix2pix
    reference, from uint8), torch per image on the CPU (what `to_lab=True` items do), torch batched on the device."""
    batch = torch.stack([dataset[i]["rgb"] for i in range(min(settings.batch_size, len(dataset)))])
    reference = SkimageLab([{"rgb": image} for image in batch])
    on_device = batch.to(device)
    cases = {
        "lab_skimage_per_image": lambda: len([reference[i] for i in range(len(batch))]),
        "lab_torch_per_image": lambda: len([color.rgb_to_model_inputs(image[None]) for image in batch]),
        "lab_torch_batched": lambda: add_lab({"rgb": on_device})["gray_l"].shape[0],
    }
    rows = []
    for name, step in cases.items():
        rate = max(throughput(step, warmup=1, steps=settings.steps, device=device) for _ in range(settings.repeats))
        log(f"  data {name} @ {size}px: {rate:.1f} images/s")
        rows.append(Row("data", name, size, len(batch), rate, baseline="lab_skimage_per_image",
                        note="conversion only, one thread of the main process" if name != "lab_torch_batched" else
                        f"conversion only, on {device}"))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Colorize


def run_colorize(settings: Settings, device: torch.device, folder: Path, workdir: Path,
                 log: Callable[[str], None], budget: Budget | None = None) -> list[Row]:
    """`Colorizer` (the inference wrapper every command uses) on a batch at the model size, and the whole
    `colorize_paths` path (decode, full-resolution L, gamut mapping, encode, write) on the JPEG folder."""
    from gan_color.colorize import colorize_paths
    from gan_color.inference import Colorizer, ExportSpec, save_export
    from gan_color.models import build_colorizer

    rows = []
    generator = settings.generators[0] if settings.generators else "resnet_6blocks"
    kwargs = {} if settings.ngf is None else {"ngf": settings.ngf}
    files = list_images(folder)[: settings.data_images]
    for size in settings.sizes:
        if budget is not None and not budget.allows(20.0):
            rows += [Row("colorize", name, size, settings.batch_size, note=NOT_RUN)
                     for name in ("colorizer_model", "colorize_files")]
            continue
        export = save_export(build_colorizer(generator, **kwargs),
                             ExportSpec(arch=generator, kwargs=kwargs, image_size=size, run="benchmark"),
                             workdir / f"export_{size}")
        colorizer = Colorizer.load(export, device=device)
        gray_l = torch.rand(settings.batch_size, 1, size, size, device=device) * 2 - 1
        step = partial(lambda c, x: c.colorize_rgb(x).shape[0], colorizer, gray_l)
        colorize_paths(colorizer, files[: settings.batch_size], workdir / "warmup", size=size,
                       batch_size=settings.batch_size, progress=False)
        model_rate = files_rate = 0.0
        for round_index in range(settings.repeats):  # interleaved, best of each: both see the same load
            model_rate = max(model_rate, throughput(step, warmup=settings.warmup, steps=settings.steps,
                                                    device=device))
            tic = time.perf_counter()
            report = colorize_paths(colorizer, files, workdir / f"colorized_{size}_{round_index}", size=size,
                                    batch_size=settings.batch_size, workers=settings.workers, progress=False)
            files_rate = max(files_rate, len(report.written) / (time.perf_counter() - tic))
        log(f"  colorize {generator} model @ {size}px: {model_rate:.1f} images/s")
        log(f"  colorize files @ {size}px: {files_rate:.1f} images/s")
        rows.append(Row("colorize", "colorizer_model", size, settings.batch_size, model_rate,
                        note="Colorizer.colorize_rgb on a batch already on the device"))
        rows.append(Row("colorize", "colorize_files", size, settings.batch_size, files_rate,
                        baseline="colorizer_model", extra={"workers": settings.workers, "images": len(files)},
                        note="image files in -> full-resolution files out (decode, resize, model, gamut map, "
                             "encode, write)"))
    return add_ratios(rows)


# ----------------------------------------------------------------------------------------------------------------
# Report


def format_table(rows: list[Row]) -> str:
    lines = [f"{'section':<9} {'case':<34} {'px':>4} {'batch':>5} {'images/s':>10} {'ratio':>7}  vs / note"]
    for row in rows:
        rate = "skipped" if row.images_per_sec is None else f"{row.images_per_sec:.2f}"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        tail = row.note if row.images_per_sec is None else row.baseline
        lines.append(f"{row.section:<9} {row.name:<34} {row.size:>4} {row.batch_size:>5} {rate:>10} {ratio:>7}  "
                     f"{tail}")
    return "\n".join(lines)


def markdown_tables(result: dict[str, Any]) -> str:
    """The variant rows of a result as the Markdown table of docs/benchmarks.md: one row per variant, one column
    per (size, batch), each cell images/s with the ratio to `reference` and to `fp32` of the same run."""
    rows = [Row(**row) for row in result.get("variants", [])]
    columns = sorted({(r.size, r.batch_size) for r in rows}, key=lambda c: (-c[0], -c[1]))
    if not columns:
        return "(no variant rows)"
    lines = ["| variant | " + " | ".join(f"{size} px, batch {batch}" for size, batch in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name in dict.fromkeys(r.name for r in rows):
        cells = []
        for size, batch in columns:
            row = next((r for r in rows if (r.name, r.size, r.batch_size) == (name, size, batch)), None)
            if row is None or row.images_per_sec is None:
                cells.append("not run" if row is not None and row.note == NOT_RUN else "-")
            elif name == REFERENCE:
                cells.append(f"**{row.images_per_sec:.3g}** img/s")
            else:
                vs_fp32 = row.extra.get("vs_fp32")
                cells.append(f"{row.images_per_sec:.3g} ({row.ratio:.2f}x" + (f", {vs_fp32:.2f}x fp32)"
                                                                            if name != "fp32" and vs_fp32 else ")"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    skipped = {r.name: r.note for r in rows if r.images_per_sec is None and r.note and r.note != NOT_RUN}
    lines += [""] + [f"- {name}: {note}" for name, note in skipped.items()]
    return "\n".join(lines)


def benchmark(settings: Settings, *, log: Callable[[str], None] = print,
              json_path: str | Path | None = None) -> dict[str, Any]:
    """Run the selected sections in the order of `settings.only`; returns {"environment", "settings", "rows",
    "<section>": [rows...], "errors": {section: message}}. With `json_path` the result so far is written after every
    section (and when interrupted), so a failing or killed later section loses nothing measured before it."""
    device = resolve_device(settings.device)
    threads = torch.get_num_threads()
    # One thread on a CPU by default: the measured best on a small or shared CPU (docs/benchmarks.md), where torch's
    # default threads wait on each other and make the network look slower than everything around it.
    wanted = (1 if device.type == "cpu" else 0) if settings.threads < 0 else settings.threads
    if wanted:
        torch.set_num_threads(wanted)
    result: dict[str, Any] = {"environment": environment(device), "settings": _plain(asdict(settings)),
                              "complete": False, "errors": {}, "rows": []}
    start = time.perf_counter()

    def save(rows: list[Row]) -> None:
        result["environment"]["load_average_end"] = load_average()
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["rows"] = [asdict(row) for row in rows]
        for section in SECTIONS:
            result[section] = [asdict(row) for row in rows if row.section == section]
        if json_path:
            write_json(result, json_path)

    rows: list[Row] = []
    try:
        for section, section_rows, error in run_sections(settings, device, log):
            rows += section_rows
            if error:
                result["errors"][section] = error
            save(rows)
        result["complete"] = True
    except KeyboardInterrupt:
        result["errors"]["interrupted"] = "KeyboardInterrupt"
        raise
    finally:
        torch.set_num_threads(threads)
        save(rows)
    return result


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Atomically: a reader (or a kill mid-write) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)


def run_sections(settings: Settings, device: torch.device,
                 log: Callable[[str], None]) -> Iterator[tuple[str, list[Row], str]]:
    """Yields (section, rows, error message or '') per section, in the order of `settings.only`. A section that
    fails is reported and the next one still runs."""
    budget = Budget(settings.budget)
    with tempfile.TemporaryDirectory(prefix="gan-color-bench-") as tmp:
        workdir = Path(tmp)
        folder: Path | None = None
        for section in dict.fromkeys(settings.only):  # each once, in the given order
            log({"train": "training step", "variants": "variants of the GAN step", "data": "data pipeline",
                 "colorize": "colorize"}[section])
            try:
                if section in ("train", "variants"):
                    rows = run_train(settings, device, workdir / "runs", log, sections=(section,), budget=budget)
                else:
                    if folder is None:
                        folder = Path(settings.data) if settings.data else write_sample_jpegs(workdir / "jpegs",
                                                                                               settings.data_images)
                    run = run_data if section == "data" else run_colorize
                    rows = run(settings, device, folder, workdir, log, budget)
            except Exception as err:  # noqa: BLE001 - one failing section must not lose the others
                message = f"{type(err).__name__}: {err}"
                log(f"  {section} failed: {message}")
                yield section, [], message
                continue
            yield section, rows, ""


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------------------------------------------
# CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small run (< 2 min on 2 CPU cores): 64 px, ngf/ndf 16, 2 steps, 48 images")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="gpu: the GPU table of docs/benchmarks.md in under 8 minutes (variants at 64/128/256 "
                             "px, batch 16 and 1, paper widths, ResNet-9; then colorize and data at 128/256 px)")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sizes in px (default 64 128 256)")
    parser.add_argument("--steps", type=int, help="timed steps per case (default 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 2; compile needs >= 2)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds; the best is kept (default 2)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 8)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--ngf", type=int, help="shrink the generator (ngf) and baseline networks (width); "
                                                "default: the paper widths")
    parser.add_argument("--ndf", type=int, help="shrink the PatchGAN (ndf); default 64")
    parser.add_argument("--generators", nargs="+", choices=GENERATORS, help="GAN generators (default: both)")
    parser.add_argument("--baselines", nargs="*", metavar="YAML",
                        help=f"baseline configs to time (default: every {BASELINE_CONFIGS.name}/*.yaml of the repo)")
    parser.add_argument("--variant-size", type=int,
                        help="size of the variant comparison (default: the largest size on a GPU, smallest on CPU)")
    parser.add_argument("--variant-sizes", type=int, nargs="+",
                        help="several variant sizes (overrides --variant-size)")
    parser.add_argument("--variant-batch-sizes", type=int, nargs="+",
                        help="batch sizes of the variant comparison (default: --batch-size)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds after which no new case starts; the rest are recorded as not run (0 = none)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="measure torch.compile (auto: on GPUs only; its warm-up takes minutes on a CPU)")
    parser.add_argument("--data", help="image folder for the data and colorize sections "
                                       "(default: JPEGs cut from the photos bundled with scikit-image)")
    parser.add_argument("--data-images", type=int, help="images per data/colorize pass (default 256)")
    parser.add_argument("--workers", type=int, help="data loader processes (default: min(4, CPUs))")
    parser.add_argument("--threads", type=int, default=-1,
                        help="torch CPU threads (-1 = 1 on CPU, the measured best on a small or shared CPU; 0 = "
                             "torch's default, for a dedicated many-core machine)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="sections to run, in this order (default: all)")
    parser.add_argument("--json", help="write the results here (after every section, so nothing measured is lost)")
    parser.add_argument("--table", metavar="JSON", help="measure nothing: print the variants of an earlier --json "
                                                       "result as the Markdown table of docs/benchmarks.md")


def settings_from_args(args: argparse.Namespace) -> Settings:
    preset = {**DEFAULTS, **PRESETS["quick" if args.quick else args.preset or "default"]}
    fallback = {"workers": min(4, os.cpu_count() or 1), "only": list(SECTIONS), "budget": 0.0,
                "variant_sizes": None, "variant_batch_sizes": None,
                "baselines": sorted(BASELINE_CONFIGS.glob("*.yaml"))}
    value = {}
    for key in [*preset, *fallback]:
        given = getattr(args, key, None)
        value[key] = given if given is not None else preset.get(key, fallback.get(key))
    value["baselines"] = [Path(p) for p in value["baselines"]]
    return Settings(**value, device=args.device, variant_size=args.variant_size, compile=args.compile,
                    data=args.data, threads=args.threads)


def run_cli(args: argparse.Namespace) -> int:
    if args.table:
        try:
            print(markdown_tables(json.loads(Path(args.table).read_text())))
        except (OSError, ValueError, TypeError) as err:
            print(f"error: cannot read {args.table}: {err}", file=sys.stderr)
            return 2
        return 0
    settings = settings_from_args(args)
    bad = [name for name in ("steps", "repeats", "batch_size", "data_images") if getattr(settings, name) < 1]
    if bad or settings.warmup < 0 or settings.threads < -1 or any(s < 16 for s in settings.sizes):
        print(f"error: {', '.join(bad) or 'warmup/sizes'} out of range (steps, repeats, batch size, images >= 1; "
              "warmup >= 0, threads >= -1; sizes >= 16)", file=sys.stderr)
        return 2
    if settings.data and not Path(settings.data).is_dir():
        print(f"error: --data {settings.data!r} is not a folder", file=sys.stderr)
        return 2
    def interrupted(signum, frame):  # `timeout` / a scheduler's SIGTERM: keep the sections already measured
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = benchmark(settings, log=lambda line: print(line, flush=True), json_path=args.json)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{'; the sections finished are in ' + args.json if args.json else ''}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    print(format_table([Row(**row) for row in result["rows"]]))
    print(f"\n{result['environment']['device']} ({result['environment']['device_name']}), "
          f"{result['seconds']} s; ratios are against the row named on the right, measured in the same run")
    for section, message in result["errors"].items():
        print(f"error in {section}: {message}", file=sys.stderr)
    if args.json:
        print(f"wrote {args.json}")
    return 1 if result["errors"] else 0
