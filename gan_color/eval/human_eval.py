"""Human evaluation: blinded rater packages for the real-vs-fake colorization "Turing test" (Zhang et al. 2016) and
pairwise model preference, and scoring of the returned answers with bootstrap confidence intervals."""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import logging
import math
import os
import random
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from gan_color import color
from gan_color.data import filters
from gan_color.data.images import DECODE_ERRORS, describe_error, list_images, load_rgb, thumbnail_of
from gan_color.data.transforms import eval_transform
from gan_color.devices import resolve_device
from gan_color.inference import Colorizer, find_export, load_spec
from gan_color.safeio import defuse_row

logger = logging.getLogger("gan_color.human_eval")

KEY_FORMAT = "gan-color-human-eval-key"
KEY_VERSION = 1
RATER_DIR, IMAGES_DIR, KEY_NAME = "rater", "images", "key.json"
TASKS = ("turing", "preference")
SIDES = ("left", "right")
QUESTIONS = {
    "turing": "One photo has its real colours, the other was colorized by a computer. Which one is the real photo?",
    "preference": "Both photos were colorized by a computer. Which one looks more natural?",
}
SHEET_COLUMNS = ("package", "trial", "question", "left_image", "right_image", "answer", "rater")
# Every file in a package gets this timestamp (zip entries and mtimes): write times would reveal generation order.
FIXED_TIME = (2000, 1, 1, 0, 0, 0)
FIXED_EPOCH = 946684800  # 2000-01-01T00:00:00Z


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


def _child(root: Path, name: str) -> Path:
    """root/name, refusing names that could leave `root` (separators, '..', hidden names)."""
    if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", os.sep)):
        raise ValueError(f"refusing to write {name!r}: not a plain file name")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"refusing to write {path}: outside {root}")
    return path


def _write(root: Path, name: str, data: bytes) -> Path:
    path = _child(root, name)
    path.write_bytes(data)
    os.utime(path, (FIXED_EPOCH, FIXED_EPOCH))
    return path


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG with no metadata chunks (no text, EXIF, time or ICC): IHDR, IDAT, IEND only."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def script_json(payload: Any) -> str:
    """JSON safe inside an HTML <script> element: '<', '>' and '&' escaped, so data can never close the element."""
    text = json.dumps(payload, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(payload: dict[str, Any], *, title: str, instructions: str) -> str:
    """The self-contained rater page: inline CSS/JS, images by relative name, answers saved as CSV (Blob download)."""
    template = Path(__file__).with_name("rater_page.html").read_text(encoding="utf-8")
    values = {"TITLE": html.escape(title), "INSTRUCTIONS": html.escape(instructions), "DATA": script_json(payload)}
    # one pass, so text substituted for one placeholder is never searched for another
    return re.sub(r"__(TITLE|INSTRUCTIONS|DATA)__", lambda match: values[match.group(1)], template)


def sheet_rows(package: str, trials: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [[package, t["id"], QUESTIONS[t["task"]], t["left"], t["right"], "", ""] for t in trials]


def csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([SHEET_COLUMNS, *map(defuse_row, rows)])  # ids only today; defused like every sheet we write
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    """The rater sheet as XLSX with an answer drop-down; zip entry times and document dates pinned (deterministic)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "trials"
    sheet.append(list(SHEET_COLUMNS))
    for row in rows:
        sheet.append(defuse_row(row))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column, width in zip("ABCDEFG", (14, 7, 60, 26, 26, 9, 16)):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    choice = DataValidation(type="list", formula1='"left,right"', allow_blank=True)
    sheet.add_data_validation(choice)
    choice.add(f"F2:F{len(rows) + 1}")
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _pin_zip(buffer.getvalue())


def _pin_zip(raw: bytes) -> bytes:
    """Rewrite a zip with fixed entry times and fixed created/modified dates in docProps/core.xml."""
    source, buffer = zipfile.ZipFile(io.BytesIO(raw)), io.BytesIO()
    stamp = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*FIXED_TIME).encode()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            target.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_TIME), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def default_instructions(tasks: Sequence[str], exposure_ms: int) -> str:
    text = "Each trial shows two versions of the same photo. Click the one you choose, or press the left/right arrow."
    if "turing" in tasks:
        text += " In 'real photo' trials one has its true colours and the other was colorized by a computer."
    if "preference" in tasks:
        text += " In 'more natural' trials both were colorized by a computer."
    if exposure_ms:
        text += f" Each pair is shown for {exposure_ms / 1000:g} s; go with your first impression."
    return text


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
    images_dir = rater / IMAGES_DIR
    images_dir.mkdir(parents=True)
    taken: set[str] = set()
    key_trials = []
    for number, trial in enumerate(trials, 1):  # written in (shuffled) trial order, so write order reveals nothing
        sides = {}
        for side, who in (("left", trial.left), ("right", trial.right)):
            name = _opaque_name(rng, taken)
            _write(images_dir, name, png_bytes(pictures[trial.image, who]))
            sides[side] = {"model": who, "image": f"{IMAGES_DIR}/{name}"}
        key_trials.append({"id": str(number), "task": trial.task, "source": crops[trial.image][0], **sides})
    tasks = sorted({t.task for t in trials}, key=TASKS.index)
    page_trials = [{"id": t["id"], "task": t["task"], "left": t["left"]["image"], "right": t["right"]["image"]}
                   for t in key_trials]
    rows = sheet_rows(package, page_trials)
    payload = {"package": package, "exposure_ms": exposure_ms, "questions": {t: QUESTIONS[t] for t in tasks},
               "trials": page_trials}
    page = render_page(payload, title=title, instructions=instructions or default_instructions(tasks, exposure_ms))
    _write(rater, "index.html", page.encode("utf-8"))
    _write(rater, "sheet.csv", csv_bytes(rows))
    _write(rater, "sheet.xlsx", xlsx_bytes(rows))
    _write(rater, "README.txt", README.encode("utf-8"))
    key = {"format": KEY_FORMAT, "version": KEY_VERSION, "package": package, "seed": seed, "size": size, "task": task,
           "data": str(data), "models": [{"name": m, "path": (model_paths or {}).get(m, "")} for m in models],
           "exposure_ms": exposure_ms, "trials": key_trials}
    _write(out, KEY_NAME, (json.dumps(key, indent=2) + "\n").encode("utf-8"))
    return key_path


README = """Colour photo study

Open index.html in a web browser (double-click it; no internet connection is needed). For each trial, click the
photo you choose, or press the left/right arrow key. Your answers are kept in the browser while you work; when you
are done, click "Download answers (CSV)" and send the downloaded file back.

Without a browser: fill in the "answer" column (left or right) and your name in the "rater" column of sheet.xlsx or
sheet.csv, and send that file back instead.
"""


class AnswersError(ValueError):
    """A malformed answers file; the message names the file and the row."""


@dataclass
class Answer:
    rater: str
    trial: str
    answer: str


def load_key(path: str | os.PathLike) -> dict[str, Any]:
    key = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        raise ValueError(f"{path}: not a gan-color human-eval key")
    if key.get("version") != KEY_VERSION:
        raise ValueError(f"{path}: key version {key.get('version')} is not supported (this gan-color reads 1)")
    problem = key_problem(key)
    if problem:
        raise ValueError(f"{path}: damaged answer key ({problem}); use the key.json that export wrote")
    return key


def key_problem(key: dict[str, Any]) -> str | None:
    """What is missing or malformed in a key (None when scoring can use it)."""
    if not isinstance(key.get("package"), str):
        return "no 'package'"
    models = key.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str)
                                               for m in models):
        return "'models' must be a list of {'name': ...}"
    trials = key.get("trials")
    if not isinstance(trials, list) or not trials:
        return "no 'trials'"
    names = {m["name"] for m in models}
    for number, trial in enumerate(trials, 1):
        if not isinstance(trial, dict) or not isinstance(trial.get("id"), str):
            return f"trial {number} has no 'id'"
        if trial.get("task") not in QUESTIONS:
            return f"trial {trial['id']}: task must be one of {sorted(QUESTIONS)}"
        for side in SIDES:
            entry = trial.get(side)
            if not isinstance(entry, dict) or "model" not in entry or entry["model"] not in names | {None}:
                return f"trial {trial['id']}: '{side}' must name one of the key's models (or null for the photo)"
    return None


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet may turn trial "7" into 7.0
    return "" if value is None else str(value).strip()


def table_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(row number as a spreadsheet shows it, {column: text}) for a CSV or XLSX answers file."""
    try:
        return _table_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile, KeyError) as err:
        kind = "XLSX" if path.suffix.lower() == ".xlsx" else "CSV"
        raise AnswersError(f"{path}: cannot read it as {kind}: {describe_error(err)}") from err


def _table_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        rows = [[_cell(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)]
        workbook.close()
        header, numbered = (rows[0] if rows else []), list(enumerate(rows[1:], 2))
    else:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
        header, numbered = (rows[0] if rows else []), list(enumerate(rows[1:], 2))
    header = [h.strip().lower() for h in header]
    missing = [c for c in ("trial", "answer") if c not in header]
    if missing:
        raise AnswersError(f"{path}: no {' or '.join(repr(c) for c in missing)} column in the header row {header}")
    return [(number, {h: _cell(v) for h, v in zip(header, row)}) for number, row in numbered]


def read_answers(paths: Sequence[str | os.PathLike], key: dict[str, Any]) -> tuple[list[Answer], int]:
    """Validated answers from rater files (the page's CSV download or a filled-in sheet), and how many were blank.
    The rater is the row's 'rater' value, else the file path."""
    trial_ids = {t["id"] for t in key["trials"]}
    answers, blank, seen = [], 0, {}
    for path in map(Path, paths):
        for number, row in table_rows(path):
            where = f"{path}, row {number}"
            trial, answer = row.get("trial", ""), row.get("answer", "").lower()
            if not any(row.values()):
                continue
            if row.get("package") and row["package"] != key["package"]:
                raise AnswersError(f"{where}: package {row['package']!r} is not this key's {key['package']!r}")
            if trial not in trial_ids:
                raise AnswersError(f"{where}: unknown trial {trial!r} (this key has trials 1..{len(trial_ids)})")
            if not answer:
                blank += 1
                continue
            if answer not in SIDES:
                raise AnswersError(f"{where}: answer must be 'left' or 'right', got {row.get('answer')!r}")
            rater = row.get("rater") or str(path)
            if (rater, trial) in seen:
                first = seen[rater, trial]
                raise AnswersError(f"{where}: rater {rater!r} answered trial {trial} twice (first in {first})")
            seen[rater, trial] = where
            answers.append(Answer(rater, trial, answer))
    if not answers:
        raise AnswersError(f"no answers in {', '.join(map(str, paths))}")
    return answers, blank


# Owen (2007)'s "pigeonhole" bootstrap for crossed designs (every rater x every trial): it counts both rater-to-rater
# and image-to-image variation; it is conservative, at most ~1.4x too wide when neither varies beyond coin-flip noise.
CI_METHOD = "two-way (pigeonhole) bootstrap: raters and trials resampled independently with replacement; percentile"


def outcomes(key: dict[str, Any], answers: Sequence[Answer]) -> dict[tuple[str, ...], list[tuple[str, str, float]]]:
    """Answers grouped as (rater, trial, value): ('turing', model) -> 1 when the fake was picked as the real photo;
    ('preference', a, b), a before b in the key's model order -> 1 when a's picture was picked."""
    trials = {t["id"]: t for t in key["trials"]}
    order = [m["name"] for m in key["models"]]
    groups: dict[tuple[str, ...], list[tuple[str, str, float]]] = {}
    for answer in answers:
        trial = trials[answer.trial]
        left, right = trial["left"]["model"], trial["right"]["model"]
        chosen = left if answer.answer == "left" else right
        if trial["task"] == "turing":
            group, value = ("turing", left or right), float(chosen is not None)
        else:
            first, second = sorted((left, right), key=order.index)
            group, value = ("preference", first, second), float(chosen == first)
        groups.setdefault(group, []).append((answer.rater, answer.trial, value))
    return groups


def bootstrap_rate(records: Sequence[tuple[str, str, float]], *, n_boot: int,
                   rng: np.random.Generator) -> dict[str, Any]:
    """Mean of (rater, trial, value) records with a two-way (raters x trials) bootstrap 95% percentile interval."""
    raters, trials = sorted({r for r, _, _ in records}), sorted({t for _, t, _ in records})
    rater_index, trial_index = {r: i for i, r in enumerate(raters)}, {t: i for i, t in enumerate(trials)}
    values, counts = np.zeros((len(raters), len(trials))), np.zeros((len(raters), len(trials)))
    for rater, trial, value in records:
        values[rater_index[rater], trial_index[trial]] += value
        counts[rater_index[rater], trial_index[trial]] += 1
    interval = [math.nan, math.nan]
    if n_boot > 0:
        rater_draws = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=n_boot)
        trial_draws = rng.multinomial(len(trials), np.full(len(trials), 1 / len(trials)), size=n_boot)
        hits = ((rater_draws @ values) * trial_draws).sum(1)
        total = ((rater_draws @ counts) * trial_draws).sum(1)
        interval = np.percentile(hits[total > 0] / total[total > 0], [2.5, 97.5]).tolist()
    return {"rate": float(values.sum() / counts.sum()), "ci95": interval, "raters": len(raters),
            "trials": len(trials), "answers": len(records)}


def score(key_path: str | os.PathLike, answer_paths: Sequence[str | os.PathLike], *, bootstrap: int = 2000,
          seed: int = 0) -> dict[str, Any]:
    """Fooling rate per model and pairwise preference from returned answers, with bootstrap 95% intervals."""
    key = load_key(key_path)
    answers, blank = read_answers(answer_paths, key)
    groups, rng = outcomes(key, answers), np.random.default_rng(seed)
    order = [m["name"] for m in key["models"]]
    turing = [{"model": m, **bootstrap_rate(groups["turing", m], n_boot=bootstrap, rng=rng)}
              for m in order if ("turing", m) in groups]
    preference = [{"model_a": a, "model_b": b, **bootstrap_rate(groups["preference", a, b], n_boot=bootstrap, rng=rng)}
                  for a, b in combinations(order, 2) if ("preference", a, b) in groups]
    return {"package": key["package"], "raters": len({a.rater for a in answers}), "answers": len(answers),
            "blank": blank, "bootstrap": bootstrap, "ci_method": CI_METHOD, "turing": turing, "preference": preference}


def format_table(results: dict[str, Any]) -> str:
    """Markdown tables of `score` results."""
    def pct(entry: dict[str, Any]) -> str:
        low, high = entry["ci95"]
        return f"{100 * entry['rate']:.1f}% | [{100 * low:.1f}, {100 * high:.1f}]"

    lines = [f"{results['answers']} answers from {results['raters']} rater(s), {results['blank']} blank; 95% CI: "
             f"raters x trials bootstrap, {results['bootstrap']} draws", ""]
    if results["turing"]:
        lines += ["Turing test (fooling rate: fake picked as real; 50% = indistinguishable)", "",
                  "| model | fooling rate | 95% CI | raters | trials | answers |", "|---|---|---|---|---|---|"]
        lines += [f"| {e['model']} | {pct(e)} | {e['raters']} | {e['trials']} | {e['answers']} |"
                  for e in results["turing"]]
        lines.append("")
    if results["preference"]:
        lines += ["Preference (how often model A's picture was picked as more natural over model B's)", "",
                  "| model A | model B | A preferred | 95% CI | raters | trials | answers |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {e['model_a']} | {e['model_b']} | {pct(e)} | {e['raters']} | {e['trials']} | {e['answers']} |"
                  for e in results["preference"]]
    return "\n".join(lines).rstrip() + "\n"


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
