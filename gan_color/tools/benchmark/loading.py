"""The data section of the benchmark: the training loader's steady-state images/s (Lab on the device, Lab per item
in the workers, the per-image scikit-image reference), on a JPEG folder and its prepare-data cache, and the Lab
conversion alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2lab
from torch.utils.data import Dataset

from gan_color import color
from gan_color.data import CacheDataset, FolderDataset, add_lab, prepare_data
from gan_color.data.embedded import load_photos
from gan_color.loader import make_train_loader
from gan_color.tools.benchmark.clock import synchronize, throughput
from gan_color.tools.benchmark.settings import NOT_RUN, Budget, Row, Settings, add_ratios

# The data loader's timed window: at least this many times the batches its workers can hold prefetched (which
# arrive without work and would inflate the rate) and never fewer than MIN_WINDOW batches.
WINDOW_FACTOR, MIN_WINDOW = 10, 8


class SkimageLab(Dataset):
    """The pix2pix colorization reference (data/colorization_dataset.py): each crop, as a uint8 array, converted with
    skimage.color.rgb2lab in the loader worker, then normalized L/50 - 1 and ab/110."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
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
