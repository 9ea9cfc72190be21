"""Weights & Biases reporting for `evaluate` and `compare`: optional (import guarded), offline-friendly
(WANDB_MODE=offline), and never fatal: without wandb installed or logged in it warns and the files on disk remain.
`offline_*` read an offline run back (tests; a look before `wandb sync`)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from gan_color.metrics.ranking import metric_direction
from gan_color.tracking import load_tracking

DEFAULT_PROJECT = "gan-color"


def unavailable_reason() -> str | None:
    """Why W&B cannot be used here (package missing), or None."""
    if importlib.util.find_spec("wandb") is None:
        return "the 'wandb' package is not installed (pip install wandb)"
    return None


def _warn(message: str) -> None:
    print(f"warning: W&B logging skipped: {message}", file=sys.stderr)


def start_run(**init_kwargs: Any) -> Any | None:
    """`wandb.init(**init_kwargs)`, or None with a warning when W&B is missing, not logged in or unreachable."""
    reason = unavailable_reason()
    if reason:
        _warn(reason)
        return None
    import wandb

    init_kwargs.setdefault("dir", os.environ.get("WANDB_DIR"))
    try:
        return wandb.init(**init_kwargs)
    except Exception as err:  # noqa: BLE001 - login, network and permission errors must not lose an evaluation
        _warn(f"{type(err).__name__}: {err} (log in with `wandb login`, or set WANDB_MODE=offline and sync later)")
        return None


def _table(rows: list[dict[str, Any]]) -> Any:
    import wandb

    columns = list(rows[0]) if rows else []
    return wandb.Table(columns=columns, data=[[row.get(column) for column in columns] for row in rows])


def log_evaluation(run_dir: str | os.PathLike, result: dict[str, Any], out_dir: str | os.PathLike, *,
                   project: str | None = None) -> str | None:
    """Log an evaluation (metrics, per-image table, best/worst grid) under `eval/<dataset>/`. Resumes the training
    run recorded in `<run>/tracking.json` when there is one, else starts a job_type="eval" run grouped with the
    other evaluations on the same dataset (or in the run's tracking group).
    Returns the W&B run id, or None when W&B could not be used."""
    run_dir = Path(run_dir)
    tracking = load_tracking(run_dir)
    dataset = result["data"]["name"]
    if tracking.get("wandb_run_id"):
        kwargs = dict(project=tracking.get("project") or project or DEFAULT_PROJECT, id=tracking["wandb_run_id"],
                      resume="allow", group=tracking.get("group") or None)
    else:
        kwargs = dict(project=project or DEFAULT_PROJECT, job_type="eval", name=f"{run_dir.name}-eval-{dataset}",
                      group=tracking.get("group") or f"eval-{dataset}",
                      config={"model": result["model"], "protocol": result["protocol"], "data": result["data"]})
    run = start_run(dir=os.environ.get("WANDB_DIR") or str(run_dir), **kwargs)
    if run is None:
        return None
    import wandb

    try:
        prefix = f"eval/{dataset}"
        values = {f"{prefix}/{key}": value for key, value in result["metrics"].items()}
        payload: dict[str, Any] = {**values, f"{prefix}/per_image": _table(result["per_image"])}
        grid = Path(out_dir) / "best_worst.png"
        if grid.is_file():
            payload[f"{prefix}/best_worst"] = wandb.Image(str(grid))
        run.log(payload)
        run.summary.update(values)
        return run.id
    finally:
        run.finish()


def publish_comparison(rows: list[dict[str, Any]], images: dict[str, Path], *, out_dir: str | os.PathLike,
                       project: str | None = None, group: str | None = None,
                       examples: dict[str, Any] | None = None, curves: dict[str, list[dict[str, Any]]] | None = None,
                       dataset: str | None = None) -> str | None:
    """Publish a comparison as a W&B run of its own (job_type="compare", named after the runs, grouped by dataset):

    - `comparison/examples`: one row per held-out image, every model's colorization side by side (gray input |
      model... | ground truth) then each model's per-image metrics;
    - `comparison/table`: one row per run; `comparison/<metric>`: a bar chart per ranked metric;
    - `curves/<key>`: one line chart per training curve, a line per run; the metrics table figures and sheet.
    The run's summary holds `<run>/<metric>` for every value. Returns the W&B run id, or None without W&B."""
    names = [str(row.get("run")) for row in rows]
    where = f" on {dataset}" if dataset else ""
    run = start_run(project=project or DEFAULT_PROJECT, job_type="compare",
                    group=group or (f"compare-{dataset}" if dataset else "compare"),
                    name=("compare: " + " vs ".join(names))[:100] + where, config={"runs": names, "dataset": dataset},
                    dir=os.environ.get("WANDB_DIR") or str(out_dir))
    if run is None:
        return None
    import wandb

    try:
        payload: dict[str, Any] = {"comparison/table": _table(rows)}
        if examples and examples["rows"]:
            payload["comparison/examples"] = _examples_table(examples)
        payload.update(_metric_bars(rows))
        payload.update(_curve_lines(curves or {}))
        payload.update({f"comparison/{name}": wandb.Image(str(path)) for name, path in images.items()})
        run.log(payload)
        run.summary.update({f"{row['run']}/{key}": value for row in rows for key, value in row.items()
                            if key != "run" and isinstance(value, (int, float))})
        print(f"W&B: comparison run {run.name!r} ({run.id}) in project {run.project!r}"
              + (f": {run.url}" if getattr(run, "url", None) else f" (offline: wandb sync {Path(run.dir).parent})"))
        return run.id
    finally:
        run.finish()


def _examples_table(examples: dict[str, Any]) -> Any:
    """gray input | each model | ground truth, then `<run> <metric>` per per-image metric (the runs of one metric
    side by side), then values of the real image (`*_real`, the same for every run) once."""
    import wandb

    runs = list(examples["rows"][0]["metrics"])
    keys = sorted({key for row in examples["rows"] for values in row["metrics"].values() for key in values})
    metric_columns = [(run, key) for key in keys if not key.endswith("_real") for run in runs]
    real_keys = [key for key in keys if key.endswith("_real")]

    def real_value(row: dict[str, Any], key: str) -> Any:
        return next((values[key] for values in row["metrics"].values() if key in values), None)

    columns = ["file", *examples["columns"], *(f"{run} {key}" for run, key in metric_columns), *real_keys]
    data = [[row["file"], *(wandb.Image(image) for image in row["images"]),
             *(row["metrics"][run].get(key) for run, key in metric_columns),
             *(real_value(row, key) for key in real_keys)] for row in examples["rows"]]
    return wandb.Table(columns=columns, data=data)


def _metric_bars(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One bar chart per ranked metric (a bar per run), titled with its direction."""
    import wandb

    charts = {}
    for key in [k for k in (rows[0] if rows else {}) if metric_direction(k) is not None]:
        points = [[row["run"], row[key]] for row in rows if isinstance(row.get(key), (int, float))]
        if points:
            title = f"{key} ({'higher' if metric_direction(key) else 'lower'} is better)"
            table = wandb.Table(columns=["run", key], data=points)
            charts[f"comparison/{key}"] = wandb.plot.bar(table, "run", key, title=title)
    return charts


def _curve_lines(curves: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One line chart per training loss or val/ metric that any run logged, a line per run."""
    import wandb

    keys = sorted({key for points in curves.values() for row in points for key in row
                   if key.startswith(("loss/", "val/"))})
    charts = {}
    for key in keys:
        lines = {run: [(row["step"], row[key]) for row in points if "step" in row and row.get(key) is not None]
                 for run, points in curves.items()}
        lines = {run: line for run, line in lines.items() if line}
        if lines:
            xs = [[x for x, _ in line] for line in lines.values()]
            ys = [[y for _, y in line] for line in lines.values()]
            charts[f"curves/{key}"] = wandb.plot.line_series(xs=xs, ys=ys, keys=list(lines), title=key, xname="step")
    return charts


# ----------------------------------------------------------------------------------------------------------------
# Reading an offline run back (no W&B account, no network): tests, and looking before `wandb sync`


def offline_records(run_folder: str | os.PathLike) -> list[Any]:
    """Every record of an offline W&B run folder (`offline-run-*/run-<id>.wandb`: a LevelDB-style log of 32 KiB
    blocks of chunked protobuf records, after a 7-byte ':W&B' header)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = next(Path(run_folder).glob("run-*.wandb")).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{run_folder} does not hold a W&B run file")
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # a block's zero-filled tail
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: the record is complete
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def offline_history(run_folder: str | os.PathLike) -> dict[str, list[Any]]:
    """History key (nested keys joined by '/') -> every logged value (decoded JSON), in order."""
    import json

    history: dict[str, list[Any]] = {}
    for record in offline_records(run_folder):
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
    return history


def offline_table(run_folder: str | os.PathLike, key: str) -> tuple[dict[str, Any], dict[str, Path]]:
    """A table logged to an offline run as `wandb sync` will upload it. W&B keeps a run's tables (with their
    images) as `run_table` artifacts staged under $WANDB_DATA_DIR (default ~/.local/share/wandb), not in the run
    folder; returns the table's JSON and its files by their path in the artifact."""
    import json

    for record in offline_records(run_folder):
        if record.WhichOneof("record_type") == "artifact" and record.artifact.type == "run_table":
            files = {entry.path: Path(entry.local_path) for entry in record.artifact.manifest.contents}
            if f"{key}.table.json" in files:
                return json.loads(files[f"{key}.table.json"].read_text()), files
    raise KeyError(f"no table {key!r} in {run_folder}")


def offline_table_html(run_folder: str | os.PathLike, key: str, out: str | os.PathLike, *, rows: int = 8) -> Path:
    """A static HTML page of an offline run's table (its first `rows` rows, images inlined), labelled as such: offline
    W&B has no UI, so this is how to look at what `wandb sync` will upload."""
    import base64
    import html

    table, files = offline_table(run_folder, key)

    def cell(value: Any) -> str:
        if isinstance(value, dict) and value.get("_type") == "image-file":
            data = base64.b64encode(files[value["path"]].read_bytes()).decode()
            return f'<img src="data:image/png;base64,{data}" width="96">'
        return html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))

    shown = min(rows, len(table["data"]))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in table["data"][:rows])
    page = (f"<!doctype html><meta charset=utf-8><title>{html.escape(key)}</title><style>body{{font:13px sans-serif;"
            "margin:12px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px;text-align:center;"
            "max-width:110px;overflow-wrap:anywhere}.note{background:#fff3cd;padding:6px;margin-bottom:8px}</style>"
            f"<div class=note>Rendered from the offline W&amp;B run files ({html.escape(Path(run_folder).name)}, "
            f"table <code>{html.escape(key)}</code>, {len(table['data'])} rows, first {shown} shown)"
            " by gan_color.eval.wandb_report.offline_table_html: not a screenshot of the W&amp;B web UI, which shows"
            " the same table once the run is synced.</div>"
            f"<table><tr>{head}</tr>{body}</table>")
    out = Path(out)
    out.write_text(page)
    return out
