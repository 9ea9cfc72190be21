"""`benchmark(settings)`: the selected sections in order, each failure recorded without losing the others, the result
written after every section."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from gan_color.devices import resolve_device
from gan_color.tools.benchmark.clock import environment, load_average
from gan_color.tools.benchmark.colorizing import run_colorize
from gan_color.tools.benchmark.loading import run_data, write_sample_jpegs
from gan_color.tools.benchmark.report import write_json
from gan_color.tools.benchmark.settings import SECTIONS, Budget, Row, Settings
from gan_color.tools.benchmark.steps import run_train


def benchmark(settings: Settings, *, log: Callable[[str], None] = print,
              json_path: str | Path | None = None) -> dict[str, Any]:
    """Run the selected sections in the order of `settings.only`; returns {"environment", "settings", "rows",
    "<section>": [rows...], "errors": {section: message}}. With `json_path` the result so far is written after every
    section (and when interrupted), so a failing or killed later section loses nothing measured before it."""
    device = resolve_device(settings.device)
    threads = torch.get_num_threads()
    # One thread on a CPU by default: the measured best on a small or shared CPU (docs/benchmarks.md), where torch's
    # default threads wait on each other and make the network look slower than everything around it.
    wanted = (1 if device.type == "cpu" else 0) if settings.threads < 0 else settings.threads
    if wanted:
        torch.set_num_threads(wanted)
    result: dict[str, Any] = {"environment": environment(device), "settings": _plain(asdict(settings)),
                              "complete": False, "errors": {}, "rows": []}
    start = time.perf_counter()

    def save(rows: list[Row]) -> None:
        result["environment"]["load_average_end"] = load_average()
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["rows"] = [asdict(row) for row in rows]
        for section in SECTIONS:
            result[section] = [asdict(row) for row in rows if row.section == section]
        if json_path:
            write_json(result, json_path)

    rows: list[Row] = []
    try:
        for section, section_rows, error in run_sections(settings, device, log):
            rows += section_rows
            if error:
                result["errors"][section] = error
            save(rows)
        result["complete"] = True
    except KeyboardInterrupt:
        result["errors"]["interrupted"] = "KeyboardInterrupt"
        raise
    finally:
        torch.set_num_threads(threads)
        save(rows)
    return result


def run_sections(settings: Settings, device: torch.device,
                 log: Callable[[str], None]) -> Iterator[tuple[str, list[Row], str]]:
    """Yields (section, rows, error message or '') per section, in the order of `settings.only`. A section that
    fails is reported and the next one still runs."""
    budget = Budget(settings.budget)
    with tempfile.TemporaryDirectory(prefix="gan-color-bench-") as tmp:
        workdir = Path(tmp)
        folder: Path | None = None
        for section in dict.fromkeys(settings.only):  # each once, in the given order
            log({"train": "training step", "variants": "variants of the GAN step", "data": "data pipeline",
                 "colorize": "colorize"}[section])
            try:
                if section in ("train", "variants"):
                    rows = run_train(settings, device, workdir / "runs", log, sections=(section,), budget=budget)
                else:
                    if folder is None:
                        folder = Path(settings.data) if settings.data else write_sample_jpegs(workdir / "jpegs",
                                                                                               settings.data_images)
                    run = run_data if section == "data" else run_colorize
                    rows = run(settings, device, folder, workdir, log, budget)
            except Exception as err:  # noqa: BLE001 - one failing section must not lose the others
                message = f"{type(err).__name__}: {err}"
                log(f"  {section} failed: {message}")
                yield section, [], message
                continue
            yield section, rows, ""


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
