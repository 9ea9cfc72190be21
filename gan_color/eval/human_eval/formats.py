"""The files of a rater package, byte for byte the same for the same arguments and seed: metadata-free PNGs, the
self-contained HTML page, the CSV and XLSX rater sheets, the README; every file timestamped FIXED_TIME."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gan_color.eval.human_eval.protocol import QUESTIONS, SHEET_COLUMNS
from gan_color.safeio import defuse_row

# Every file in a package gets this timestamp (zip entries and mtimes): write times would reveal generation order.
FIXED_TIME = (2000, 1, 1, 0, 0, 0)
FIXED_EPOCH = 946684800  # 2000-01-01T00:00:00Z


def _child(root: Path, name: str) -> Path:
    """root/name, refusing names that could leave `root` (separators, '..', hidden names)."""
    if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", os.sep)):
        raise ValueError(f"refusing to write {name!r}: not a plain file name")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"refusing to write {path}: outside {root}")
    return path


def write_file(root: Path, name: str, data: bytes) -> Path:
    """root/name with `data`, timestamped FIXED_EPOCH (a plain file name only, never outside `root`)."""
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


README = """Colour photo study

Open index.html in a web browser (double-click it; no internet connection is needed). For each trial, click the
photo you choose, or press the left/right arrow key. Your answers are kept in the browser while you work; when you
are done, click "Download answers (CSV)" and send the downloaded file back.

Without a browser: fill in the "answer" column (left or right) and your name in the "rater" column of sheet.xlsx or
sheet.csv, and send that file back instead.
"""


def write_rater_files(rater: Path, package: str, trials: Sequence[dict[str, Any]], *, tasks: Sequence[str],
                      title: str, instructions: str | None, exposure_ms: int) -> None:
    """The page, the two rater sheets and the README of a package whose `trials` ({'id', 'task', 'left', 'right'},
    sides as image paths) are already in `rater`."""
    rows = sheet_rows(package, trials)
    payload = {"package": package, "exposure_ms": exposure_ms, "questions": {t: QUESTIONS[t] for t in tasks},
               "trials": list(trials)}
    page = render_page(payload, title=title, instructions=instructions or default_instructions(tasks, exposure_ms))
    write_file(rater, "index.html", page.encode("utf-8"))
    write_file(rater, "sheet.csv", csv_bytes(rows))
    write_file(rater, "sheet.xlsx", xlsx_bytes(rows))
    write_file(rater, "README.txt", README.encode("utf-8"))


def default_instructions(tasks: Sequence[str], exposure_ms: int) -> str:
    text = "Each trial shows two versions of the same photo. Click the one you choose, or press the left/right arrow."
    if "turing" in tasks:
        text += " In 'real photo' trials one has its true colours and the other was colorized by a computer."
    if "preference" in tasks:
        text += " In 'more natural' trials both were colorized by a computer."
    if exposure_ms:
        text += f" Each pair is shown for {exposure_ms / 1000:g} s; go with your first impression."
    return text
