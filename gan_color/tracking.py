"""Logging: `metrics.jsonl` always (main process), W&B and TensorBoard through Accelerate's trackers, optional."""

from __future__ import annotations

import importlib.util
import json
import secrets
import string
import sys
from pathlib import Path
from typing import Any

from gan_color.safeio import atomic_write_text
from gan_color.sheets import FONT_SIZE, PAD, label_font

TRACKING_FILE = "tracking.json"


class JsonlLogger:
    """Appends one JSON object per logged step to `metrics.jsonl`; on resume, drops lines past the resumed step."""

    def __init__(self, path: str | Path, *, resume_step: int = 0) -> None:
        self.path = Path(path)
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _step(line) <= resume_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def log(self, values: dict[str, Any], *, step: int) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")


def _step(line: str) -> float:
    try:
        return json.loads(line).get("step", float("inf"))
    except json.JSONDecodeError:  # a line cut by a crash mid-write
        return float("inf")


def requested_trackers(*, wandb: bool, tensorboard: bool) -> list[str]:
    """Accelerate `log_with` names; a clear error if a requested tracker's package is missing."""
    trackers = []
    for name, wanted, module in (("wandb", wandb, "wandb"), ("tensorboard", tensorboard, "tensorboard")):
        if wanted:
            if importlib.util.find_spec(module) is None:
                raise RuntimeError(f"tracking.{name}=true but the {module!r} package is not installed: "
                                   f"pip install {module} (or set tracking.{name}=false)")
            trackers.append(name)
    return trackers


def load_tracking(run_dir: Path) -> dict[str, Any]:
    """The run's tracking record; an unreadable one (emptied, cut) is reported in one line and ignored (the
    checkpoint's copy of the W&B run id still applies)."""
    path = run_dir / TRACKING_FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        print(f"warning: ignoring {path}: not valid JSON ({err}); it is rewritten now", file=sys.stderr)
        return {}
    return record if isinstance(record, dict) else {}


def new_wandb_id() -> str:
    """An 8-character W&B run id (same alphabet as W&B's own), chosen by us so a resumed run can reuse it."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def init_trackers(accelerator: Any, *, run_dir: Path, run_name: str, project: str, group: str, entity: str,
                  config: dict[str, Any], wandb_run_id: str | None) -> dict[str, Any]:
    """Start Accelerate's trackers; W&B resumes `wandb_run_id` when given. Returns the tracking record."""
    record: dict[str, Any] = {"project": project, "group": group, "run_name": run_name}
    init_kwargs: dict[str, Any] = {}
    if "wandb" in [str(getattr(t, "value", t)).lower() for t in accelerator.log_with]:
        wandb_run_id = wandb_run_id or (new_wandb_id() if accelerator.is_main_process else None)
        init_kwargs["wandb"] = {"name": run_name, "group": group or None, "id": wandb_run_id, "resume": "allow",
                                "dir": str(run_dir), "entity": entity or None, "job_type": "train"}
        record["wandb_run_id"] = wandb_run_id
    accelerator.init_trackers(project, config=flatten(config), init_kwargs=init_kwargs)
    if accelerator.is_main_process:
        atomic_write_text(run_dir / TRACKING_FILE, json.dumps(record, indent=2))
    return record


def log_images(accelerator: Any, tag: str, images: list[tuple[Any, str]], *, step: int, description: str = "") -> None:
    """Log captioned images (PIL) to every enabled tracker (main process only). W&B gets one panel of the images,
    each with its caption. TensorBoard has no captions: each image gets its caption drawn in a band above it (several
    are stacked in a column) and `description` goes into the card's metadata."""
    if not images or not accelerator.is_main_process:
        return
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            import wandb

            logged = [wandb.Image(image, caption=caption) for image, caption in images]
            tracker.tracker.log({tag: logged[0] if len(logged) == 1 else logged}, step=step)
        elif tracker.name == "tensorboard":
            _tensorboard_image(tracker.tracker, tag, images, step=step, description=description)


def _tensorboard_image(writer: Any, tag: str, images: list[tuple[Any, str]], *, step: int, description: str) -> None:
    import numpy as np
    from PIL import Image
    from torch.utils.tensorboard.summary import image as image_summary

    captioned = [captioned_image(image, caption) for image, caption in images]
    column = Image.new("RGB", (max(image.width for image in captioned),
                               sum(image.height for image in captioned) + 4 * (len(captioned) - 1)), (255, 255, 255))
    y = 0
    for image in captioned:
        column.paste(image, (0, y))
        y += image.height + 4
    summary = image_summary(tag, np.asarray(column), dataformats="HWC")
    # Shown on the card by TensorBoard's Python loader (the Rust data server drops it): the caption in the picture
    # is what every TensorBoard shows.
    summary.value[0].metadata.summary_description = description
    writer._get_file_writer().add_summary(summary, step)
    writer.flush()


def captioned_image(image: Any, caption: str, *, min_width: int = 240) -> Any:
    """`image` under a white band with `caption` wrapped to fit (the image is centred if the band is wider)."""
    from PIL import Image, ImageDraw

    if image.width < min_width // 2:  # small crops (tests, 32-64 px probes): enlarged, pixels kept
        factor = min_width // image.width
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    font, width = label_font(), max(image.width, min_width)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for word in caption.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width - 2 * PAD:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    band = len(lines) * (FONT_SIZE + 3) + 2 * PAD if lines else 0
    canvas = Image.new("RGB", (width, band + image.height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((PAD, PAD + i * (FONT_SIZE + 3)), line, fill=(20, 20, 20), font=font)
    canvas.paste(image.convert("RGB"), ((width - image.width) // 2, band))
    return canvas


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}; trackers (TensorBoard hparams) want flat scalars."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}.") if value else {name: "{}"})
        else:
            flat[name] = value
    return flat
