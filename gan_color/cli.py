"""The `gan-color` console script. Each subcommand lives in a module with `add_cli_arguments(parser)` and
`run_cli(args) -> int`, imported only when that subcommand runs so `gan-color --help` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    module: str
    summary: str  # one line in `gan-color --help`
    description: str  # the top of `gan-color COMMAND --help`
    example: str


SUBCOMMANDS: dict[str, Subcommand] = {
    "train": Subcommand(
        "gan_color.train", "train a colorization GAN or a baseline from a YAML config",
        "Train the model a YAML config describes (configs/): the pix2pix GAN or a regression/classification baseline. "
        "Everything goes to runs/<name>/: resolved config, metrics.jsonl, probe grids, checkpoints and the model "
        "export. Rerunning the same command resumes from the latest checkpoint. Any config value can be overridden "
        "as KEY=VALUE. `accelerate launch train_gan.py ...` runs the same on one GPU, many GPUs or CPU.",
        "gan-color train --config configs/quickstart.yaml optim.steps=200 tracking.tensorboard=true"),
    "prepare-data": Subcommand(
        "gan_color.data.cache", "resize an image folder once into a compact training cache",
        "Decode and resize every image of a folder once (short side + centre crop) into one file, so training reads "
        "small arrays instead of decoding large JPEGs every epoch. Unreadable files are skipped and listed.",
        "gan-color prepare-data /data/photos /data/photos-128 --size 128"),
    "evaluate": Subcommand(
        "gan_color.eval.evaluate", "score a trained model on a folder of colour photos (PSNR, SSIM, LPIPS, FID...)",
        "Colorize the gray version of every colour photo in a folder and score the result against the original under "
        "a fixed protocol (the same crops for every model). Writes metrics.json, per_image.csv and best_worst.png to "
        "<run>/eval/<folder name>/. Photos without colour are left out (and counted), as in Zhang et al.",
        "gan-color evaluate --model runs/quickstart --data /data/val --size 256"),
    "compare": Subcommand(
        "gan_color.eval.compare", "compare evaluated runs: table, plots, side-by-side sheet, W&B",
        "Put evaluated runs side by side: a metrics table (markdown + CSV, best values in bold), bar plots, training "
        "curves and one sheet of the same photos colorized by every model; --wandb publishes it all to W&B with a "
        "table row per photo.",
        "gan-color compare runs/quickstart runs/regression --out comparison/ --wandb"),
    "colorize": Subcommand(
        "gan_color.colorize", "colorize black-and-white photos of any size",
        "Colorize photos (files or folders, any size): the model runs at its training size and the colour is "
        "upsampled onto the full-resolution lightness. Output mirrors the input folders.",
        "gan-color colorize --model runs/quickstart old_photos/ --out colorized/"),
    "human-eval": Subcommand(
        "gan_color.eval.human_eval", "ask people which photo looks real: rater packages and their scores",
        "Export a blinded rater package (an HTML page of real-vs-colorized and model-vs-model trials) with a private "
        "answer key, then score the returned answers (fooling rates, preferences, bootstrap intervals).",
        "gan-color human-eval export --models runs/a runs/b --data /data/val --n 100 --out rating/\n"
        "  gan-color human-eval score --key rating/key.json --answers answers/*.csv"),
    "benchmark": Subcommand(
        "gan_color.tools.benchmark.command", "measure training, data-pipeline and colorize speed on this machine",
        "Time the training step of each model, the data pipeline and colorize on this machine and print a table "
        "(ratios measured in the same run). --quick takes a couple of minutes on a small CPU.",
        "gan-color benchmark --quick"),
    "results": Subcommand(
        "gan_color.tools.results.command", "the results table: the GAN and every baseline on one budget, scored",
        "Split an image folder (seeded, disjoint), train the GAN and every baseline for the same budget, score all of "
        "them and a gray reference on the held-out images with every metric, and write OUT/results.md (the table, "
        "sample sheets, plots; hand-written notes are kept) and OUT/results/results.json. Finished runs with the same "
        "settings are reused, interrupted ones resume.",
        "gan-color results --data /data/photos --out docs --steps 200 --models pix2pix_gan cnn_l2_lab"),
}

DESCRIPTION = """Train GANs that colorize photos (pix2pix: a ResNet generator against a PatchGAN), train baselines
with the same loop, score and compare them, and colorize your own photos.

First run (a small GAN on photos bundled with scikit-image, a few minutes on a CPU):
  accelerate launch -q --config_file configs/accelerate/cpu.yaml --num_cpu_threads_per_process 1 \\
      train_gan.py --config configs/quickstart.yaml"""

# What a command that succeeded should suggest next, for commands whose module does not print it itself.
NEXT_STEP: dict[str, Callable[[argparse.Namespace], str]] = {
    "prepare-data": lambda args: f"next: train on it: accelerate launch train_gan.py --config CONFIG "
                                 f"data.train={args.dst}",
    "benchmark": lambda args: "next: compare with the numbers recorded in docs/benchmarks.md",
}


# One wording for options several commands share, for any that a module left without help.
COMMON_HELP = {"--no-progress": "no progress bar", "--batch-size": "images per model call",
               "--device": "auto (GPU when present) | cpu | cuda | cuda:1 | mps"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and shows each option's default, unless it has none (None/False) or its
    help already says what happens by default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS or "default" in text
                or not action.option_strings or text == argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-color", description=DESCRIPTION, formatter_class=HelpFormatter,
                                     epilog="Run `gan-color COMMAND --help` for a command's options and an example.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=command.summary, add_help=False)
    return parser


def build_subparser(name: str) -> argparse.ArgumentParser:
    """The full parser of one subcommand (imports its module)."""
    command = SUBCOMMANDS[name]
    module = importlib.import_module(command.module)
    parser = argparse.ArgumentParser(prog=f"gan-color {name}", description=textwrap.fill(command.description, 100),
                                     epilog=f"example:\n  {command.example}", formatter_class=HelpFormatter)
    module.add_cli_arguments(parser)
    parsers = [parser]
    for action in parser._actions:  # nested parsers (human-eval export/score) get the same formatter and example
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.formatter_class = HelpFormatter
                sub.epilog = sub.epilog or f"example:\n  {command.example}"
                parsers.append(sub)
    for action in (action for p in parsers for action in p._actions):
        if action.help is None:
            action.help = next((COMMON_HELP[o] for o in action.option_strings if o in COMMON_HELP), None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv or ["--help"])  # prints help or a clear "invalid choice" error
        return 2
    args = build_subparser(argv[0]).parse_args(argv[1:])
    status = int(importlib.import_module(SUBCOMMANDS[argv[0]].module).run_cli(args) or 0)
    if status == 0 and argv[0] in NEXT_STEP:
        print(NEXT_STEP[argv[0]](args))
    return status


if __name__ == "__main__":
    sys.exit(main())
