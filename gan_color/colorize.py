"""`gan-color colorize`: colorize photos of any size, mode and aspect with an exported model. The model sees a resized
copy; its ab is upsampled onto the input's full-resolution L, so outputs keep the input's size, lightness and alpha."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from gan_color import color
from gan_color.data.images import (
    IMAGE_EXTENSIONS,
    default_workers,
    describe_error,
    list_images,
)
from gan_color.devices import resolve_device
from gan_color.gray_input import (
    BYTES_PER_PIXEL,
    DEFAULT_MAX_PIXELS,
    STRIP_PIXELS,
    GrayImage,
    TooLargeError,
    check_pixels,
    gray_rgb,
    image_size,
    load_gray,
)
from gan_color.image_pipeline import DEFAULT_WINDOW_PIXELS, ImagePipeline
from gan_color.inference import DECODE_METHODS, Colorizer

logger = logging.getLogger("gan_color.colorize")

# Output suffix -> Pillow format. Inputs in other formats (e.g. .gif given explicitly) are written as PNG.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF"}
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF", "BMP")


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




def _model_inputs(images: Sequence[GrayImage], size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([
        F.interpolate(image.lightness[None].to(device), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False)
        for image in images
    ])


@torch.no_grad()
def predict_small_ab(colorizer: Colorizer, images: Sequence[GrayImage], *, size: int | None = None,
                     decode: str | None = None, temperature: float | None = None) -> torch.Tensor:
    """The network's normalized ab [B, 2, size, size] for each image resized (whole) to size x size, in one batch."""
    size = size or colorizer.spec.image_size
    device = next(iter(colorizer.parameters()), torch.empty(0)).device
    return colorizer(color.normalize_l(_model_inputs(images, size, device)), decode=decode, temperature=temperature)


@torch.no_grad()
def finish_uint8(image: GrayImage, ab: torch.Tensor) -> np.ndarray:
    """Normalized ab [2, h, w] (any device) bilinearly upsampled onto the image's full-resolution L, gamut-mapped
    and quantized: uint8 [H, W, 3]. The upsampled ab is made once (exactly as before); everything after it runs on
    strips of STRIP_PIXELS, on ab's device, so temporaries do not grow with the image."""
    lightness = image.lightness
    height, width = lightness.shape[-2:]
    full_ab = F.interpolate(ab[None], size=(height, width), mode="bilinear", align_corners=False)
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        strip_l = lightness[None, :, top: top + rows].to(ab.device)
        rgb = color.lab_to_rgb_in_gamut(strip_l, color.denormalize_ab(full_ab[:, :, top: top + rows]))[0]
        # = color.rgb_to_uint8(rgb) (already in [0, 1]: no clamp), in place on this temporary
        out[top: top + rows] = rgb.mul_(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return out


@torch.no_grad()
def colorize_gray(colorizer: Colorizer, images: Sequence[GrayImage], *, size: int | None = None,
                  decode: str | None = None, temperature: float | None = None) -> list[torch.Tensor]:
    """Colorize a batch of any-size images: each is resized (whole, to size x size) for the model in one batch, and
    the predicted ab is bilinearly upsampled back onto its own full-resolution L. Returns sRGB [3, H, W] in [0, 1]."""
    fake_ab = predict_small_ab(colorizer, images, size=size, decode=decode, temperature=temperature)
    outputs = []
    for image, ab in zip(images, fake_ab):
        lightness = image.lightness[None].to(ab.device)
        ab = F.interpolate(ab[None], size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        outputs.append(color.lab_to_rgb_in_gamut(lightness, color.denormalize_ab(ab))[0].cpu())
    return outputs


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
    max_pixels: int = DEFAULT_MAX_PIXELS,
    window_pixels: int = DEFAULT_WINDOW_PIXELS,
) -> ColorizeReport:
    """Colorize files and folders (recursive) into `out_dir`, mirroring relative paths. Bad files (unreadable, above
    `max_pixels`, unwritable) are logged and listed in the report's `failed`; the rest are written. `side_by_side`
    writes [input | output] pairs instead.

    A pipeline: threads decode (to full-resolution L) and finish (upsample ab, gamut map, quantize, encode, write)
    while the main thread runs the network on batches of `batch_size`. Images in flight hold at most
    `window_pixels` together, a bigger one alone, so memory is bounded by the largest image, not by the batch."""
    out_dir = Path(out_dir)
    report = ColorizeReport()
    files, report.failed = find_inputs(inputs, out_dir)
    jobs = deque()
    for path, output, reason in plan_outputs(files, out_dir, image_format):
        (jobs.append((path, output)) if output else report.failed.append((path, reason)))
    total = len(jobs)
    workers = workers or default_workers()
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if not max_pixels or (pillow_limit and max_pixels > pillow_limit):
        Image.MAX_IMAGE_PIXELS = None  # Pillow's decompression-bomb guard would refuse what --max-pixels allows
    try:
        return _run_pipeline(colorizer, jobs, report, size=size, batch_size=batch_size, side_by_side=side_by_side,
                             decode=decode, temperature=temperature, quality=quality, workers=workers,
                             progress=progress, max_pixels=max_pixels, window_pixels=window_pixels, total=total)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def _run_pipeline(colorizer: Colorizer, jobs: deque, report: ColorizeReport, *, size: int | None, batch_size: int,
                  side_by_side: bool, decode: str | None, temperature: float | None, quality: int, workers: int,
                  progress: bool, max_pixels: int, window_pixels: int, total: int) -> ColorizeReport:
    pipeline = ImagePipeline(workers, window_pixels=window_pixels, max_images=2 * batch_size + workers)
    finish = partial(_finish_one, side_by_side=side_by_side, quality=quality)
    with pipeline, tqdm(total=total, desc="colorize", unit="img", disable=not progress) as bar:
        batch: list[tuple[Path, Path, int, GrayImage]] = []
        while jobs or pipeline.decoding or batch:
            while jobs:  # decode ahead while the pixel budget has room
                if len(jobs[0]) == 2:
                    jobs[0] = (*jobs[0], image_size(jobs[0][0]))  # header only, read once
                path, output, (width, height) = jobs[0]
                if not pipeline.admits(width * height):
                    break
                jobs.popleft()
                try:
                    check_pixels((width, height), max_pixels)
                except TooLargeError as err:  # refused before any decoding
                    report.failed.append((path, str(err)))
                    bar.update(1)
                    continue
                pipeline.decode(path, output, width * height, partial(load_gray, path, max_pixels=max_pixels))
            if pipeline.decoding:
                path, output, pixels, image = pipeline.next_decoded()
                if isinstance(image, str):
                    report.failed.append((path, image))
                    pipeline.release(pixels)
                    bar.update(1)
                else:
                    batch.append((path, output, pixels, image))
            # Run the network on a full batch, or on what there is when nothing more can arrive without room.
            if batch and (len(batch) >= batch_size or not pipeline.decoding):
                try:
                    fake_ab = predict_small_ab(colorizer, [image for *_, image in batch], size=size, decode=decode,
                                               temperature=temperature)
                except (RuntimeError, MemoryError) as err:  # e.g. out of memory: this batch fails, not the run
                    for path, _, pixels, _ in batch:
                        report.failed.append((path, f"model: {describe_error(err)}"))
                        pipeline.release(pixels)
                    bar.update(len(batch))
                    fake_ab, batch = [], []
                for (path, output, pixels, image), ab in zip(batch, fake_ab):
                    pipeline.finish(pixels, partial(finish, path, output, image, ab))
                batch = []
            bar.update(_record(report, pipeline.collect(wait=not pipeline.decoding and not batch and bool(jobs))))
        bar.update(_record(report, pipeline.collect(wait=True, everything=True)))
    for path, reason in report.failed:
        logger.warning("skipped %s: %s", path, reason)
    return report


def _record(report: ColorizeReport, results: list[tuple[Path, Path | None, str]]) -> int:
    """Finished images into the report, in input order: (input, output, warning) or (input, None, reason)."""
    for path, output, message in results:
        if output is None:
            report.failed.append((path, message))
            continue
        if message:
            logger.warning(message)
            report.warnings.append(message)
        report.written.append((path, output))
    return len(results)


def _finish_one(path: Path, output: Path, image: GrayImage, ab: torch.Tensor, *, side_by_side: bool,
                quality: int) -> tuple[Path, Path | None, str]:
    """Full-resolution colour, encode and write of one image (on a pool thread): (input, output, warning), or
    (input, None, reason) when it could not be made or written."""
    try:
        array, alpha = finish_uint8(image, ab), image.alpha
        if side_by_side:
            array = np.concatenate([color.rgb_to_uint8_array(gray_rgb(image)), array], axis=1)
            alpha = None if alpha is None else np.concatenate([alpha, alpha], axis=1)
        image.lightness = torch.empty(0)  # the full-resolution L is no longer needed: free it before encoding
        return path, output, save_image(array, alpha, output, quality=quality)
    except (OSError, ValueError, RuntimeError, MemoryError) as err:  # e.g. out of memory on this image
        return path, None, f"cannot write {output}: {describe_error(err)}"


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
    parser.add_argument("--workers", type=int, default=0,
                        help="threads decoding, finishing and encoding images (0 = automatic)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse (with a message, continuing with the others) inputs above this many pixels; "
                             f"colorizing holds about {BYTES_PER_PIXEL} bytes per pixel of the largest image "
                             f"(default {DEFAULT_MAX_PIXELS}; 0 = no limit)")
    parser.add_argument("--no-progress", action="store_true")


def run_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when every input was colorized, 1 when any failed (or none was found), 2 on a bad model/args."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.batch_size < 1 or (args.size is not None and args.size < 1) or args.max_pixels < 0:
        print("error: --batch-size and --size must be positive, --max-pixels >= 0", file=sys.stderr)
        return 2
    try:
        colorizer = Colorizer.load(args.model, device=resolve_device(args.device))
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: cannot load model: {err}", file=sys.stderr)
        return 2
    report = colorize_paths(
        colorizer, args.inputs, args.out, size=args.size, batch_size=args.batch_size, image_format=args.image_format,
        side_by_side=args.side_by_side, decode=args.decode, temperature=args.temperature, quality=args.quality,
        workers=args.workers, progress=not args.no_progress, max_pixels=args.max_pixels,
    )
    print(report.summary())
    if report.written:
        print(f"wrote them to {Path(args.out)}/ (same relative paths as the inputs)\nnext: look at them, or score "
              f"the model on colour photos: gan-color evaluate --model {args.model} --data DIR")
    if not report.written and not report.failed:
        print("error: no images found in the inputs", file=sys.stderr)
        return 1
    return 0 if report.ok else 1
