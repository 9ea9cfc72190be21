"""The results report: the sample sheets and plots of every model, the Markdown table, and docs/results.md filled in
from its template (gan_color/tools/templates/results.md) with the hand-written notes kept across regenerations."""

from __future__ import annotations

import importlib.resources
import string
from pathlib import Path
from typing import Any

import torch

from gan_color.eval import compare
from gan_color.metrics.ranking import metric_direction, sort_metric_keys
from gan_color.tools.results.models import ModelResult
from gan_color.tools.results.scoring import TRAIN_SIZE_SUFFIX
from gan_color.tools.results.split import HELDOUT

TEMPLATE = "templates/results.md"  # inside the gan_color.tools package
NOTES_BEGIN, NOTES_END = "<!-- notes: kept when this file is regenerated -->", "<!-- end of notes -->"
LABELS = {"psnr_rgb_uint8": "PSNR dB", "ssim_rgb_uint8": "SSIM", "lpips_alex": "LPIPS alex", "lpips_vgg": "LPIPS vgg",
          "auc_ab_0_150": "AuC", "delta_colorfulness": "Δ colourful.", "colorfulness": "colourful.",
          "bin_accuracy": "bin acc."}


def write_images(results: list[ModelResult], heldout: Path, images: Path, *, size: int, count: int, cell: int,
                 device: str) -> dict[str, Path]:
    """Sheets of the same held-out crops colorized by every model (JPEG, two of count/2 rows), metric bar plots and
    training curves, from `gan_color.eval.compare`."""
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
    """The metric columns of the table, in the one order of `gan_color.metrics.ranking`."""
    return sort_metric_keys(list(dict.fromkeys(k for r in results for k in r.metrics if k != "colorfulness_real")))


def header(key: str) -> str:
    """A metric's column header, with the arrow of the better direction."""
    count, _, at = key[3:].partition("_")
    at = at.replace(TRAIN_SIZE_SUFFIX, ", network at its training size")
    label = f"FID ({count} img{', ' + at if at else ''})" if key.startswith("fid") else LABELS.get(key, key)
    return label + {True: " ↑", False: " ↓", None: ""}[metric_direction(key)]


def table(results: list[ModelResult], reference: ModelResult) -> str:
    """Markdown: one row per model (best value per ranked metric in bold), then the gray reference in italics."""
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
    """docs/results.md: the template filled with `context` (the command, machine, split and budget), the table, the
    figures in `images` (relative to `out`) and the kept notes."""
    c = context
    keys = metric_columns([*results, reference])
    fid = next((k for k in keys if k.startswith("fid")), None)
    values = {**c, "eval_size": c.get("eval_size", c["size"]), "crops": c["steps"] * c["batch_size"],
              "epochs": f"{c['steps'] * c['batch_size'] / max(c['train_images'], 1):.1f}",
              "decay_steps": c["steps"] // 2, "model_count": len(results),
              "total_minutes": f"{sum(r.training.get('seconds', 0.0) for r in results) / 60:.0f}",
              "scored_elsewhere": "".join(f"\n- **{r.name}** was trained elsewhere with its own (larger) budget and "
                                          f"is only scored here: `{r.config}`, {r.description['objective']}."
                                          for r in results if r.scored_only),
              "metric_text": metric_text(keys, reference, fid), "table": table(results, reference),
              "figures": "".join(f"{line}\n" for line in figure_lines(images, out, [*results, reference])),
              "sem_text": sem_text(results), "notes_begin": NOTES_BEGIN, "notes_end": NOTES_END}
    template = importlib.resources.files("gan_color.tools").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return string.Template(template).substitute(values)


def figure_lines(images: dict[str, Path], out: Path, rows: list[ModelResult]) -> list[str]:
    """The report's lines between the table and the budget section: metrics not computed, sheets, plots."""
    rel = {k: p.relative_to(out).as_posix() for k, p in images.items()}
    lines = []
    missing = {name: why for r in rows for name, why in r.unavailable.items()}
    if missing:
        lines += ["Metrics not computed: " + "; ".join(f"{k}: {v}" for k, v in missing.items()), ""]
    if any(k.startswith("sheet") for k in rel):
        lines += ["## Held-out samples", "", "Rows: held-out crops (gray input | every model | ground truth), "
                  "the same crops for every model.", ""]
        lines += [f"![held-out samples]({p})" for k, p in rel.items() if k.startswith("sheet")] + [""]
    if "metrics" in rel or "curves" in rel:
        lines += ["## Plots", ""] + [f"![{k}]({p})" for k, p in rel.items() if k in ("metrics", "curves")] + [""]
    return lines


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
    if any(key.endswith(TRAIN_SIZE_SUFFIX) for key in keys):
        parts.append("*FID (..., network at its training size)* colorizes the same crops the way `gan-color "
                     "colorize` does: the network sees L resized to the size it trained at and its ab is upsampled "
                     "onto the crop's L; the column before it feeds the network the crop itself")
    return "; ".join(parts) + "."
