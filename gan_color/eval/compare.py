"""`gan-color compare`: runs side by side from their `eval/<dataset>/metrics.json` and `metrics.jsonl`: a metrics
table (markdown + CSV, one row per run), bar plots of the main metrics, training curves, and one sheet of the same
inputs colorized by every model; optionally published to W&B as a run of its own."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gan_color import color
from gan_color.data.images import DECODE_ERRORS, describe_error, list_images, load_rgb
from gan_color.data.transforms import eval_transform
from gan_color.devices import resolve_device
from gan_color.eval import wandb_report
from gan_color.eval.evaluate import EVAL_SIZE
from gan_color.inference import Colorizer, find_export
from gan_color.metrics.ranking import metric_direction, sort_metric_keys
from gan_color.safeio import undefuse_cell, write_csv
from gan_color.sheets import render_sheet, save_sheet, to_pil

CURVE_KEYS = ("loss/G_L1", "loss/G_GAN", "loss/D_real", "loss/D_fake")


@dataclass
class RunRecord:
    """One run as compare sees it: its folder, evaluation summary (None if not evaluated) and logged steps."""

    name: str
    path: Path
    evaluation: dict[str, Any] | None = None
    eval_dir: Path | None = None
    curves: list[dict[str, Any]] = field(default_factory=list)


def run_folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {str(path)!r} does not exist")
    return path.parent if path.name == "export" else path


def eval_datasets(run_dir: Path) -> list[str]:
    root = run_dir / "eval"
    return sorted(p.parent.name for p in root.glob("*/metrics.json")) if root.is_dir() else []


def choose_dataset(run_dirs: list[Path], dataset: str | None) -> str | None:
    """`dataset`, or the one evaluation dataset all evaluated runs share; ValueError when that is ambiguous."""
    if dataset:
        return dataset
    evaluated = [set(eval_datasets(d)) for d in run_dirs if eval_datasets(d)]
    if not evaluated:
        return None
    common = set.intersection(*evaluated)
    if len(common) == 1:
        return common.pop()
    choices = sorted(common or set.union(*evaluated))
    raise ValueError(f"choose the evaluation to compare with --dataset (found {choices})")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash mid-write
            continue
    return rows


def load_runs(paths: list[str | os.PathLike], dataset: str | None = None) -> list[RunRecord]:
    run_dirs = [run_folder(p) for p in paths]
    dataset = choose_dataset(run_dirs, dataset)
    names = [d.name for d in run_dirs]
    records = []
    for run_dir in run_dirs:
        name = run_dir.name if names.count(run_dir.name) == 1 else f"{run_dir.parent.name}/{run_dir.name}"
        record = RunRecord(name=name, path=run_dir, curves=read_jsonl(run_dir / "metrics.jsonl"))
        eval_dir = run_dir / "eval" / dataset if dataset else None
        if eval_dir is not None and (eval_dir / "metrics.json").is_file():
            record.evaluation = json.loads((eval_dir / "metrics.json").read_text())
            record.eval_dir = eval_dir
        else:
            print(f"warning: {run_dir} has no evaluation{f' on {dataset!r}' if dataset else ''}; "
                  f"run `gan-color evaluate --model {run_dir} --data DIR` first", file=sys.stderr)
        records.append(record)
    return records


# ----------------------------------------------------------------------------------------------------------------
# Table and plots


def metrics_table(records: list[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per run: every metric any run reports (main metrics first), then image count and size."""
    keys: list[str] = []
    for record in records:
        keys += [key for key in (record.evaluation or {}).get("metrics", {}) if key not in keys]
    keys = sort_metric_keys(keys)
    rows = []
    for record in records:
        evaluation = record.evaluation or {}
        row = {"run": record.name, **{key: evaluation.get("metrics", {}).get(key) for key in keys}}
        row.update(images=evaluation.get("count"), eval_size=evaluation.get("protocol", {}).get("size"))
        rows.append(row)
    return ["run", *keys, "images", "eval_size"], rows


def _best(rows: list[dict[str, Any]], key: str) -> float | None:
    higher = metric_direction(key)
    values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
    if higher is None or len(values) < 2:
        return None
    return max(values) if higher else min(values)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_table(columns: list[str], rows: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """`comparison.csv` and `comparison.md` (best value per ranked metric in bold, arrows give the direction)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "comparison.csv", out_dir / "comparison.md"
    write_csv(csv_path, rows, columns)  # run names defused: a name is never run as a spreadsheet formula
    arrows = {True: " ↑", False: " ↓", None: ""}
    lines = ["| " + " | ".join(f"{c}{arrows[metric_direction(c)]}" for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    best = {column: _best(rows, column) for column in columns}
    for row in rows:
        cells = [f"**{_cell(row[c])}**" if best[c] is not None and row[c] == best[c] else _cell(row[c])
                 for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _grid(count: int, max_columns: int = 4) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    ncols = min(max_columns, count)
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat[:count])


def plot_metrics(columns: list[str], rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Bar plot, one panel per ranked metric that has values, one bar per run."""
    keys = [c for c in columns if metric_direction(c) is not None and any(row.get(c) is not None for row in rows)]
    if not keys:
        return None
    fig, axes = _grid(len(keys))
    names = [row["run"] for row in rows]
    for ax, key in zip(axes, keys):
        values = [row.get(key) if row.get(key) is not None else float("nan") for row in rows]
        bars = ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{key} ({'higher' if metric_direction(key) else 'lower'} is better)", fontsize=9)
        ax.margins(y=0.15)
    return _save_figure(fig, path)


def plot_curves(records: list[RunRecord], path: Path) -> Path | None:
    """Training curves from each run's metrics.jsonl: the GAN losses and any val/ metrics, one line per run."""
    present = {key for record in records for row in record.curves for key in row}
    keys = [k for k in CURVE_KEYS if k in present] + sorted(k for k in present if k.startswith("val/"))
    keys += sorted(k for k in present if k.startswith("loss/") and k not in keys)
    if not keys:
        return None
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes, keys):
        for i, record in enumerate(records):
            points = [(row["step"], row[key]) for row in record.curves if "step" in row and row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), color=f"C{i}", label=record.name, linewidth=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
    handles = {}  # one legend for every run, whichever panels it appears in
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[0].legend(list(handles.values()), list(handles), fontsize=8)
    return _save_figure(fig, path)


def _save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------------
# The same inputs across models


def sheet_inputs(records: list[RunRecord], data: str | os.PathLike | None, count: int) -> tuple[Path, list[str]]:
    """Image folder and `count` evenly spaced files: from `data`, else the folder and files the first evaluated run
    recorded (its per_image.csv), so every model sees the same crops."""
    evaluated = next((r for r in records if r.evaluation and r.evaluation.get("data", {}).get("root")), None)
    if data is None and evaluated is None:
        raise ValueError("no evaluation records its image folder; pass --data DIR for the image sheet")
    root = Path(data) if data is not None else Path(evaluated.evaluation["data"]["root"])
    files: list[str] = []
    if evaluated is not None and (evaluated.eval_dir / "per_image.csv").is_file():
        with (evaluated.eval_dir / "per_image.csv").open() as f:
            files = [undefuse_cell(row["file"]) for row in csv.DictReader(f)]
        files = [name for name in files if (root / name).is_file()]
    if not files:
        files = [p.relative_to(root).as_posix() for p in list_images(root)]
    if not files:
        raise ValueError(f"no images found under {str(root)!r}")
    count = min(count, len(files))
    picks = sorted({round(i * (len(files) - 1) / max(count - 1, 1)) for i in range(count)})
    return root, decodable_picks(root, files, picks)


def decodable_picks(root: Path, files: list[str], picks: list[int]) -> list[str]:
    """files[i] for each pick; one that cannot be decoded is left out with a warning and the next decodable file
    takes its place, so each row of the sheet shows and names its own file."""
    chosen: list[str] = []
    failed: set[str] = set()
    for pick in picks:
        for name in files[pick:] + files[:pick]:
            if name in chosen or name in failed:
                continue
            try:
                load_rgb(root / name)
            except DECODE_ERRORS as err:
                failed.add(name)
                print(f"warning: cannot decode {root / name} ({describe_error(err)}); left out", file=sys.stderr)
                continue
            chosen.append(name)
            break
    if not chosen:
        raise ValueError(f"none of the images under {str(root)!r} can be decoded")
    return chosen


def image_sheet(records: list[RunRecord], root: Path, files: list[str], *, size: int,
                device: str | torch.device = "auto", cell: int = 160) -> Image.Image:
    """Rows = inputs, columns = gray | one per model | ground truth (runs without an export are left out)."""
    titles, columns = colorize_inputs(records, root, files, size=size, device=device)
    rows = [[to_pil(column[i]) for column in columns] for i in range(len(files))]
    return render_sheet(rows, columns=titles, captions=files, cell=cell)


@torch.no_grad()
def colorize_inputs(records: list[RunRecord], root: Path, files: list[str], *, size: int,
                    device: str | torch.device = "auto") -> tuple[list[str], list[torch.Tensor]]:
    """Column titles and sRGB batches: gray input, one per model with an export, ground truth (eval crops)."""
    device = resolve_device(str(device))
    crop = eval_transform(size)
    real_rgb = torch.stack([crop(load_rgb(root / name, size)) for name in files]).to(device)
    gray_l, _ = color.rgb_to_model_inputs(real_rgb)
    columns = [color.model_outputs_to_rgb(gray_l, torch.zeros_like(gray_l).repeat(1, 2, 1, 1))]
    titles = ["gray input"]
    for record in records:
        try:
            colorizer = Colorizer.load(find_export(record.path), device=device)
        except (FileNotFoundError, ValueError) as err:  # no export, or a damaged one: the other columns still show
            print(f"warning: {record.name} left out of the image sheet: {err}", file=sys.stderr)
            continue
        fake_ab = colorizer(gray_l)
        columns.append(color.model_outputs_to_rgb(gray_l, fake_ab))
        titles.append(record.name)
    columns.append(real_rgb)
    titles.append("ground truth")
    return titles, columns


def per_image_metrics(record: RunRecord) -> dict[str, dict[str, float]]:
    """file -> the per-image metrics `evaluate` wrote for this run (empty without an evaluation)."""
    path = record.eval_dir / "per_image.csv" if record.eval_dir else None
    if path is None or not path.is_file():
        return {}
    with path.open() as f:
        return {undefuse_cell(row["file"]): {k: float(v) for k, v in row.items() if k not in ("index", "file") and v}
                for row in csv.DictReader(f)}


def comparison_examples(records: list[RunRecord], root: Path, files: list[str], *, size: int,
                        device: str | torch.device = "auto") -> dict[str, Any]:
    """The same held-out inputs colorized by every model, with each model's per-image metrics, for W&B's table:
    {"columns": image column titles, "rows": [{"file", "images": [PIL per column], "metrics": {run: {...}}}]}."""
    titles, columns = colorize_inputs(records, root, files, size=size, device=device)
    metrics = {record.name: per_image_metrics(record) for record in records if record.name in titles}
    rows = [{"file": name, "images": [to_pil(column[i]) for column in columns],
             "metrics": {run: values.get(name, {}) for run, values in metrics.items()}}
            for i, name in enumerate(files)]
    return {"columns": titles, "rows": rows}


# ----------------------------------------------------------------------------------------------------------------
# CLI


def compare(runs: list[str | os.PathLike], out_dir: str | os.PathLike, *, dataset: str | None = None,
            data: str | os.PathLike | None = None, size: int | None = None, num_images: int = 6,
            device: str = "auto", table_images: int = 0) -> dict[str, Any]:
    """Write the table, plots and image sheet for `runs` into `out_dir`; returns the rows and written paths. With
    `table_images`, also that many held-out inputs colorized by every model with per-image metrics ("examples")."""
    out_dir = Path(out_dir)
    records = load_runs(runs, dataset)
    columns, rows = metrics_table(records)
    csv_path, md_path = write_table(columns, rows, out_dir)
    images = {"metrics": plot_metrics(columns, rows, out_dir / "metrics.png"),
              "curves": plot_curves(records, out_dir / "training_curves.png")}
    if num_images > 0:
        root, files = sheet_inputs(records, data, num_images)
        size = size or next((r.evaluation["protocol"]["size"] for r in records if r.evaluation), EVAL_SIZE)
        images["sheet"] = save_sheet(image_sheet(records, root, files, size=size, device=device),
                                     out_dir / "sheet.png")
    examples = None
    if table_images > 0:
        root, files = sheet_inputs(records, data, table_images)
        size = size or next((r.evaluation["protocol"]["size"] for r in records if r.evaluation), EVAL_SIZE)
        examples = comparison_examples(records, root, files, size=size, device=device)
    return {"columns": columns, "rows": rows, "table": md_path, "csv": csv_path,
            "images": {name: path for name, path in images.items() if path is not None}, "examples": examples,
            "curves": {record.name: record.curves for record in records},
            "dataset": next((r.evaluation["data"]["name"] for r in records if r.evaluation), None)}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (evaluated with gan-color evaluate)")
    parser.add_argument("--out", default="comparison", help="output folder (default: ./comparison)")
    parser.add_argument("--dataset", help="which eval/<dataset> to compare (default: the one all runs share)")
    parser.add_argument("--data", help="image folder for the sheet (default: the one the evaluations recorded)")
    parser.add_argument("--size", type=int, help="sheet crop size (default: the evaluation's)")
    parser.add_argument("--num-images", type=int, default=6, help="inputs in the image sheet (0 = no sheet)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present) | cpu | cuda | cuda:1 | mps")
    parser.add_argument("--wandb", action="store_true",
                        help="publish the comparison as a W&B run (job_type=compare): a table with one row per "
                             "held-out image (every model's colorization and per-image metrics), a bar chart per "
                             "metric, training curves, the sheet")
    parser.add_argument("--wandb-images", type=int, default=32,
                        help="held-out images in the W&B table, evenly spaced over the evaluated files")
    parser.add_argument("--wandb-project", help="W&B project (default: gan-color)")
    parser.add_argument("--wandb-group", help="W&B group of the comparison run (default: compare-<dataset>)")


def run_cli(args: argparse.Namespace) -> int:
    try:
        result = compare(args.runs, args.out, dataset=args.dataset, data=args.data, size=args.size,
                         num_images=args.num_images, device=args.device,
                         table_images=args.wandb_images if args.wandb else 0)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result["table"].read_text(), end="")
    written = [result["table"], result["csv"], *result["images"].values()]
    print("wrote " + ", ".join(str(p) for p in written))
    if args.wandb:
        wandb_report.publish_comparison(result["rows"], result["images"], out_dir=args.out,
                                        project=args.wandb_project, group=args.wandb_group,
                                        examples=result["examples"], curves=result["curves"],
                                        dataset=result["dataset"])
    models = " ".join(str(run) for run in args.runs)
    look = result["images"].get("sheet") or result["table"]
    print(f"next: look at {look}; ask people which looks real: gan-color human-eval export "
          f"--models {models} --data DIR --n 100 --out rating/ (docs/human_eval.md)")
    return 0
