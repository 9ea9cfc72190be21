"""The models of the results table: the GAN and the baselines by name (configs in the configs folder), models named
as YAML files, and models trained elsewhere (`--score`); what each one is, in a few words read from its config."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_color.config import Config, load_config
from gan_color.inference import SPEC_NAME, WEIGHTS_NAME, Colorizer, find_export, load_spec
from gan_color.tools.configs import config_path
from gan_color.tools.results.split import HELDOUT

# name -> config (relative to the configs folder, see gan_color.tools.configs). The GAN is the quickstart setting;
# baselines use their own configs.
MODELS: dict[str, str] = {
    "pix2pix_gan": "quickstart.yaml",
    "cnn_l2_lab": "baselines/regression_cnn_l2_lab.yaml",
    "cnn_l1_rgb": "baselines/regression_cnn_l1_rgb.yaml",
    "unet_l1mse_lab": "baselines/regression_unet_l1mse_lab.yaml",
    "resnet18_l1_lab": "baselines/regression_resnet18_l1_lab.yaml",
    "eccv16_classification": "baselines/classification_eccv16.yaml",
    "unet_classification": "baselines/classification_unet.yaml",
}


@dataclass
class ModelResult:
    """One row of the table: what the model is, how it trained and how it scored."""

    name: str
    config: str
    run_dir: Path | None
    description: dict[str, str]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    sem: dict[str, float] = field(default_factory=dict)  # standard error of the mean of per-image metrics
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)  # file -> per-image metrics
    scored_only: bool = False  # trained elsewhere with its own budget (`--score`), not by this command


def selected_models(entries: list[str] | None) -> list[tuple[str, str]]:
    """(name, config) for each of `entries` (names in MODELS or paths to YAML configs); all MODELS by default. A
    config is a MODELS entry (relative to the configs folder) or an absolute path."""
    chosen = []
    for entry in entries or list(MODELS):
        if entry in MODELS:
            chosen.append((entry, MODELS[entry]))
        elif entry.endswith((".yaml", ".yml")) and Path(entry).is_file():
            chosen.append((Path(entry).stem, str(Path(entry).resolve())))
        else:
            raise ValueError(f"unknown model {entry!r}: use one of {list(MODELS)} or a path to a YAML config")
    names = [name for name, _ in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    return chosen


def model_config(config: str | os.PathLike, *, name: str, split: dict[str, Path], size: int, steps: int,
                 batch_size: int, workers: int, runs: Path, extra: list[str],
                 configs: str | os.PathLike | None = None) -> Config:
    """The model's own config with the shared budget: same data, size, steps and batch for every model; no periodic
    validation (it would cost the models different amounts); W&B/TensorBoard off unless `extra` turns them on.
    A relative `config` is found in the configs folder (`configs`, see `gan_color.tools.configs.config_path`)."""
    path = Path(config) if Path(config).is_absolute() else config_path(config, configs)
    overrides = [f"name={name}", f"train.output_dir={runs.resolve()}", f"data.train={split['train']}",
                 f"data.val={split[HELDOUT]}", f"data.size={size}", f"data.batch_size={batch_size}",
                 f"data.num_workers={workers}", "data.drop_grayscale=true", "data.limit=0", f"optim.steps={steps}",
                 f"optim.decay_steps={steps // 2}", "train.validate_every=0",
                 f"train.sample_every={max(steps // 4, 1)}", f"train.checkpoint_every={max(steps // 2, 1)}",
                 "train.keep_checkpoints=1", "train.resume=auto",
                 "tracking.wandb=false", "tracking.tensorboard=false", *extra]
    return load_config(path, overrides)


def describe(cfg: Config) -> dict[str, str]:
    """Objective and network in a few words, read from the config (so the table cannot disagree with the runs)."""
    hidden = ("prior_images", "prior_workers", "bin_size", "sigma", "lam", "temperature")
    objective = ", ".join(f"{k}={v}" for k, v in cfg.objective.kwargs.items() if k not in hidden)
    network = ", ".join(f"{k}={v}" for k, v in cfg.model.kwargs.items())
    if cfg.objective.name == "pix2pix":
        network += f"; D {cfg.discriminator.name} " + ", ".join(f"{k}={v}" for k, v in cfg.discriminator.kwargs.items()
                                                                 if k != "norm")
    return {"objective": f"{cfg.objective.name} ({objective})" if objective else cfg.objective.name,
            "network": f"{cfg.model.name} ({network})" if network else cfg.model.name,
            "lr": f"{cfg.optim.lr:g}"}


def scored_models(args: argparse.Namespace, log: Callable[[str], None]) -> list[ModelResult]:
    """Models trained elsewhere (`--score NAME=MODEL`: a run folder, an export or a shipped model's name), copied
    into the work folder so they are scored, drawn and reported exactly like the trained ones."""
    results = []
    for entry in args.score:
        name, _, model = entry.partition("=")
        if not name or not model:
            raise ValueError(f"--score takes NAME=MODEL (e.g. shipped=gan-color-base), got {entry!r}")
        source, folder = find_export(model), Path(args.work) / "scored" / name
        folder.mkdir(parents=True, exist_ok=True)
        for file in (SPEC_NAME, WEIGHTS_NAME):
            shutil.copy2(source / file, folder / file)
        spec = load_spec(folder)
        network = ", ".join(f"{k}={v}" for k, v in spec.kwargs.items() if k != "pretrained")
        description = {"objective": f"{spec.objective}, trained elsewhere ({spec.run}, {spec.step} steps)",
                       "network": f"{spec.arch} ({network})", "lr": ""}
        params = sum(p.numel() for p in Colorizer.load(folder).parameters())
        log(f"scoring {name}: {model} ({spec.arch}, trained elsewhere)")
        results.append(ModelResult(name, str(model), folder, description, {"params_generator": params},
                                   scored_only=True))
    return results
