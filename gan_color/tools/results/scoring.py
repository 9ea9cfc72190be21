"""Scoring the results table's models with `gan_color.eval.evaluate.evaluate` on the held-out images, next to the gray
reference (ab = 0), with standard errors of the per-image scores and FID at a second size."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_color.eval.evaluate import evaluate, protocol, write_report
from gan_color.inference import Colorizer, ExportSpec
from gan_color.safeio import atomic_write_text, undefuse_cell
from gan_color.tools.results.models import ModelResult
from gan_color.tools.results.split import HELDOUT


class GrayReference(nn.Module):
    """ab = 0 everywhere: the gray input itself. Per-pixel metrics reward it (it is never far off); colour metrics
    do not. Every colorization should be read against it."""

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(gray_l).repeat(1, 2, 1, 1)


def evaluate_model(colorizer: Any, heldout: Path, out_dir: Path, *, size: int, metrics: list[str], device: str,
                   allow_download: bool, fid_cache: Path, best_worst: bool = True,
                   model_size: int | None = None) -> dict[str, Any]:
    """`gan-color evaluate` on the held-out folder; writes metrics.json / per_image.csv (and best_worst.png) and
    the key they were scored under. The same weights scored the same way on the same images again: the written
    scores are read back instead (a regeneration that adds one model scores only that one)."""
    key = score_key(colorizer, heldout, size=size, metrics=metrics, model_size=model_size)
    reused = saved_scores(out_dir, key)
    if reused is not None:
        return reused
    (out_dir / SCORE_KEY).unlink(missing_ok=True)  # a run killed while rewriting the scores leaves no stale key
    result = evaluate(colorizer, heldout, size=size, metrics=metrics, device=device, allow_download=allow_download,
                      fid_cache_root=fid_cache, best_worst=out_dir / "best_worst.png" if best_worst else None,
                      progress=False, workers=0, model_size=model_size)
    write_report(result, out_dir)
    if not result["unavailable"]:  # scores missing for want of weights are worth another try
        atomic_write_text(out_dir / SCORE_KEY, json.dumps(key, indent=1) + "\n")
    return result


SCORE_KEY = "score_key.json"


def score_key(colorizer: Any, heldout: Path, *, size: int, metrics: list[str], model_size: int | None) -> dict:
    """What a score depends on: the network's weights (SHA-256 of every tensor), its export spec, the held-out
    files (names and sizes), the crop and network sizes, the metrics and the metric packages' versions. (A change
    to gan_color's own metric code is not in it: delete the `score_key.json` files to score everything again.)"""
    weights = hashlib.sha256()
    for name, tensor in sorted(colorizer.network.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    files = hashlib.sha256()
    for path in sorted(p for p in Path(heldout).rglob("*") if p.is_file()):
        files.update(f"{path.relative_to(heldout).as_posix()}:{path.stat().st_size}\n".encode())
    return {"weights_sha256": weights.hexdigest(), "spec": json.loads(json.dumps(asdict(colorizer.spec))),
            "heldout_sha256": files.hexdigest(), "size": size, "model_size": model_size, "metrics": sorted(metrics),
            "versions": protocol(size=size, full_resolution=False, drop_grayscale=True, limit=0)["versions"]}


def saved_scores(out_dir: Path, key: dict) -> dict[str, Any] | None:
    """The result `evaluate_model` wrote in `out_dir` under the same `key` (metrics.json + per_image.csv), or None."""
    try:
        if json.loads((out_dir / SCORE_KEY).read_text()) != key:
            return None
        summary = json.loads((out_dir / "metrics.json").read_text())
        with (out_dir / "per_image.csv").open(newline="") as f:
            rows = [{k: undefuse_cell(v) if k == "file" else float(v) for k, v in row.items()}
                    for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return None
    for row in rows:
        row["index"] = int(row["index"])
    return {**summary, "per_image": rows}


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


def gray_reference(size: int) -> Colorizer:
    """The gray reference as a `Colorizer` at `size`, scored like every model."""
    return Colorizer(GrayReference(), ExportSpec(arch="gray_reference", kwargs={}, image_size=size, run="gray"))


TRAIN_SIZE_SUFFIX = "_trainsize"  # an FID key's suffix when the network ran at its training size


def fid_at(colorizer: Any, heldout: Path, args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    """FID at `--fid-size` (crops at that size, upsampled where the photos are smaller), keyed `fid<N>_<size>px`;
    with `--fid-train-size` also with the network run at its training size and its ab upsampled to the crop (how
    `gan-color colorize` runs it), keyed `fid<N>_<size>px_trainsize`."""
    scores = {}
    sizes = {"": None, TRAIN_SIZE_SUFFIX: int(colorizer.spec.image_size)} if args.fid_train_size else {"": None}
    for suffix, model_size in sizes.items():
        scored = evaluate_model(colorizer, heldout, run_dir / "eval" / f"{HELDOUT}_fid{args.fid_size}{suffix}",
                                size=args.fid_size, metrics=["fid"], device=args.device,
                                allow_download=not args.no_download, fid_cache=Path(args.work) / "fid_cache",
                                best_worst=False, model_size=model_size)
        scores.update({f"{k}_{args.fid_size}px{suffix}": v for k, v in scored["metrics"].items()
                       if k.startswith("fid")})
    return scores


def evaluate_all(args: argparse.Namespace, results: list[ModelResult], heldout: Path,
                 log: Callable[[str], None]) -> ModelResult:
    """Score every model and the gray reference on the held-out folder; returns the reference."""
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
