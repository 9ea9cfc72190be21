"""`human-eval score`: the returned answers (the page's CSV downloads or filled-in sheets) checked against the
answer key, then fooling rates and pairwise preferences with two-way bootstrap confidence intervals."""

from __future__ import annotations

import csv
import json
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from gan_color.data.images import describe_error
from gan_color.eval.human_eval.protocol import KEY_FORMAT, KEY_VERSION, QUESTIONS, SIDES


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
