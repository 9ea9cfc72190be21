"""`gan-color colorize`: colorize photos of any size, mode and aspect with an exported model. The model sees a resized
copy; its ab is upsampled onto the input's full-resolution L, so outputs keep the input's size, lightness and alpha."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from gan_color import color
from gan_color.data.images import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    default_workers,
    describe_error,
    list_images,
    ordered_map,
)
from gan_color.inference import DECODE_METHODS, Colorizer

logger = logging.getLogger("gan_color.colorize")

# Output suffix -> Pillow format. Inputs in other formats (e.g. .gif given explicitly) are written as PNG.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF"}
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF", "BMP")


@dataclass
class GrayImage:
    """An input reduced to what colorization uses: CIE L [1, H, W] in [0, 100] at full precision (16-bit inputs keep
    their 16 bits) and the alpha channel (uint8 [H, W]) to carry through, if any."""

    lightness: torch.Tensor
    alpha: np.ndarray | None = None


@dataclass
class ColorizeReport:
    """What `colorize_paths` did: (input, output) pairs written, (input, reason) pairs that failed, and warnings."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"colorized {len(self.written)} image(s), {len(self.failed)} failed"]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU when present, else Apple MPS, else CPU; anything else is passed to torch."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _gray_values(image: Image.Image) -> np.ndarray:
    """A single-channel image's values as float32 in [0, 1] by its nominal range (16-bit stays 16-bit precise)."""
    array = np.asarray(image).astype(np.float32)
    if image.mode.startswith("I;16"):
        return array / 65535.0
    peak = float(array.max()) if array.size else 0.0
    if image.mode == "F" and peak <= 1.0:
        return np.clip(array, 0.0, 1.0)
    if image.mode in ("I", "F") and peak > 255.0:
        return np.clip(array / 65535.0, 0.0, 1.0)  # 'I' from a 16-bit source (older Pillow opens 16-bit PNG as 'I')
    return array / 255.0


def to_gray(image: Image.Image) -> GrayImage:
    """Upright (EXIF) Pillow image of any mode -> `GrayImage`. Colour inputs give their CIE L, as in training."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P" or "transparency" in image.info:
        # palette / colour-key transparency -> a real alpha channel; palettes may hold colours, so go through RGB
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    alpha = None
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        alpha = np.asarray(image.getchannel("A")).copy()
        image = image.convert("L") if image.mode in ("LA", "La") else image.convert("RGB")
    if image.mode in ("1", "L", "I", "F") or image.mode.startswith("I;16"):
        gray = torch.from_numpy(_gray_values(image.convert("L") if image.mode == "1" else image))
        rgb = gray.expand(3, *gray.shape)
    else:
        rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)  # uint8: rgb_to_lab scales it
    lightness = color.rgb_to_lab(rgb.unsqueeze(0))[0, :1]
    return GrayImage(lightness=lightness, alpha=alpha)


def load_gray(path: str | os.PathLike) -> GrayImage:
    with Image.open(path) as image:
        image.load()
        return to_gray(image)


@torch.no_grad()
def colorize_gray(colorizer: Colorizer, images: Sequence[GrayImage], *, size: int | None = None,
                  decode: str | None = None, temperature: float | None = None) -> list[torch.Tensor]:
    """Colorize a batch of any-size images: each is resized (whole, to size x size) for the model in one batch, and
    the predicted ab is bilinearly upsampled back onto its own full-resolution L. Returns sRGB [3, H, W] in [0, 1]."""
    size = size or colorizer.spec.image_size
    device = next(iter(colorizer.parameters()), torch.empty(0)).device
    small = torch.cat([
        F.interpolate(image.lightness[None].to(device), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False)
        for image in images
    ])
    fake_ab = colorizer(color.normalize_l(small), decode=decode, temperature=temperature)
    outputs = []
    for image, ab in zip(images, fake_ab):
        lightness = image.lightness[None].to(device)
        ab = F.interpolate(ab[None], size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        outputs.append(color.lab_to_rgb_in_gamut(lightness, color.denormalize_ab(ab))[0].cpu())
    return outputs


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """sRGB [3, H, W], float in [0, 1] or already uint8 (as dataset items are) -> uint8 [H, W, 3]."""
    return color.rgb_to_uint8(rgb).cpu().permute(1, 2, 0).numpy()


def gray_rgb(image: GrayImage) -> torch.Tensor:
    """The input as the model saw it (its L with no colour), for side-by-side pairs."""
    lab = torch.cat([image.lightness, torch.zeros(2, *image.lightness.shape[1:])])
    return color.lab_to_rgb(lab[None])[0]


def find_inputs(
    inputs: Sequence[str | os.PathLike], out_dir: Path
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(file, path relative to the inputs' common folder) for every input file and every image under input folders
    (recursive, skipping anything inside `out_dir`), plus (input, reason) for inputs that do not exist."""
    out_resolved = out_dir.resolve()
    files, missing, seen = [], [], set()
    for raw in inputs:
        path = Path(os.path.abspath(raw))  # absolute but not resolved: keep symlinked names in the mirror
        if path.is_dir():
            found = [p for p in list_images(path) if not p.resolve().is_relative_to(out_resolved)]
            files += [(p, path) for p in found]
        elif path.is_file():
            files.append((path, path.parent))
        else:
            missing.append((Path(raw), "no such file or folder"))
    root = Path(os.path.commonpath([base for _, base in files])) if files else Path(".")
    unique = []
    for path, _ in files:
        if path.resolve() not in seen:  # a file given both directly and through its folder is done once
            seen.add(path.resolve())
            unique.append((path, path.relative_to(root)))
    return unique, missing


def plan_outputs(files: Sequence[tuple[Path, Path]], out_dir: Path,
                 image_format: str | None) -> Iterator[tuple[Path, Path | None, str]]:
    """(input, output, reason) per input: outputs mirror the relative paths under `out_dir`; an output that would
    replace an input or land outside `out_dir` gets None and the reason. Name clashes created by a changed suffix
    (a.jpg and a.png -> a.png) keep the old suffix in the name (a_jpg.png)."""
    out_resolved, inputs = out_dir.resolve(), {path.resolve() for path, _ in files}
    taken: set[str] = set()
    for path, rel in files:
        suffix = "." + image_format.lower().lstrip(".") if image_format else rel.suffix
        suffix = suffix if suffix.lower() in FORMATS else ".png"
        target, counter = rel.with_suffix(suffix), 1
        while target.as_posix().lower() in taken:
            counter += 1
            tag = rel.suffix.lstrip(".") + (str(counter) if counter > 2 else "")
            target = rel.with_name(f"{rel.stem}_{tag}{suffix}")
        taken.add(target.as_posix().lower())  # lower(): outputs must not clash on case-insensitive file systems
        output = out_dir / target
        if not output.resolve().is_relative_to(out_resolved):
            yield path, None, f"output {output} would be outside {out_dir}"
        elif output.resolve() in inputs:
            yield path, None, f"output {output} would overwrite an input"
        else:
            yield path, output, ""


def save_image(rgb: np.ndarray, alpha: np.ndarray | None, path: Path, *, quality: int = 95) -> str:
    """Write uint8 RGB (+ alpha) in the format of `path`'s suffix, atomically; returns a warning or ''."""
    image_format, warning = FORMATS[path.suffix.lower()], ""
    if alpha is not None and image_format not in ALPHA_FORMATS:
        warning = f"{path}: {image_format} cannot store alpha; the alpha channel was dropped (use --format png)"
        alpha = None
    array = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2)
    options = {"quality": quality} if image_format in ("JPEG", "WEBP") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format=image_format, **options)
    os.replace(tmp, path)  # never leave a half-written output behind
    return warning


def _batched(items: Iterator, n: int) -> Iterator[list]:
    while chunk := list(islice(items, n)):
        yield chunk


def colorize_paths(
    colorizer: Colorizer,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    size: int | None = None,
    batch_size: int = 8,
    image_format: str | None = None,
    side_by_side: bool = False,
    decode: str | None = None,
    temperature: float | None = None,
    quality: int = 95,
    workers: int = 0,
    progress: bool = True,
) -> ColorizeReport:
    """Colorize files and folders (recursive) into `out_dir`, mirroring relative paths. Bad files are logged and
    listed in the report's `failed`; the rest are written. `side_by_side` writes [input | output] pairs instead."""
    out_dir = Path(out_dir)
    report = ColorizeReport()
    files, report.failed = find_inputs(inputs, out_dir)
    jobs = []
    for path, output, reason in plan_outputs(files, out_dir, image_format):
        (jobs.append((path, output)) if output else report.failed.append((path, reason)))

    def load(job: tuple[Path, Path]) -> tuple[Path, Path, GrayImage | str]:
        try:
            return job[0], job[1], load_gray(job[0])
        except DECODE_ERRORS as err:
            return job[0], job[1], describe_error(err)

    # Decode on threads with at most two batches in flight: full-resolution photos are large.
    loaded = ordered_map(load, jobs, workers or default_workers(), window=2 * batch_size)
    with tqdm(total=len(jobs), desc="colorize", unit="img", disable=not progress) as bar:
        for chunk in _batched(loaded, batch_size):
            for path, _, image in chunk:
                if isinstance(image, str):
                    report.failed.append((path, image))
            good = [(path, output, image) for path, output, image in chunk if not isinstance(image, str)]
            rgbs = colorize_gray(colorizer, [image for *_, image in good], size=size, decode=decode,
                                 temperature=temperature) if good else []
            for (path, output, image), rgb in zip(good, rgbs):
                _write_one(report, path, output, image, rgb, side_by_side=side_by_side, quality=quality)
            bar.update(len(chunk))
    for path, reason in report.failed:
        logger.warning("skipped %s: %s", path, reason)
    return report


def _write_one(report: ColorizeReport, path: Path, output: Path, image: GrayImage, rgb: torch.Tensor, *,
               side_by_side: bool, quality: int) -> None:
    array, alpha = to_uint8(rgb), image.alpha
    if side_by_side:
        array = np.concatenate([to_uint8(gray_rgb(image)), array], axis=1)
        alpha = None if alpha is None else np.concatenate([alpha, alpha], axis=1)
    try:
        warning = save_image(array, alpha, output, quality=quality)
    except (OSError, ValueError) as err:
        report.failed.append((path, f"cannot write {output}: {describe_error(err)}"))
        return
    if warning:
        logger.warning(warning)
        report.warnings.append(warning)
    report.written.append((path, output))


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="run folder or export folder (generator.json + .safetensors)")
    parser.add_argument("inputs", nargs="+", help=f"image files or folders (recursive: {', '.join(IMAGE_EXTENSIONS)})")
    parser.add_argument("--out", required=True, help="output folder; mirrors the inputs' relative paths")
    parser.add_argument("--size", type=int, default=None,
                        help="side of the square the model runs at (default: the model's training size)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, mps")
    parser.add_argument("--format", dest="image_format", choices=sorted({s.lstrip(".") for s in FORMATS}),
                        help="output format (default: the input's; JPEG drops alpha with a warning)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality")
    parser.add_argument("--side-by-side", action="store_true", help="write [input | output] pairs")
    parser.add_argument("--decode", choices=DECODE_METHODS, default=None,
                        help="classification models: how ab is read from the bin distribution (default: the export's)")
    parser.add_argument("--temperature", type=float, default=None, help="annealed-mean temperature (Zhang et al.)")
    parser.add_argument("--workers", type=int, default=0, help="image decoding threads (0 = automatic)")
    parser.add_argument("--no-progress", action="store_true")


def run_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when every input was colorized, 1 when any failed (or none was found), 2 on a bad model/args."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.batch_size < 1 or (args.size is not None and args.size < 1):
        print("error: --batch-size and --size must be positive", file=sys.stderr)
        return 2
    try:
        colorizer = Colorizer.load(args.model, device=resolve_device(args.device))
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: cannot load model: {err}", file=sys.stderr)
        return 2
    report = colorize_paths(
        colorizer, args.inputs, args.out, size=args.size, batch_size=args.batch_size, image_format=args.image_format,
        side_by_side=args.side_by_side, decode=args.decode, temperature=args.temperature, quality=args.quality,
        workers=args.workers, progress=not args.no_progress,
    )
    print(report.summary())
    if report.written:
        print(f"wrote them to {Path(args.out)}/ (same relative paths as the inputs)\nnext: look at them, or score "
              f"the model on colour photos: gan-color evaluate --model {args.model} --data DIR")
    if not report.written and not report.failed:
        print("error: no images found in the inputs", file=sys.stderr)
        return 1
    return 0 if report.ok else 1
