"""Weights & Biases reporting for `evaluate` and `compare`: optional (import guarded), offline-friendly
(WANDB_MODE=offline), and never fatal: without wandb installed or logged in it warns and the files on disk remain."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

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
                       project: str | None = None, group: str | None = None) -> str | None:
    """Publish a comparison (metrics table and its figures) as a W&B run of its own (job_type="compare")."""
    names = [str(row.get("run")) for row in rows]
    run = start_run(project=project or DEFAULT_PROJECT, job_type="compare", group=group or "compare",
                    name="compare-" + "-vs-".join(names)[:100], config={"runs": names},
                    dir=os.environ.get("WANDB_DIR") or str(out_dir))
    if run is None:
        return None
    import wandb

    try:
        payload: dict[str, Any] = {"comparison/table": _table(rows)}
        payload.update({f"comparison/{name}": wandb.Image(str(path)) for name, path in images.items()})
        run.log(payload)
        return run.id
    finally:
        run.finish()
