"""`gan-color evaluate`: score an exported model (GAN or baseline) on an image folder with a fixed protocol and write
`metrics.json`, `per_image.csv` and a best/worst grid into `<run>/eval/<dataset>/`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gan_color import ab_grid, color
from gan_color.data.transforms import rgb_to_float
from gan_color.devices import resolve_device
from gan_color.eval import wandb_report
from gan_color.eval.images import (
    OwnPixels,
    ScoredImages,
    collate_own_pixels,
    describe_data,
    image_name,
    left_out_text,
    open_images,
)
from gan_color.inference import DECODE_METHODS, Colorizer, find_export
from gan_color.metrics import fid as fid_lib
from gan_color.metrics.scores import EvalBatch, Metric, build_metric
from gan_color.metrics.weights import MetricUnavailable
from gan_color.registry import METRICS
from gan_color.safeio import atomic_write_text, write_csv
from gan_color.sheets import render_sheet, save_sheet, to_pil

EVAL_SIZE = 256
DEFAULT_METRICS = ("psnr_rgb_uint8", "ssim_rgb_uint8", "lpips_alex", "colorfulness", "delta_colorfulness",
                   "auc_ab_0_150", "bin_accuracy", "fid")
# Per-image column that ranks the best/worst grid, and whether higher is better; the first one present is used.
RANKING = (("lpips_alex", False), ("lpips_vgg", False), ("psnr_rgb_uint8", True), ("auc_ab_0_150", True))


def setup_metrics(names: Sequence[str], *, output: str, **options: Any) -> tuple[dict[str, Metric], dict[str, str],
                                                                                  dict[str, str]]:
    """Build the metrics; those whose weights/packages are missing go to `unavailable` (reason + fix), those that
    do not apply to this model kind (bin_accuracy without logits) to `not_applicable`."""
    built, unavailable, not_applicable = {}, {}, {}
    for name in names:
        if getattr(METRICS.get(name), "requires", "") == "ab_logits" and output != "ab_logits":
            not_applicable[name] = f"needs a classification model (ab-bin logits); this model outputs {output!r}"
            continue
        try:
            built[name] = build_metric(name, **options)
        except MetricUnavailable as err:
            unavailable[name] = str(err)
    return built, unavailable, not_applicable


def protocol(*, size: int, full_resolution: bool, drop_grayscale: bool, limit: int,
             model_size: int | None = None) -> dict[str, Any]:
    """What a number in metrics.json means: crops, input ranges, implementations (and their versions)."""
    network = model_size or size
    crop = ("full resolution" if full_resolution
            else f"resize short side to {size} (antialiased) + centre crop {size}x{size}")
    if full_resolution or network != size:
        crop += f"; the model sees L resized to {network}x{network}, its ab is upsampled bilinearly"
    return {
        "size": size, "full_resolution": full_resolution, "crop": crop, "drop_grayscale": drop_grayscale,
        "model_size": network,
        "limit": limit, "output_rgb": "L of the input + predicted ab -> sRGB (D65), clipped, rounded to uint8",
        "psnr_rgb_uint8": "per image on RGB uint8 (peak 255), then mean; capped at 100 dB",
        "ssim_rgb_uint8": "skimage.metrics.structural_similarity, RGB uint8, data_range=255, 7x7 uniform window",
        "lpips": "lpips v0.1 (linear heads on ImageNet backbone), inputs uint8 mapped to [-1, 1]",
        "fid": "torch-fidelity, Inception-v3 pool3 (2048-d) on uint8 images, outputs vs real crops; key = fid<N>",
        "colorfulness": "Hasler & Suesstrunk 2003 on 0-255; delta = |mean CF(outputs) - mean CF(real)|",
        "auc_ab_0_150": "Zhang et al. 2016: fraction of pixels with ab L2 error <= t, t = 0..150, area / 150",
        "bin_accuracy": "argmax ab bin vs nearest bin of the real ab, per pixel (classifiers)",
        "versions": {name: _version(name) for name in ("torch", "lpips", "torch-fidelity", "scikit-image")},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def evaluate(colorizer: Colorizer, data: str | os.PathLike | Dataset, *, size: int = EVAL_SIZE, limit: int = 0,
             batch_size: int = 16, metrics: Sequence[str] = DEFAULT_METRICS, device: str | torch.device = "auto",
             full_resolution: bool = False, drop_grayscale: bool = True, workers: int = 0,
             model_size: int | None = None, decode: str | None = None, temperature: float | None = None,
             allow_download: bool = True,
             fid_weights: str | os.PathLike | None = None, fid_cache_root: str | os.PathLike | None = None,
             fid_feature_extractor: str | None = None, best_worst: str | os.PathLike | None = None,
             best_worst_count: int = 4, progress: bool = True) -> dict[str, Any]:
    """Score `colorizer` on an image folder (or a dataset of {'rgb', 'index'} items).

    Returns {"metrics", "unavailable", "not_applicable", "count", "protocol", "model", "data", "per_image", ...}.
    A metric whose weights cannot be had is listed under "unavailable" with the reason and fix; the rest still run.
    With `model_size` the network sees each crop's L resized to model_size x model_size and its ab is upsampled to
    the crop, as `gan-color colorize` runs it (default: the crop itself; with `full_resolution`: `size`).
    `fid_feature_extractor` names another registered torch-fidelity extractor (tests use a stand-in). With
    `best_worst`, a PNG of the `best_worst_count` best and worst images (gray | output | truth) is written there.
    """
    device = resolve_device(str(device))
    colorizer = colorizer.to(device)
    model_size = model_size or (size if full_resolution else None)
    start = time.perf_counter()
    images = open_images(data, size=size, limit=limit, drop_grayscale=drop_grayscale, full_resolution=full_resolution)
    paths = getattr(images, "paths", None)
    real_key = None if paths is None else fid_lib.files_key(
        paths, root=getattr(images, "root", None), size=size, full_resolution=full_resolution)
    scored: list[int] = []  # indices of the images scored (an undecodable file is left out, never replaced)
    failed: list[tuple[str, str]] = []
    built, unavailable, not_applicable = setup_metrics(
        metrics, output=colorizer.spec.output, device=device, allow_download=allow_download,
        real=fid_lib.Uint8Images(ScoredImages(images, scored)), real_cache_name=real_key, weights_path=fid_weights,
        cache_root=fid_cache_root, feature_extractor=fid_feature_extractor, batch_size=1 if full_resolution else 32)
    try:
        rows = _score(colorizer, images, built, device=device, batch_size=1 if full_resolution else batch_size,
                      workers=workers, model_size=model_size, decode=decode,
                      temperature=temperature, progress=progress, failed=failed)
        scored.extend(row["index"] for row in rows)
        results = _results(built, unavailable)
        if best_worst is not None and rows:
            picks = best_and_worst(rows, best_worst_count)
            save_sheet(render_examples(colorizer, images, picks, device=device, model_size=model_size,
                                       decode=decode, temperature=temperature), best_worst)
    finally:
        for metric in built.values():
            metric.close()
    return {
        "metrics": results, "unavailable": unavailable, "not_applicable": not_applicable, "count": len(rows),
        "protocol": protocol(size=size, full_resolution=full_resolution, drop_grayscale=drop_grayscale, limit=limit,
                             model_size=model_size),
        "model": dataclasses.asdict(colorizer.spec), "decode": decode, "temperature": temperature,
        "data": describe_data(data, images, failed=failed, scored=len(rows)), "device": str(device),
        "seconds": round(time.perf_counter() - start, 2),
        "per_image": rows,
    }


def _score(colorizer: Colorizer, images: Dataset, metrics: dict[str, Metric], *, device: torch.device,
           batch_size: int, workers: int, model_size: int | None, decode: str | None, temperature: float | None,
           progress: bool, failed: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Run the model over `images` once, feeding every metric; returns one row per image. Files that cannot be
    decoded are warned about, appended to `failed` as (path, reason) and left out: each row is its own file's."""
    loader = DataLoader(OwnPixels(images), batch_size=batch_size, num_workers=workers, shuffle=False,
                        collate_fn=collate_own_pixels)
    bin_size = int(colorizer.spec.color.get("ab_bin_size", ab_grid.AB_BIN_SIZE))
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(images), desc="evaluate", unit="img", disable=not progress) as bar:
        for batch in loader:
            for index, reason in batch.pop("failed"):
                paths = getattr(images, "paths", None)
                name = str(paths[index]) if paths is not None else image_name(images, index)
                tqdm.write(f"warning: cannot decode {name} ({reason}); left out", file=sys.stderr)
                bar.update(1)
                if failed is not None:
                    failed.append((name, reason))
            if "rgb" not in batch:
                continue
            real_rgb = rgb_to_float(batch["rgb"].to(device))
            gray_l, real_ab = color.rgb_to_model_inputs(real_rgb)
            fake_ab, raw = colorizer.predict(gray_l, model_size=model_size, decode=decode, temperature=temperature)
            logits = raw if colorizer.spec.output == "ab_logits" else None
            scored = EvalBatch(fake_rgb=color.model_outputs_to_rgb(gray_l, fake_ab), real_rgb=real_rgb,
                               fake_ab=fake_ab, real_ab=real_ab, ab_logits=logits, ab_bin_size=bin_size)
            columns: dict[str, torch.Tensor] = {}
            for metric in metrics.values():
                columns.update(metric.update(scored))
            indices = batch["index"].tolist() if "index" in batch else range(len(rows), len(rows) + len(real_rgb))
            for i, index in enumerate(indices):
                rows.append({"index": index, "file": image_name(images, index),
                             **{key: float(values[i]) for key, values in columns.items()}})
            bar.update(len(real_rgb))
    return rows


def _results(metrics: dict[str, Metric], unavailable: dict[str, str]) -> dict[str, float]:
    results: dict[str, float] = {}
    for name, metric in metrics.items():
        try:
            results.update(metric.result())
        except MetricUnavailable as err:
            unavailable[name] = str(err)
    return results


# ----------------------------------------------------------------------------------------------------------------
# Reports


def best_and_worst(rows: list[dict[str, Any]], count: int) -> list[tuple[str, dict[str, Any]]]:
    """(caption, row) of the `count` best then `count` worst images by the first per-image column of RANKING."""
    key, higher_is_better = next(((k, h) for k, h in RANKING if k in rows[0]), ("index", False))
    order = sorted(rows, key=lambda row: row[key], reverse=higher_is_better)
    count = min(count, math.ceil(len(order) / 2))
    picks = [("best", i, row) for i, row in enumerate(order[:count])]
    picks += [("worst", i, row) for i, row in enumerate(order[::-1][:count]) if row not in order[:count]]
    return [(f"{kind} {i + 1}: {row['file']}  {key} {row[key]:.4g}", row) for kind, i, row in picks]


@torch.no_grad()
def render_examples(colorizer: Colorizer, images: Dataset, picks: list[tuple[str, dict[str, Any]]], *,
                    device: torch.device, model_size: int | None = None, decode: str | None = None,
                    temperature: float | None = None) -> Image.Image:
    """Sheet of gray | output | truth rows for the picked images (re-colorized: nothing was kept in memory)."""
    rows = []
    for _, row in picks:
        real_rgb = rgb_to_float(images[row["index"]]["rgb"][None].to(device))
        gray_l, _ = color.rgb_to_model_inputs(real_rgb)
        fake_ab, _ = colorizer.predict(gray_l, model_size=model_size, decode=decode, temperature=temperature)
        gray = color.model_outputs_to_rgb(gray_l, torch.zeros_like(fake_ab))
        rows.append([to_pil(t[0]) for t in (gray, color.model_outputs_to_rgb(gray_l, fake_ab), real_rgb)])
    return render_sheet(rows, columns=["gray input", "output", "ground truth"], captions=[c for c, _ in picks])


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: such numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def write_report(result: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """`metrics.json` (everything but the per-image rows) and `per_image.csv` in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in result.items() if key != "per_image"}
    summary["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    paths = {"metrics": out_dir / "metrics.json", "per_image": out_dir / "per_image.csv"}
    atomic_write_text(paths["metrics"], json.dumps(_finite(summary), indent=2) + "\n")
    rows = result["per_image"]
    columns = list(rows[0]) if rows else ["index", "file"]
    write_csv(paths["per_image"], rows, columns)  # file names defused: a name is never run as a formula
    return paths


def format_summary(result: dict[str, Any]) -> str:
    lines = [f"{result['count']} images, {result['protocol']['crop']}, {result['seconds']} s on {result['device']}"]
    if left_out_text(result.get("data", {})):
        lines.append(left_out_text(result["data"]))
    lines += [f"  {name:<22} {value:.4f}" for name, value in result["metrics"].items()]
    lines += [f"  {name:<22} unavailable: {reason}" for name, reason in result["unavailable"].items()]
    lines += [f"  {name:<22} not applicable: {reason}" for name, reason in result["not_applicable"].items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="run folder or export folder (generator.json + .safetensors)")
    parser.add_argument("--data", required=True, help="image folder to evaluate on (searched recursively)")
    parser.add_argument("--size", type=int, default=EVAL_SIZE, help="eval crop size (resize short side + centre crop)")
    parser.add_argument("--full-resolution", action="store_true",
                        help="score at each image's own size (the model sees a --size copy; ab is upsampled)")
    parser.add_argument("--model-size", metavar="N|train",
                        help="the network sees L resized to N x N and its ab is upsampled to the crop; 'train' = the "
                             "model's training size, as `gan-color colorize` runs it (default: the crop; with "
                             "--full-resolution: --size)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files (0 = all)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per model call")
    parser.add_argument("--device", default="auto", help="auto (GPU when present) | cpu | cuda | cuda:1 | mps")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="NAME",
                        help=f"metrics to compute (default: all of {', '.join(DEFAULT_METRICS)}; also lpips_vgg)")
    parser.add_argument("--out", help="output folder (default: <run>/eval/<dataset folder name>)")
    parser.add_argument("--keep-grayscale", action="store_true",
                        help="also score images without colour (left out by default, as in Zhang et al.)")
    parser.add_argument("--decode", choices=DECODE_METHODS, help="classifier decoding (default: the export's)")
    parser.add_argument("--temperature", type=float, help="annealed-mean temperature (default: the export's)")
    parser.add_argument("--fid-weights", help="local Inception weights file for FID (default: torch hub cache)")
    parser.add_argument("--fid-cache", help="folder for cached real-set FID statistics (default: torch-fidelity's)")
    parser.add_argument("--no-download", action="store_true", help="never download metric weights")
    parser.add_argument("--best-worst", type=int, default=4, help="images per side in best_worst.png (0 = none)")
    parser.add_argument("--wandb", action="store_true", help="log results and the per-image table to W&B")
    parser.add_argument("--wandb-project", help="W&B project when the run has no tracking.json (default gan-color)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)  # old name


MIN_SIZE = 16  # the smallest crop the generators' downsampling takes (the same bound as data.size)


def check_cli_numbers(args: argparse.Namespace) -> None:
    """Numbers out of range are a ValueError saying which option and what it accepts."""
    if args.size < MIN_SIZE:
        raise ValueError(f"--size must be at least {MIN_SIZE} px, got {args.size}")
    for option, value, low in (("--limit", args.limit, 0), ("--batch-size", args.batch_size, 1),
                               ("--workers", args.workers, 0), ("--best-worst", args.best_worst, 0)):
        if value < low:
            raise ValueError(f"{option} must be at least {low}, got {value}")


def model_size(option: str | None, colorizer: Colorizer) -> int | None:
    """--model-size as a number of pixels: N, 'train' (the export's training size) or None (not given)."""
    if option is None:
        return None
    if option == "train":
        return int(colorizer.spec.image_size)
    if not option.isdigit() or int(option) < MIN_SIZE:
        raise ValueError(f"--model-size must be a size of at least {MIN_SIZE} px or 'train', got {option!r}")
    return int(option)


def run_cli(args: argparse.Namespace) -> int:
    names = [name for item in args.metrics for name in item.split(",") if name]
    try:
        check_cli_numbers(args)
        for name in names:
            METRICS.get(name)
        export = find_export(args.model)
        colorizer = Colorizer.load(export, device=resolve_device(args.device))
        network_size = model_size(args.model_size, colorizer)
    except (KeyError, FileNotFoundError, ValueError) as err:
        print(f"error: {str(err).strip(chr(34))}", file=sys.stderr)
        return 2
    run_dir = export.parent if export.name == "export" else export
    out_dir = Path(args.out) if args.out else run_dir / "eval" / Path(args.data).resolve().name
    try:
        result = evaluate(
            colorizer, args.data, size=args.size, limit=args.limit, batch_size=args.batch_size, metrics=names,
            device=args.device, full_resolution=args.full_resolution, drop_grayscale=not args.keep_grayscale,
            workers=args.workers, model_size=network_size, decode=args.decode, temperature=args.temperature,
            allow_download=not args.no_download, fid_weights=args.fid_weights, fid_cache_root=args.fid_cache,
            best_worst=out_dir / "best_worst.png" if args.best_worst > 0 else None,
            best_worst_count=args.best_worst, progress=not args.no_progress)
    except ValueError as err:  # no images, unreadable folder
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["export"] = str(export.resolve())
    paths = write_report(result, out_dir)
    print(format_summary(result))
    print(f"wrote {paths['metrics']}, {paths['per_image'].name}" + (", best_worst.png" if args.best_worst else ""))
    if args.wandb:
        wandb_report.log_evaluation(run_dir, result, out_dir, project=args.wandb_project)
    print(f"next: evaluate other runs on the same folder, then `gan-color compare {run_dir} OTHER_RUN --out "
          f"comparison/`; or colorize photos: gan-color colorize --model {run_dir} PHOTOS --out colorized/")
    return 0
