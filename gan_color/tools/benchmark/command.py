"""`gan-color benchmark`: its options, the settings they make, and the printed table."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from gan_color.tools.benchmark.report import format_table, markdown_tables
from gan_color.tools.benchmark.runner import benchmark
from gan_color.tools.benchmark.settings import DEFAULTS, GENERATORS, PRESETS, SECTIONS, Row, Settings
from gan_color.tools.configs import ENV_VAR, ConfigNotFoundError, config_files


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small run (< 2 min on 2 CPU cores): 64 px, ngf/ndf 16, 2 steps, 48 images")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="gpu: the GPU table of docs/benchmarks.md in under 8 minutes (variants at 64/128/256 "
                             "px, batch 16 and 1, paper widths, ResNet-9; then colorize and data at 128/256 px)")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sizes in px (default 64 128 256)")
    parser.add_argument("--steps", type=int, help="timed steps per case (default 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 2; compile needs >= 2)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds; the best is kept (default 2)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 8)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--ngf", type=int, help="shrink the generator (ngf) and baseline networks (width); "
                                                "default: the paper widths")
    parser.add_argument("--ndf", type=int, help="shrink the PatchGAN (ndf); default 64")
    parser.add_argument("--generators", nargs="+", choices=GENERATORS, help="GAN generators (default: both)")
    parser.add_argument("--baselines", nargs="*", metavar="YAML",
                        help="baseline configs to time (default: every baselines/*.yaml of the configs folder)")
    parser.add_argument("--configs", metavar="DIR", help=f"the configs folder (default: ${ENV_VAR}, else the configs "
                                                        "installed with gan_color)")
    parser.add_argument("--variant-size", type=int,
                        help="size of the variant comparison (default: the largest size on a GPU, smallest on CPU)")
    parser.add_argument("--variant-sizes", type=int, nargs="+",
                        help="several variant sizes (overrides --variant-size)")
    parser.add_argument("--variant-batch-sizes", type=int, nargs="+",
                        help="batch sizes of the variant comparison (default: --batch-size)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds after which no new case starts; the rest are recorded as not run (0 = none)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="measure torch.compile (auto: on GPUs only; its warm-up takes minutes on a CPU)")
    parser.add_argument("--data", help="image folder for the data and colorize sections "
                                       "(default: JPEGs cut from the photos bundled with scikit-image)")
    parser.add_argument("--data-images", type=int, help="images per data/colorize pass (default 256)")
    parser.add_argument("--workers", type=int, help="data loader processes (default: min(4, CPUs))")
    parser.add_argument("--threads", type=int, default=-1,
                        help="torch CPU threads (-1 = 1 on CPU, the measured best on a small or shared CPU; 0 = "
                             "torch's default, for a dedicated many-core machine)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="sections to run, in this order (default: all)")
    parser.add_argument("--json", help="write the results here (after every section, so nothing measured is lost)")
    parser.add_argument("--table", metavar="JSON", help="measure nothing: print the variants of an earlier --json "
                                                       "result as the Markdown table of docs/benchmarks.md")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The preset's values, overridden by the flags given; without --baselines (or a preset's list) every baseline
    config of the configs folder (a ConfigNotFoundError when there is none)."""
    preset = {**DEFAULTS, **PRESETS["quick" if args.quick else args.preset or "default"]}
    fallback = {"workers": min(4, os.cpu_count() or 1), "only": list(SECTIONS), "budget": 0.0,
                "variant_sizes": None, "variant_batch_sizes": None, "baselines": None}
    value = {}
    for key in [*preset, *fallback]:
        given = getattr(args, key, None)
        value[key] = given if given is not None else preset.get(key, fallback.get(key))
    if value["baselines"] is None:
        value["baselines"] = config_files("baselines", getattr(args, "configs", None))
    value["baselines"] = [Path(p) for p in value["baselines"]]
    return Settings(**value, device=args.device, variant_size=args.variant_size, compile=args.compile,
                    data=args.data, threads=args.threads)


def run_cli(args: argparse.Namespace) -> int:
    """Measure (or, with --table, print an earlier result's variants) and print the table; 2 on bad arguments, 1 when
    a section failed, 130 when interrupted."""
    if args.table:
        try:
            print(markdown_tables(json.loads(Path(args.table).read_text())))
        except (OSError, ValueError, TypeError) as err:
            print(f"error: cannot read {args.table}: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        settings = settings_from_args(args)
    except ConfigNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    problem = settings_problem(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    def interrupted(signum, frame):  # `timeout` / a scheduler's SIGTERM: keep the sections already measured
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = benchmark(settings, log=lambda line: print(line, flush=True), json_path=args.json)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{'; the sections finished are in ' + args.json if args.json else ''}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_result(result, args.json)
    return 1 if result["errors"] else 0


def settings_problem(settings: Settings) -> str:
    """What is wrong with `settings` ('' when nothing)."""
    bad = [name for name in ("steps", "repeats", "batch_size", "data_images") if getattr(settings, name) < 1]
    if bad or settings.warmup < 0 or settings.threads < -1 or any(s < 16 for s in settings.sizes):
        return (f"{', '.join(bad) or 'warmup/sizes'} out of range (steps, repeats, batch size, images >= 1; "
                "warmup >= 0, threads >= -1; sizes >= 16)")
    if settings.data and not Path(settings.data).is_dir():
        return f"--data {settings.data!r} is not a folder"
    return ""


def print_result(result: dict, json_path: str | None) -> None:
    print()
    print(format_table([Row(**row) for row in result["rows"]]))
    print(f"\n{result['environment']['device']} ({result['environment']['device_name']}), "
          f"{result['seconds']} s; ratios are against the row named on the right, measured in the same run")
    for section, message in result["errors"].items():
        print(f"error in {section}: {message}", file=sys.stderr)
    if json_path:
        print(f"wrote {json_path}")
