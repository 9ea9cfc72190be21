"""`gan-color` console script: one subcommand per job, each implemented by a module with
`add_cli_arguments(parser)` and `run_cli(args) -> int`, imported only when that subcommand runs."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help). Modules are imported lazily so `gan-color --help` is instant.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("gan_color.train", "train a GAN or baseline from a YAML config (same as train_gan.py)"),
    "prepare-data": ("gan_color.data.cache", "resize an image folder once into a compact training cache"),
    "evaluate": ("gan_color.eval.evaluate", "score an exported model on an image folder (PSNR, SSIM, LPIPS, FID...)"),
    "compare": ("gan_color.eval.compare", "compare runs side by side: table, plots, image sheet, W&B"),
    "colorize": ("gan_color.colorize", "colorize black-and-white photos of any size"),
    "human-eval": ("gan_color.eval.human_eval", "export blinded rater packages and score returned answers"),
    "benchmark": ("gan_color.benchmark", "measure training, data-pipeline and colorize throughput"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-color", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv or ["--help"])  # prints help or a clear "invalid choice" error
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    sub = argparse.ArgumentParser(prog=f"gan-color {argv[0]}", description=SUBCOMMANDS[argv[0]][1])
    module.add_cli_arguments(sub)
    return int(module.run_cli(sub.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
