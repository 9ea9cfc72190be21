"""Safe writes: run-folder files replaced atomically (fsynced temporary file + rename + fsynced folder), and
spreadsheet cells defused so that a file or run name is never read as a formula by Excel, LibreOffice or Sheets."""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# A cell starting with one of these is a formula (or DDE call) in common spreadsheets; tab and CR move the cursor.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or new entry in folder `path` durable (a crash after the rename keeps it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace `path` with `data` so that a reader or a crash sees the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (checkpoint manifests, weight files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def defuse_cell(value: Any) -> Any:
    """A string that a spreadsheet would run as a formula, prefixed with an apostrophe (shown as text, OWASP's
    advice); numbers and other values unchanged. Negative numbers stay numbers: only strings are touched. A string
    that already starts with an apostrophe gets one more, so `undefuse_cell` gives back exactly the original."""
    if isinstance(value, str) and value.startswith((*FORMULA_START, "'")):
        return "'" + value
    return value


def undefuse_cell(value: str) -> str:
    """The original string of a cell written by `defuse_cell` (for reading our own CSVs back)."""
    return value[1:] if value.startswith("'") else value


def defuse_row(row: Mapping[str, Any] | Sequence[Any]) -> Any:
    if isinstance(row, Mapping):
        return {key: defuse_cell(value) for key, value in row.items()}
    return [defuse_cell(value) for value in row]


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """A CSV of dict rows with every string cell (and header) defused, written atomically."""
    import io

    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=[defuse_cell(c) for c in columns], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({defuse_cell(key): defuse_cell(value) for key, value in row.items()})
    return atomic_write_text(path, buffer.getvalue())
