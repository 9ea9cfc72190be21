"""The colorize section of the benchmark: `Colorizer` on a batch at the model size, and the whole `colorize_paths`
path (decode, full-resolution L, model, gamut mapping, encode, write) on a JPEG folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from gan_color.colorize import colorize_paths
from gan_color.data import list_images
from gan_color.inference import Colorizer, ExportSpec, save_export
from gan_color.models import build_colorizer
from gan_color.tools.benchmark.clock import throughput
from gan_color.tools.benchmark.settings import NOT_RUN, Budget, Row, Settings, add_ratios


def run_colorize(settings: Settings, device: torch.device, folder: Path, workdir: Path,
                 log: Callable[[str], None], budget: Budget | None = None) -> list[Row]:
    """`Colorizer` (the inference wrapper every command uses) on a batch at the model size, and the whole
    `colorize_paths` path (decode, full-resolution L, gamut mapping, encode, write) on the JPEG folder."""
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
