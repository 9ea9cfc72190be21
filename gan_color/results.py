"""The results table (docs/results.md): a fixed split of an image folder, the GAN and every baseline trained for the
same budget, all scored on the held-out images with every metric, plus image sheets. Run by scripts/make_results.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from gan_color.config import Config, ConfigError, load_config, to_dict
from gan_color.data import list_images
from gan_color.data.split import split_rank
from gan_color.devices import device_name, resolve_device

ROOT = Path(__file__).resolve().parents[1]
# name -> config (relative to the repository). The GAN is the quickstart setting; baselines use their own configs.
MODELS: dict[str, str] = {
    "pix2pix_gan": "configs/quickstart.yaml",
    "cnn_l2_lab": "configs/baselines/regression_cnn_l2_lab.yaml",
    "cnn_l1_rgb": "configs/baselines/regression_cnn_l1_rgb.yaml",
    "unet_l1mse_lab": "configs/baselines/regression_unet_l1mse_lab.yaml",
    "resnet18_l1_lab": "configs/baselines/regression_resnet18_l1_lab.yaml",
    "eccv16_classification": "configs/baselines/classification_eccv16.yaml",
    "unet_classification": "configs/baselines/classification_unet.yaml",
}
HELDOUT = "heldout"  # the held-out folder's name, hence each run's eval/heldout/ folder
NOTES_BEGIN, NOTES_END = "<!-- notes: kept when this file is regenerated -->", "<!-- end of notes -->"
LABELS = {"psnr_rgb_uint8": "PSNR dB", "ssim_rgb_uint8": "SSIM", "lpips_alex": "LPIPS alex", "lpips_vgg": "LPIPS vgg",
          "auc_ab_0_150": "AuC", "delta_colorfulness": "Δ colourful.", "colorfulness": "colourful.",
          "bin_accuracy": "bin acc."}


@dataclass
class ModelResult:
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


# ----------------------------------------------------------------------------------------------------------------
# The split


def split_order(files: list[str], seed: int) -> list[str]:
    """Files ordered by a hash of (seed, relative path): the same on every machine and library version, and a
    file's place does not depend on which other files exist."""
    return sorted(files, key=lambda name: split_rank(name, seed))


def make_split(data: str | os.PathLike, out: str | os.PathLike, *, train: int, heldout: int,
               seed: int = 0) -> dict[str, Path]:
    """Folders `out/train` and `out/heldout` of symlinks to `heldout` + `train` disjoint images of `data` (held-out
    images first in the hash order, then training images), rebuilt on every call; `out/split.json` lists them."""
    data, out = Path(data).resolve(), Path(out)
    names = [p.relative_to(data).as_posix() for p in list_images(data)]
    if train < 1 or heldout < 1 or train + heldout > len(names):
        raise ValueError(f"{data} holds {len(names)} images; cannot split off {train} training and {heldout} "
                         "held-out images (both must be >= 1)")
    order = split_order(names, seed)
    chosen = {HELDOUT: sorted(order[:heldout]), "train": sorted(order[heldout:heldout + train])}
    folders = {}
    for split, files in chosen.items():
        folder = out / split
        if folder.exists():
            shutil.rmtree(folder)  # only symlinks live here
        for name in files:
            link = folder / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(data / name)
        folders[split] = folder
    manifest = {"data": str(data), "seed": seed, **chosen}
    (out / "split.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folders


# ----------------------------------------------------------------------------------------------------------------
# Training for a fixed budget


def model_config(config: str | os.PathLike, *, name: str, split: dict[str, Path], size: int, steps: int,
                 batch_size: int, workers: int, runs: Path, extra: list[str]) -> Config:
    """The model's own config with the shared budget: same data, size, steps and batch for every model; no periodic
    validation (it would cost the models different amounts); W&B/TensorBoard off unless `extra` turns them on."""
    path = Path(config) if Path(config).is_absolute() else ROOT / config
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


def comparable(saved: dict[str, Any], cfg: Config) -> bool:
    """Whether a run folder's config.yaml trained what `cfg` asks for (output paths and resume mode aside)."""
    wanted = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))
    keys = ("seed", "data", "model", "discriminator", "objective", "optim")
    return all(saved.get(k) == wanted.get(k) for k in keys)


def train_model(cfg: Config, *, overwrite: bool, log) -> dict[str, Any]:
    """Train `cfg` (resuming an interrupted run, reusing a finished one) with `gan_color.train.main`; returns the
    accumulated wall time, steps, images/s of the loop and parameter counts."""
    from gan_color import train
    from gan_color.inference import load_spec

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
    from gan_color.registry import OBJECTIVES
    from gan_color.train import build_networks

    networks = build_networks(cfg, OBJECTIVES.build(cfg.objective.name, **cfg.objective.kwargs))
    return {f"params_{name}": sum(p.numel() for p in net.parameters()) for name, net in networks.items()}


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


class GrayReference(nn.Module):
    """ab = 0 everywhere: the gray input itself. Per-pixel metrics reward it (it is never far off); colour metrics
    do not. Every colorization should be read against it."""

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(gray_l).repeat(1, 2, 1, 1)


def evaluate_model(colorizer: Any, heldout: Path, out_dir: Path, *, size: int, metrics: list[str], device: str,
                   allow_download: bool, fid_cache: Path, best_worst: bool = True) -> dict[str, Any]:
    """`gan-color evaluate` on the held-out folder; writes metrics.json / per_image.csv (and best_worst.png)."""
    from gan_color.eval.evaluate import evaluate, write_report

    result = evaluate(colorizer, heldout, size=size, metrics=metrics, device=device, allow_download=allow_download,
                      fid_cache_root=fid_cache, best_worst=out_dir / "best_worst.png" if best_worst else None,
                      progress=False, workers=0)
    write_report(result, out_dir)
    return result


def standard_errors(result: dict[str, Any]) -> dict[str, float]:
    """Standard error of the mean of every per-image column of an evaluation."""
    rows = result["per_image"]
    keys = [k for k in (rows[0] if rows else {}) if k not in ("index", "file")]
    errors = {}
    for key in keys:
        values = torch.tensor([row[key] for row in rows], dtype=torch.float64)
        if len(values) > 1:
            errors[key] = float(values.std() / len(values) ** 0.5)
    return errors


def gray_reference(size: int) -> Any:
    from gan_color.inference import Colorizer, ExportSpec

    return Colorizer(GrayReference(), ExportSpec(arch="gray_reference", kwargs={}, image_size=size, run="gray"))


# ----------------------------------------------------------------------------------------------------------------
# Images and the markdown report


def write_images(results: list[ModelResult], heldout: Path, images: Path, *, size: int, count: int, cell: int,
                 device: str) -> dict[str, Path]:
    """Sheets of the same held-out crops colorized by every model (JPEG, two of count/2 rows), metric bar plots and
    training curves, from `gan_color.eval.compare`."""
    from gan_color.eval import compare

    images.mkdir(parents=True, exist_ok=True)
    records = compare.load_runs([r.run_dir for r in results if r.run_dir is not None], HELDOUT)
    written = {}
    if count > 0:
        root, files = compare.sheet_inputs(records, heldout, count)
        half = max(1, (len(files) + 1) // 2)
        for i, chunk in enumerate((files[:half], files[half:]), start=1):
            if chunk:
                sheet = compare.image_sheet(records, root, chunk, size=size, device=device, cell=cell)
                written[f"sheet_{i}"] = images / f"sheet_{i}.jpg"
                sheet.convert("RGB").save(written[f"sheet_{i}"], quality=88, optimize=True)
    columns, rows = compare.metrics_table(records)
    for key, path in (("metrics", compare.plot_metrics(columns, rows, images / "metrics.png")),
                      ("curves", compare.plot_curves(records, images / "training_curves.png"))):
        if path is not None:
            written[key] = path
    return written


def metric_columns(results: list[ModelResult]) -> list[str]:
    from gan_color.metrics.ranking import sort_metric_keys

    return sort_metric_keys(list(dict.fromkeys(k for r in results for k in r.metrics if k != "colorfulness_real")))


def header(key: str) -> str:
    from gan_color.metrics.ranking import metric_direction

    count, _, at = key[3:].partition("_")
    label = f"FID ({count} img{', ' + at if at else ''})" if key.startswith("fid") else LABELS.get(key, key)
    return label + {True: " ↑", False: " ↓", None: ""}[metric_direction(key)]


def table(results: list[ModelResult], reference: ModelResult) -> str:
    """Markdown: one row per model (best value per ranked metric in bold), then the gray reference in italics."""
    from gan_color.metrics.ranking import metric_direction

    keys = metric_columns([*results, reference])
    lines = ["| model | objective | network | params | wall min | img/s | " + " | ".join(map(header, keys)) + " |",
             "|" + "---|" * (6 + len(keys))]
    best = {}
    for key in keys:
        values = [r.metrics[key] for r in results if isinstance(r.metrics.get(key), float)]
        direction = metric_direction(key)
        best[key] = None if direction is None or len(values) < 2 else (max if direction else min)(values)
    for r in [*results, reference]:
        t = r.training
        params = sum(v for k, v in t.items() if k.startswith("params_"))
        cells = [r.name, r.description.get("objective", ""), r.description.get("network", ""),
                 f"{params / 1e6:.2f}M" if params else "", f"{t['seconds'] / 60:.1f}" if t.get("seconds") else "",
                 f"{t['loop_images_per_sec']:.1f}" if t.get("loop_images_per_sec") else ""]
        for key in keys:
            value = r.metrics.get(key)
            text = "n/a" if value is None else f"{value:.4g}"
            cells.append(f"**{text}**" if r is not reference and value is not None and value == best[key] else text)
        if r is reference:
            cells = [f"*{c}*" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kept_notes(path: Path) -> str:
    """The hand-written notes of an existing report (between the markers), or a placeholder."""
    text = path.read_text() if path.is_file() else ""
    if NOTES_BEGIN in text and NOTES_END in text:
        return text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0].strip()
    return "(Observations on the committed run go here; this block survives regeneration.)"


def report(context: dict[str, Any], results: list[ModelResult], reference: ModelResult, images: dict[str, Path],
           out: Path) -> str:
    c = context
    rel = {k: p.relative_to(out).as_posix() for k, p in images.items()}
    total_minutes = sum(r.training.get("seconds", 0.0) for r in results) / 60
    epochs = c["steps"] * c["batch_size"] / max(c["train_images"], 1)
    keys = metric_columns([*results, reference])
    fid = next((k for k in keys if k.startswith("fid")), None)
    lines = [
        f"# Results: the GAN against regression and classification baselines ({c['size']} px training, equal budget; "
        f"{c.get('eval_size', c['size'])} px evaluation)",
        "",
        f"Generated by `{c['command']}` on {c['date']} ({c['device']}, torch {c['torch']}, torch CPU threads: "
        f"{c['threads']}). Regenerate instead of editing; only the notes section at the end is kept.",
        "",
        "## Protocol",
        "",
        f"- **Data**: `{c['data']}`, split by a seeded hash of each file name (seed {c['seed']}; "
        f"`gan_color.results.make_split`): {c['train']} training and {c['heldout']} held-out images, disjoint, the "
        f"same on every machine (list in `{c['work']}/split/split.json`). Grayscale photos are dropped from both, as "
        f"Zhang et al. did: {c['train_images']} training images, {c['eval_images']} evaluated.",
        f"- **Budget**: every model trains {c['steps']} steps x {c['batch_size']} images = "
        f"{c['steps'] * c['batch_size']} crops (~{epochs:.1f} epochs) at {c['size']} px with "
        f"`gan_color.train.main`, its own config's optimiser settings, the pix2pix schedule (lr constant, then "
        f"linearly to 0 over the last {c['steps'] // 2} steps) and no validation passes. *wall min* is the whole "
        f"`train.main` call (set-up, class prior, checkpoints, sample grids included), *img/s* the median rate the "
        f"loop logged. All {len(results)} models took {total_minutes:.0f} min.",
        *[f"- **{r.name}** was trained elsewhere with its own (larger) budget and is only scored here: "
          f"`{r.config}`, {r.description['objective']}." for r in results if r.scored_only],
        f"- **Evaluation**: `gan-color evaluate` on the held-out folder: short side resized to "
        f"{c.get('eval_size', c['size'])} px and "
        "centre-cropped, L of the input + predicted ab -> sRGB uint8. " + metric_text(keys, reference, fid),
        "- *gray input* is the reference that predicts ab = 0: per-pixel scores (PSNR, SSIM, AuC) favour it, which "
        "is why colorization papers add perceptual, distribution and human scores.",
        "",
        "## Table",
        "",
        table(results, reference),
        "",
    ]
    return "\n".join(lines + sections(c, rel, results, reference))


def paired_errors(results: list[ModelResult], key: str) -> list[float]:
    """Standard errors of the mean per-image difference between the first model and each other one (the same
    images score every model, so paired differences are what tells two models apart)."""
    first, errors = results[0].per_image, []
    for other in results[1:]:
        diffs = [row[key] - other.per_image[f][key] for f, row in first.items()
                 if key in row and key in other.per_image.get(f, {})]
        if len(diffs) > 1:
            errors.append(float(torch.tensor(diffs, dtype=torch.float64).std()) / len(diffs) ** 0.5)
    return errors


def sem_text(results: list[ModelResult]) -> str:
    """How large a gap must be to mean something, from the per-image scores."""
    parts = []
    for key, unit in (("psnr_rgb_uint8", " dB PSNR"), ("lpips_alex", " LPIPS")):
        alone = [r.sem[key] for r in results if key in r.sem]
        paired = paired_errors(results, key) if len(results) > 1 else []
        if alone and paired:
            parts.append(f"{min(alone):.2g}-{max(alone):.2g}{unit} for one model's mean, {min(paired):.2g}-"
                         f"{max(paired):.2g} for its difference to {results[0].name} (paired, same images)")
    text = "standard errors are " + "; ".join(parts) + ". " if parts else ""
    return text + "Gaps under about twice the paired error are not evidence that one model is better."


def metric_text(keys: list[str], reference: ModelResult, fid: str | None) -> str:
    """What the table's metric columns are, for the columns present."""
    texts = {"psnr_rgb_uint8": "PSNR and SSIM on RGB uint8", "lpips_alex": "LPIPS (AlexNet, v0.1)",
             "lpips_vgg": "LPIPS (VGG, v0.1)", "auc_ab_0_150": "AuC of the per-pixel ab error (Zhang et al., "
             "thresholds 0-150)", "colorfulness": "Hasler-Suesstrunk colourfulness (ground truth: "
             f"{reference.metrics.get('colorfulness_real', float('nan')):.1f}) and its distance to the ground "
             "truth's", "bin_accuracy": "accuracy of the most likely ab bin (classifiers only)"}
    parts = [text for key, text in texts.items() if key in keys]
    if fid:
        parts.append(f"FID against the held-out photos (torch-fidelity Inception). **FID on {fid[3:]} images is "
                     "very noisy and biased upwards** (it is usually reported on 10k-50k images): read only large "
                     "gaps")
    return "; ".join(parts) + "."


def sections(c: dict[str, Any], rel: dict[str, str], results: list[ModelResult], reference: ModelResult) -> list[str]:
    lines = []
    missing = {name: why for r in [*results, reference] for name, why in r.unavailable.items()}
    if missing:
        lines += ["Metrics not computed: " + "; ".join(f"{k}: {v}" for k, v in missing.items()), ""]
    if any(k.startswith("sheet") for k in rel):
        lines += ["## Held-out samples", "", "Rows: held-out crops (gray input | every model | ground truth), "
                  "the same crops for every model.", ""]
        lines += [f"![held-out samples]({p})" for k, p in rel.items() if k.startswith("sheet")] + [""]
    if "metrics" in rel or "curves" in rel:
        lines += ["## Plots", ""] + [f"![{k}]({p})" for k, p in rel.items() if k in ("metrics", "curves")] + [""]
    lines += [
        "## What this small budget means",
        "",
        f"- {c['steps']} steps on {c['train_images']} photos is a smoke-scale comparison chosen to fit a 2-core CPU; "
        "the papers train for hundreds of thousands of steps on ImageNet (1.3M photos). Models trained this briefly "
        "mostly predict an average, desaturated tint before they learn which colour belongs to which object; "
        "rankings can change with training "
        "length, because the GAN and the rebalanced classifiers trade per-pixel accuracy for colourfulness, and "
        "that trade only pays off once the model knows which colour belongs where.",
        "- The networks are small (see *params*) and differ in size; equal steps x batch is the budget, not equal "
        "FLOPs or wall time.",
        f"- {c['eval_images']} held-out images: {sem_text(results)}",
        "",
        "## Reproduce at full scale",
        "",
        "```",
        "python ../shared/weights/make_torch_home.py .torch_home   # or let lpips/torch-fidelity download",
        "python scripts/make_results.py --data /path/to/photos --out docs --work runs/results \\",
        "    --size 256 --steps 100000 --batch-size 16 --train 100000 --heldout 5000 --workers 8 \\",
        "    --set train.mixed_precision=bf16 --torch-home .torch_home",
        "```",
        "",
        "Flags: `--models` (names or YAML configs; default all of `gan_color.results.MODELS`), `--set KEY=VALUE` "
        "(an override for every model, e.g. widths or precision), `--seed` (the split), `--metrics`, "
        "`--sheet-images`, `--threads`, `--overwrite` (retrain runs made with other settings; finished runs with the "
        "same settings are reused, interrupted ones resume). Training uses the GPU when one is present.",
        "",
        "## Notes",
        "",
        NOTES_BEGIN,
        c["notes"],
        NOTES_END,
        "",
    ]
    return lines


# ----------------------------------------------------------------------------------------------------------------
# Driver and CLI


def selected_models(entries: list[str] | None) -> list[tuple[str, str]]:
    """(name, config) for each of `entries` (names in MODELS or paths to YAML configs); all MODELS by default."""
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


def train_all(args: argparse.Namespace, split: dict[str, Path], log) -> list[ModelResult]:
    results = []
    for name, config in selected_models(args.models):
        cfg = model_config(config, name=name, split=split, size=args.size, steps=args.steps,
                           batch_size=args.batch_size, workers=args.workers, runs=Path(args.work) / "runs",
                           extra=list(args.set))
        training = train_model(cfg, overwrite=args.overwrite, log=log)
        log(f"{name}: {training['seconds'] / 60:.1f} min")
        results.append(ModelResult(name, config, cfg.run_dir, describe(cfg), training))
    return results


def scored_models(args: argparse.Namespace, log) -> list[ModelResult]:
    """Models trained elsewhere (`--score NAME=MODEL`: a run folder, an export or a shipped model's name), copied
    into the work folder so they are scored, drawn and reported exactly like the trained ones."""
    from gan_color.inference import SPEC_NAME, WEIGHTS_NAME, Colorizer, find_export, load_spec

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


def fid_at(colorizer: Any, heldout: Path, args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    """FID at `--fid-size` (crops at that size, upsampled where the photos are smaller), keyed `fid<N>_<size>px`."""
    scored = evaluate_model(colorizer, heldout, run_dir / "eval" / f"{HELDOUT}_fid{args.fid_size}", size=args.fid_size,
                            metrics=["fid"], device=args.device, allow_download=not args.no_download,
                            fid_cache=Path(args.work) / "fid_cache", best_worst=False)
    return {f"{k}_{args.fid_size}px": v for k, v in scored["metrics"].items() if k.startswith("fid")}


def evaluate_all(args: argparse.Namespace, results: list[ModelResult], heldout: Path, log) -> ModelResult:
    """Score every model and the gray reference on the held-out folder; returns the reference."""
    from gan_color.inference import Colorizer

    eval_size = args.eval_size or args.size
    options = dict(size=eval_size, metrics=args.metrics, device=args.device, allow_download=not args.no_download,
                   fid_cache=Path(args.work) / "fid_cache")
    for r in results:
        log(f"evaluating {r.name}")
        scored = evaluate_model(Colorizer.load(r.run_dir), heldout, r.run_dir / "eval" / HELDOUT, **options)
        r.metrics, r.unavailable, r.sem = scored["metrics"], scored["unavailable"], standard_errors(scored)
        r.per_image = {row["file"]: row for row in scored["per_image"]}
        if args.fid_size and "fid" in args.metrics:
            r.metrics.update(fid_at(Colorizer.load(r.run_dir), heldout, args, r.run_dir))
    scored = evaluate_model(gray_reference(eval_size), heldout, Path(args.work) / "gray_reference" / "eval" / HELDOUT,
                            best_worst=False, **options)
    reference = ModelResult("gray input (ab = 0)", "", None, {}, metrics=scored["metrics"],
                            unavailable=scored["unavailable"])
    if args.fid_size and "fid" in args.metrics:
        gray = Path(args.work) / "gray_reference"
        reference.metrics.update(fid_at(gray_reference(args.fid_size), heldout, args, gray))
    reference.training["eval_images"] = scored["count"]
    return reference


def make_results(args: argparse.Namespace, command: str, log=print) -> Path:
    """Split, train, evaluate, draw and write `<out>/results.md`, `<out>/results/` (images, results.json)."""
    from gan_color.data import FolderDataset

    out, work = Path(args.out), Path(args.work)
    split = make_split(args.data, work / "split", train=args.train, heldout=args.heldout, seed=args.seed)
    results = train_all(args, split, log) + scored_models(args, log)
    reference = evaluate_all(args, results, split[HELDOUT], log)
    eval_size = args.eval_size or args.size
    images = write_images(results, split[HELDOUT], out / "results", size=eval_size, count=args.sheet_images,
                          cell=args.cell, device=args.device)
    train_images = len(FolderDataset(split["train"], size=args.size, train=True, to_lab=False, drop_grayscale=True))
    device = resolve_device(args.device)
    context = {"command": command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
               "device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "data": args.data, "seed": args.seed, "train": args.train, "heldout": args.heldout,
               "work": args.work, "train_images": train_images, "eval_images": reference.training.pop("eval_images"),
               "steps": args.steps, "batch_size": args.batch_size, "size": args.size,
               "eval_size": eval_size,
               "notes": kept_notes(out / "results.md"), "python": platform.python_version()}
    payload = {"context": {k: v for k, v in context.items() if k != "notes"},
               "models": [{"name": r.name, "config": r.config, "description": r.description,
                           "training": r.training, "metrics": r.metrics, "sem": r.sem,
                           "unavailable": r.unavailable}
                          for r in [*results, reference]]}
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / "results.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    (out / "results.md").write_text(report(context, results, reference, images, out))
    return out / "results.md"


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from gan_color.eval.evaluate import DEFAULT_METRICS

    parser.add_argument("--data", required=True, help="image folder to split (e.g. ../shared/data/imagenet-1k-sample)")
    parser.add_argument("--out", default="docs", help="writes OUT/results.md and OUT/results/ (default: docs)")
    parser.add_argument("--work", default="runs/results", help="split, run folders, FID cache (default: runs/results)")
    parser.add_argument("--size", type=int, default=64, help="training (and, without --eval-size, evaluation) size")
    parser.add_argument("--eval-size", type=int, default=0, help="evaluation size in px (0 = --size)")
    parser.add_argument("--fid-size", type=int, default=0, help="also FID at this crop size (0 = only at eval size)")
    parser.add_argument("--score", nargs="*", default=[], metavar="NAME=MODEL",
                        help="also score models trained elsewhere (run folder, export or shipped model name)")
    parser.add_argument("--steps", type=int, default=200, help="optimisation steps per model (the shared budget)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step for every model")
    parser.add_argument("--train", type=int, default=900, help="training images in the split")
    parser.add_argument("--heldout", type=int, default=100, help="held-out (evaluation) images in the split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (training seeds are the configs')")
    parser.add_argument("--models", nargs="+", help=f"names ({', '.join(MODELS)}) or YAML configs (default: all)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override for every model's config")
    parser.add_argument("--workers", type=int, default=1, help="data loader processes per training run")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = torch's default; 1 is faster on a CPU shared with other jobs)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="evaluation metrics")
    parser.add_argument("--device", default="auto", help="evaluation device: auto | cpu | cuda | mps")
    parser.add_argument("--torch-home", help="TORCH_HOME holding the LPIPS/FID weights (see make_torch_home.py)")
    parser.add_argument("--no-download", action="store_true", help="never download metric weights")
    parser.add_argument("--sheet-images", type=int, default=16, help="held-out images in the sample sheets (0 = none)")
    parser.add_argument("--cell", type=int, default=112, help="sheet cell size in px")
    parser.add_argument("--overwrite", action="store_true", help="retrain runs that were made with other settings")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="make_results.py", description=__doc__.split("\n")[0])
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    if min(args.size, args.steps, args.batch_size) < 1 or args.threads < 0 or args.workers < 0:
        parser.error("--size, --steps and --batch-size must be >= 1; --threads and --workers >= 0")
    if args.torch_home:
        os.environ["TORCH_HOME"] = str(Path(args.torch_home).resolve())
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python scripts/make_results.py " + " ".join(shlex.quote(a) for a in argv)
    try:
        path = make_results(args, command, log=lambda line: print(line, flush=True))
    except (ValueError, ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    print(f"wrote {path}")
    return 0
