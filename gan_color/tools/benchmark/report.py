"""The benchmark's result as a plain-text table, as the Markdown table of docs/benchmarks.md, and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gan_color.safeio import atomic_write_text
from gan_color.tools.benchmark.settings import NOT_RUN, REFERENCE, Row


def format_table(rows: list[Row]) -> str:
    lines = [f"{'section':<9} {'case':<34} {'px':>4} {'batch':>5} {'images/s':>10} {'ratio':>7}  vs / note"]
    for row in rows:
        rate = "skipped" if row.images_per_sec is None else f"{row.images_per_sec:.2f}"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        tail = row.note if row.images_per_sec is None else row.baseline
        lines.append(f"{row.section:<9} {row.name:<34} {row.size:>4} {row.batch_size:>5} {rate:>10} {ratio:>7}  "
                     f"{tail}")
    return "\n".join(lines)


def markdown_tables(result: dict[str, Any]) -> str:
    """The variant rows of a result as the Markdown table of docs/benchmarks.md: one row per variant, one column
    per (size, batch), each cell images/s with the ratio to `reference` and to `fp32` of the same run."""
    rows = [Row(**row) for row in result.get("variants", [])]
    columns = sorted({(r.size, r.batch_size) for r in rows}, key=lambda c: (-c[0], -c[1]))
    if not columns:
        return "(no variant rows)"
    lines = ["| variant | " + " | ".join(f"{size} px, batch {batch}" for size, batch in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name in dict.fromkeys(r.name for r in rows):
        cells = []
        for size, batch in columns:
            row = next((r for r in rows if (r.name, r.size, r.batch_size) == (name, size, batch)), None)
            if row is None or row.images_per_sec is None:
                cells.append("not run" if row is not None and row.note == NOT_RUN else "-")
            elif name == REFERENCE:
                cells.append(f"**{row.images_per_sec:.3g}** img/s")
            else:
                vs_fp32 = row.extra.get("vs_fp32")
                cells.append(f"{row.images_per_sec:.3g} ({row.ratio:.2f}x" + (f", {vs_fp32:.2f}x fp32)"
                                                                            if name != "fp32" and vs_fp32 else ")"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    skipped = {r.name: r.note for r in rows if r.images_per_sec is None and r.note and r.note != NOT_RUN}
    lines += [""] + [f"- {name}: {note}" for name, note in skipped.items()]
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Atomically: a reader (or a kill mid-write) never sees half a file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
