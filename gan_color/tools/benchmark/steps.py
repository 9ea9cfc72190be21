"""The training-step section of the benchmark: images/s of `gan_color.train.train_step` (the loop's own step) for
every case, and of the upstream pix2pix step (`reference`) that every variant is compared with."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gan_color import train
from gan_color.config import Config
from gan_color.data import add_lab, build_dataset
from gan_color.tools.benchmark.cases import TrainCase, train_cases, train_config
from gan_color.tools.benchmark.clock import accelerate_session, throughput
from gan_color.tools.benchmark.reference import Pix2PixColorization
from gan_color.tools.benchmark.settings import NOT_RUN, REFERENCE, Budget, Row, Settings, add_ratios


def measure_train(cfg: Config, *, device: torch.device, warmup: int, steps: int) -> tuple[float, dict[str, Any]]:
    """Images/s of `train.train_step`, the loop's own step, on one real loader batch (`warmup` steps excluded from
    the clock), and the networks' parameter counts."""
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
    """Images/s of the upstream pix2pix colorization step (reference.py), fp32 eager, on one real batch
    already on the device as normalized L and ab (upstream computes Lab in its dataset, so no conversion is timed)."""
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
            label = f"  {case.section} {case.name} @ {case.size}px batch {case.batch_size or settings.batch_size}"
            if not budget.allows(90.0 if case.compiled and i not in best else 10.0):
                continue
            try:
                rate, params = measure_case(case, f"bench_{i}_{round_index}", settings, device, workdir)
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
    return case_rows(cases, best, info, settings)


def measure_case(case: TrainCase, name: str, settings: Settings, device: torch.device,
                 workdir: Path) -> tuple[float, dict[str, Any]]:
    """(images/s, parameter counts) of one round of `case`; its run folder is `workdir/name`."""
    batch = case.batch_size or settings.batch_size
    if case.name == REFERENCE:
        return measure_reference(settings.generators[0], size=case.size, batch_size=batch, settings=settings,
                                 device=device, warmup=settings.warmup, steps=settings.steps)
    cfg = train_config(case.config, [f"name={name}", *case.overrides], size=case.size, settings=settings,
                       workdir=workdir, batch_size=batch)
    return measure_train(cfg, device=device, warmup=settings.warmup, steps=settings.steps)


def case_rows(cases: list[TrainCase], best: dict[int, float], info: dict[int, dict[str, Any]],
              settings: Settings) -> list[Row]:
    """A row per case (best rate, or why there is none), with its ratios to its baseline and to `fp32`."""
    rows = [Row(c.section, c.name, c.size, c.batch_size or settings.batch_size, best.get(i), c.baseline,
                note=c.skip or info.get(i, {}).get("error", "") or ("" if i in best else NOT_RUN),
                extra={k: v for k, v in info.get(i, {}).items() if k != "error"}) for i, c in enumerate(cases)]
    rows = add_ratios(rows)
    fp32 = {(r.size, r.batch_size): r.images_per_sec for r in rows if r.section == "variants" and r.name == "fp32"}
    for row in rows:  # the targets are against the project's plain step as well
        if row.section == "variants" and row.images_per_sec and fp32.get((row.size, row.batch_size)):
            row.extra["vs_fp32"] = row.images_per_sec / fp32[row.size, row.batch_size]
    return rows
