"""The results table (docs/results.md): a fixed split of an image folder, the GAN and every baseline trained for the
same budget, all scored on the held-out images with every metric, plus image sheets. Run by scripts/make_results.py
or `gan-color results`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from gan_color.config import ConfigError
from gan_color.data import FolderDataset
from gan_color.devices import device_name, resolve_device
from gan_color.eval.evaluate import DEFAULT_METRICS
from gan_color.tools.configs import ENV_VAR
from gan_color.tools.results.models import MODELS, scored_models
from gan_color.tools.results.report import kept_notes, report, write_images
from gan_color.tools.results.scoring import evaluate_all
from gan_color.tools.results.split import HELDOUT, make_split
from gan_color.tools.results.training import train_all


def make_results(args: argparse.Namespace, command: str, log: Callable[[str], None] = print) -> Path:
    """Split, train, evaluate, draw and write `<out>/results.md`, `<out>/results/` (images, results.json)."""
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
    parser.add_argument("--data", required=True, help="image folder to split (e.g. ../shared/data/imagenet-1k-sample)")
    parser.add_argument("--out", default="docs", help="writes OUT/results.md and OUT/results/ (default: docs)")
    parser.add_argument("--work", default="runs/results", help="split, run folders, FID cache (default: runs/results)")
    parser.add_argument("--size", type=int, default=64, help="training (and, without --eval-size, evaluation) size")
    parser.add_argument("--eval-size", type=int, default=0, help="evaluation size in px (0 = --size)")
    parser.add_argument("--fid-size", type=int, default=0, help="also FID at this crop size (0 = only at eval size)")
    parser.add_argument("--fid-train-size", action="store_true",
                        help="with --fid-size, also that FID with each network run at its training size and its ab "
                             "upsampled to the crop, as `gan-color colorize` runs it")
    parser.add_argument("--score", nargs="*", default=[], metavar="NAME=MODEL",
                        help="also score models trained elsewhere (run folder, export or shipped model name)")
    parser.add_argument("--steps", type=int, default=200, help="optimisation steps per model (the shared budget)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step for every model")
    parser.add_argument("--train", type=int, default=900, help="training images in the split")
    parser.add_argument("--heldout", type=int, default=100, help="held-out (evaluation) images in the split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (training seeds are the configs')")
    parser.add_argument("--models", nargs="+", help=f"names ({', '.join(MODELS)}) or YAML configs (default: all)")
    parser.add_argument("--configs", metavar="DIR", help=f"the configs folder the model names are found in (default: "
                                                        f"${ENV_VAR}, else the configs installed with gan_color)")
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
    """scripts/make_results.py: parse `argv` and run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="make_results.py", description=__doc__.split("\n")[0])
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    if arguments_problem(args):
        parser.error(arguments_problem(args))
    return run(args, "python scripts/make_results.py " + " ".join(shlex.quote(a) for a in argv))


def run_cli(args: argparse.Namespace) -> int:
    """`gan-color results ...` (the command line it records is this process's, when it was started that way)."""
    if arguments_problem(args):
        print(f"error: {arguments_problem(args)}", file=sys.stderr)
        return 2
    given = sys.argv[2:] if sys.argv[1:2] == ["results"] else []
    return run(args, " ".join(["gan-color results", *map(shlex.quote, given)]))


def arguments_problem(args: argparse.Namespace) -> str:
    """What is wrong with the parsed arguments ('' when nothing)."""
    if min(args.size, args.steps, args.batch_size) < 1 or args.threads < 0 or args.workers < 0:
        return "--size, --steps and --batch-size must be >= 1; --threads and --workers >= 0"
    return ""


def run(args: argparse.Namespace, command: str) -> int:
    """`make_results` with the requested TORCH_HOME and CPU threads; 2 with a one-line error on bad input."""
    if args.torch_home:
        os.environ["TORCH_HOME"] = str(Path(args.torch_home).resolve())
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        path = make_results(args, command, log=lambda line: print(line, flush=True))
    except (ValueError, ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    print(f"wrote {path}")
    return 0
