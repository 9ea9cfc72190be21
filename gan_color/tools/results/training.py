"""Training every model of the results table for the same budget with `gan_color.train.main`: reusing a finished run,
resuming an interrupted one, refusing one made with other settings; wall time, loop rate and parameter counts."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gan_color import train
from gan_color.config import Config, to_dict, with_defaults
from gan_color.inference import load_spec
from gan_color.registry import OBJECTIVES
from gan_color.tools.results.models import ModelResult, describe, model_config, selected_models


def comparable(saved: dict[str, Any], cfg: Config) -> bool:
    """Whether a run folder's config.yaml trained what `cfg` asks for (output paths and resume mode aside)."""
    wanted = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))
    keys = ("seed", "data", "model", "discriminator", "objective", "optim")
    saved = with_defaults(saved)
    return all(saved.get(k) == wanted.get(k) for k in keys)


def train_model(cfg: Config, *, overwrite: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Train `cfg` (resuming an interrupted run, reusing a finished one) with `gan_color.train.main`; returns the
    accumulated wall time, steps, images/s of the loop and parameter counts."""
    run_dir, timing_file = cfg.run_dir, cfg.run_dir / "results_timing.json"
    if (run_dir / "config.yaml").is_file():
        if not comparable(yaml.safe_load((run_dir / "config.yaml").read_text()), cfg):
            if not overwrite:
                raise ValueError(f"{run_dir} was trained with another setting; pass --overwrite to retrain it")
            shutil.rmtree(run_dir)
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {"seconds": 0.0}
    finished = (run_dir / "generator.json").is_file() and load_spec(run_dir).step >= cfg.optim.steps
    if not finished:
        log(f"training {cfg.name}: {cfg.optim.steps} steps x {cfg.data.batch_size} images at {cfg.data.size} px")
        tic = time.perf_counter()
        train.main(cfg)
        timing["seconds"] += time.perf_counter() - tic
        timing_file.write_text(json.dumps(timing) + "\n")
    return {"seconds": timing["seconds"], "steps": cfg.optim.steps, "batch_size": cfg.data.batch_size,
            "loop_images_per_sec": loop_rate(run_dir / "metrics.jsonl"), **parameter_counts(cfg)}


def loop_rate(path: Path) -> float | None:
    """Median images/s the loop logged (excludes set-up, checkpoints and sample grids)."""
    rates = sorted(row["images_per_sec"] for row in map(json.loads, path.read_text().splitlines())
                   if "images_per_sec" in row) if path.is_file() else []
    return rates[len(rates) // 2] if rates else None


def parameter_counts(cfg: Config) -> dict[str, int]:
    """Trainable parameters of the networks `cfg` builds (generator, and D for the GAN)."""
    networks = train.build_networks(cfg, OBJECTIVES.build(cfg.objective.name, **cfg.objective.kwargs))
    return {f"params_{name}": sum(p.numel() for p in net.parameters()) for name, net in networks.items()}


def train_all(args: argparse.Namespace, split: dict[str, Path], log: Callable[[str], None]) -> list[ModelResult]:
    """Train every model of `--models` for the shared budget; a result per model, not yet scored."""
    results = []
    for name, config in selected_models(args.models):
        cfg = model_config(config, name=name, split=split, size=args.size, steps=args.steps,
                           batch_size=args.batch_size, workers=args.workers, runs=Path(args.work) / "runs",
                           extra=list(args.set), configs=args.configs)
        training = train_model(cfg, overwrite=args.overwrite, log=log)
        log(f"{name}: {training['seconds'] / 60:.1f} min")
        results.append(ModelResult(name, config, cfg.run_dir, describe(cfg), training))
    return results
