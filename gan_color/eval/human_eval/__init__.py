"""`gan-color human-eval`: blinded rater packages for the real-vs-fake colorization "Turing test" (Zhang et al. 2016)
and pairwise model preference (`export`), and scoring of the returned answers with bootstrap confidence intervals
(`scoring`); `protocol` is what the two share, `formats` the package's files."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gan_color.devices import resolve_device
from gan_color.eval.human_eval.export import export_package, model_name, unique_names
from gan_color.eval.human_eval.protocol import RATER_DIR, TASKS
from gan_color.eval.human_eval.scoring import AnswersError, format_table, score
from gan_color.inference import Colorizer


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write a blinded rater package and its answer key")
    export.add_argument("--models", nargs="+", required=True, help="run or export folders")
    export.add_argument("--names", nargs="+", help="labels for the models in the key (default: their run names)")
    export.add_argument("--data", required=True, help="folder of colour photos (recursive)")
    export.add_argument("--n", type=int, required=True, help="number of photos; each is used in exactly one trial")
    export.add_argument("--out", required=True, help="new folder: OUT/rater/ is shared, OUT/key.json is kept")
    export.add_argument("--seed", type=int, default=0, help="seed of the photo choice, pairings and left/right order")
    export.add_argument("--size", type=int, default=256, help="eval protocol: short side resized, centre crop")
    export.add_argument("--task", choices=(*TASKS, "both"), default="both",
                        help="turing: real vs colorized (which is real?); preference: model vs model (which looks "
                             "more natural?); both: half of the photos each")
    export.add_argument("--title", default="Which photo? A colour study", help="title of the rater page")
    export.add_argument("--instructions", default=None, help="text shown above the trials (default: generic)")
    export.add_argument("--exposure-ms", type=int, default=0,
                        help="hide each pair after this many ms (Zhang et al. used 1000); 0 = no limit")
    export.add_argument("--device", default="auto", help="auto (GPU when present) | cpu | cuda | cuda:1 | mps")
    export.add_argument("--batch-size", type=int, default=16, help="images per model call")
    export.add_argument("--no-progress", action="store_true", help="no progress bar")
    scorer = actions.add_parser("score", help="fooling rates and preferences from returned answers")
    scorer.add_argument("--key", required=True, help="key.json written by export")
    scorer.add_argument("--answers", nargs="+", required=True, help="answer CSVs from the page, or filled sheets")
    scorer.add_argument("--out", default=None, help="folder for scores.json / scores.md (default: the key's)")
    scorer.add_argument("--bootstrap", type=int, default=2000, help="bootstrap draws (0 = no intervals)")
    scorer.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def run_cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run_export(args) if args.action == "export" else _run_score(args)
    except (AnswersError, FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run_export(args: argparse.Namespace) -> int:
    if args.names and len(args.names) != len(args.models):
        raise ValueError(f"--names gives {len(args.names)} labels for {len(args.models)} models")
    names = unique_names(args.names or [model_name(path) for path in args.models])
    device = resolve_device(args.device)
    colorizers = {name: Colorizer.load(path, device=device) for name, path in zip(names, args.models)}
    key = export_package(
        colorizers, args.data, args.out, n=args.n, seed=args.seed, size=args.size, task=args.task, title=args.title,
        instructions=args.instructions, exposure_ms=args.exposure_ms, batch_size=args.batch_size,
        model_paths={name: str(path) for name, path in zip(names, args.models)}, progress=not args.no_progress,
    )
    print(f"rater package: {key.parent / RATER_DIR}  (share this folder as is)\nanswer key:    {key}  (keep private)")
    print(f"next: raters open {key.parent / RATER_DIR}/index.html and send back their answer CSV; then: "
          f"gan-color human-eval score --key {key} --answers ANSWERS.csv ...")
    return 0


def _run_score(args: argparse.Namespace) -> int:
    results = score(args.key, args.answers, bootstrap=args.bootstrap, seed=args.seed)
    table = format_table(results)
    print(table, end="")
    out = Path(args.out) if args.out else Path(args.key).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "scores.md").write_text(table)
    print(f"wrote {out / 'scores.json'} and {out / 'scores.md'}")
    print("next: as more answers come back, rerun with all the answer files (scores are recomputed from scratch)")
    return 0
