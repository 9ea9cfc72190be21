"""`human-eval export`: a blinded rater package (photos drawn under the eval protocol, colorized by each model,
paired into trials under opaque names) and its private answer key."""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gan_color import color
from gan_color.data import filters
from gan_color.data.images import DECODE_ERRORS, describe_error, list_images, load_rgb, thumbnail_of
from gan_color.data.transforms import eval_transform
from gan_color.eval.human_eval.formats import png_bytes, write_file, write_rater_files
from gan_color.eval.human_eval.protocol import IMAGES_DIR, KEY_FORMAT, KEY_NAME, KEY_VERSION, RATER_DIR, SIDES, TASKS
from gan_color.inference import Colorizer, find_export, load_spec

logger = logging.getLogger("gan_color.human_eval")


@dataclass
class Trial:
    """One two-alternative forced choice; a side holds a model name, or None for the real photo."""

    task: str
    image: int
    left: str | None
    right: str | None


def select_images(data: str | os.PathLike, n: int, *, size: int, rng: random.Random) -> list[tuple[str, torch.Tensor]]:
    """`n` (relative path, sRGB [3, size, size]) pairs drawn by `rng` under the eval protocol (short side resized,
    centre crop). Unreadable and grayscale photos are passed over: a gray "real" photo makes the Turing trial moot."""
    data = Path(data)
    paths = list_images(data)
    rng.shuffle(paths)
    transform, chosen = eval_transform(size), []
    for path in paths:
        try:
            image = load_rgb(path, size)
        except DECODE_ERRORS as err:
            logger.warning("skipping unreadable image %s (%s)", path, describe_error(err))
            continue
        if filters.is_grayscale(filters.image_stats(thumbnail_of(image, filters.THUMBNAIL_SIDE))[0]):
            continue
        chosen.append((path.relative_to(data).as_posix(), transform(image)))
        if len(chosen) == n:
            return chosen
    raise ValueError(f"{data}: only {len(chosen)} readable colour images of the {n} asked for (of {len(paths)} files)")


def _balanced(options: Sequence[Any], count: int, rng: random.Random) -> list[Any]:
    """`count` items cycling over `options` (each used equally often, +-1), in random order."""
    items = [options[i % len(options)] for i in range(count)]
    rng.shuffle(items)
    return items


def plan_trials(n_images: int, models: Sequence[str], task: str, rng: random.Random) -> list[Trial]:
    """Each image appears in exactly one trial: a repeated picture would give the real one away (it is the one shown
    twice) and a picture seen in a preference trial is known to be fake. With task 'both' the images are split
    between the tasks. Models (or model pairs) are assigned round-robin in random order; within each model (pair)
    the real (first) side is left in half of its trials; trials are shuffled within each task block."""
    n_turing = {"turing": n_images, "preference": 0}.get(task, math.ceil(n_images / 2))
    trials: list[Trial] = []
    groups = [("turing", list(range(n_turing)), [(m,) for m in models]),
              ("preference", list(range(n_turing, n_images)), list(combinations(models, 2)))]
    for name, images, contestants in groups:
        if not images:
            continue
        assigned = _balanced(contestants, len(images), rng)
        sides = {c: _balanced(SIDES, assigned.count(c), rng) for c in contestants}
        block = []
        for image, pair in zip(images, assigned):
            first, second = (None, pair[0]) if name == "turing" else pair
            left_first = sides[pair].pop() == "left"
            block.append(Trial(name, image, *((first, second) if left_first else (second, first))))
        rng.shuffle(block)
        trials += block
    return trials


@torch.no_grad()
def colorize_crops(colorizer: Colorizer, crops: Sequence[torch.Tensor], *, batch_size: int = 16) -> list[np.ndarray]:
    """sRGB crops [3, S, S] -> uint8 [S, S, 3] colorized from their L by `colorizer`, run at the crop size."""
    device = next(iter(colorizer.parameters()), torch.empty(0)).device
    outputs = []
    for start in range(0, len(crops), batch_size):
        gray_l, _ = color.rgb_to_model_inputs(torch.stack(list(crops[start:start + batch_size])).to(device))
        outputs += [color.rgb_to_uint8_array(rgb) for rgb in colorizer.colorize_rgb(gray_l).cpu()]
    return outputs


def unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return result


def model_name(path: str | os.PathLike) -> str:
    """A model's label in the key: its training run's name, else its folder's name."""
    return load_spec(path).run or find_export(path).resolve().name


def _opaque_name(rng: random.Random, taken: set[str]) -> str:
    while (name := f"{rng.getrandbits(64):016x}.png") in taken:
        pass
    taken.add(name)
    return name


def _check_export(models: Sequence[str], n: int, size: int, task: str, exposure_ms: int) -> None:
    if task not in (*TASKS, "both"):
        raise ValueError(f"task must be one of {(*TASKS, 'both')}, got {task!r}")
    if not models:
        raise ValueError("give at least one model")
    if task != "turing" and len(models) < 2:
        raise ValueError(f"task {task!r} compares models: give two or more, or use task 'turing'")
    if n < (2 if task == "both" else 1):
        raise ValueError(f"n must be at least {2 if task == 'both' else 1} for task {task!r}, got {n}")
    if size < 1 or exposure_ms < 0:
        raise ValueError(f"size must be positive and exposure_ms non-negative, got {size} and {exposure_ms}")


def _render(trials: Sequence[Trial], crops: Sequence[tuple[str, torch.Tensor]], colorizers: dict[str, Colorizer],
            *, batch_size: int, progress: bool) -> dict[tuple[int, str | None], np.ndarray]:
    """(image, model or None for the real photo) -> uint8 picture, for every side of every trial."""
    needed: dict[str, list[int]] = {}
    pictures: dict[tuple[int, str | None], np.ndarray] = {}
    for trial in trials:
        for who in (trial.left, trial.right):
            if who is None:
                pictures[trial.image, None] = color.rgb_to_uint8_array(crops[trial.image][1])
            else:
                needed.setdefault(who, []).append(trial.image)
    for model in tqdm(sorted(needed), desc="colorize", unit="model", disable=not progress):
        fakes = colorize_crops(colorizers[model], [crops[i][1] for i in needed[model]], batch_size=batch_size)
        pictures.update(zip(((i, model) for i in needed[model]), fakes))
    return pictures


def _write_pictures(trials: Sequence[Trial], crops: Sequence[tuple[str, torch.Tensor]],
                    pictures: dict[tuple[int, str | None], np.ndarray], images_dir: Path,
                    rng: random.Random) -> list[dict[str, Any]]:
    """Both sides of every trial as PNGs under opaque names in `images_dir`; the key's trial entries."""
    images_dir.mkdir(parents=True)
    taken: set[str] = set()
    key_trials = []
    for number, trial in enumerate(trials, 1):  # written in (shuffled) trial order, so write order reveals nothing
        sides = {}
        for side, who in (("left", trial.left), ("right", trial.right)):
            name = _opaque_name(rng, taken)
            write_file(images_dir, name, png_bytes(pictures[trial.image, who]))
            sides[side] = {"model": who, "image": f"{IMAGES_DIR}/{name}"}
        key_trials.append({"id": str(number), "task": trial.task, "source": crops[trial.image][0], **sides})
    return key_trials


def export_package(
    colorizers: dict[str, Colorizer],
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    n: int,
    seed: int = 0,
    size: int = 256,
    task: str = "both",
    title: str = "Which photo? A colour study",
    instructions: str | None = None,
    exposure_ms: int = 0,
    batch_size: int = 16,
    model_paths: dict[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Write a blinded rater package: `out/rater/` (opaque PNGs, sheet.csv, sheet.xlsx, index.html, README.txt; share
    it as is) and the answer key `out/key.json` (keep it). Same arguments and seed -> byte-identical files."""
    models = list(colorizers)
    _check_export(models, n, size, task, exposure_ms)
    out = Path(out)
    rater, key_path = out / RATER_DIR, out / KEY_NAME
    if rater.exists() or key_path.exists():
        raise FileExistsError(f"{out} already holds a package; choose a new --out (stale images would leak)")
    rng = random.Random(seed)
    crops = select_images(data, n, size=size, rng=rng)
    package = f"{rng.getrandbits(48):012x}"
    trials = plan_trials(n, models, task, rng)
    pictures = _render(trials, crops, colorizers, batch_size=batch_size, progress=progress)
    key_trials = _write_pictures(trials, crops, pictures, rater / IMAGES_DIR, rng)
    page_trials = [{"id": t["id"], "task": t["task"], "left": t["left"]["image"], "right": t["right"]["image"]}
                   for t in key_trials]
    write_rater_files(rater, package, page_trials, tasks=sorted({t.task for t in trials}, key=TASKS.index),
                      title=title, instructions=instructions, exposure_ms=exposure_ms)
    key = {"format": KEY_FORMAT, "version": KEY_VERSION, "package": package, "seed": seed, "size": size, "task": task,
           "data": str(data), "models": [{"name": m, "path": (model_paths or {}).get(m, "")} for m in models],
           "exposure_ms": exposure_ms, "trials": key_trials}
    write_file(out, KEY_NAME, (json.dumps(key, indent=2) + "\n").encode("utf-8"))
    return key_path
