"""Inference exports (`generator.safetensors` + `generator.json`) and `Colorizer`, the one way every model is run.

An export holds the network's registered name and constructor kwargs, what its raw output means, and the colour
constants it was trained with, so evaluation, colorize and human-eval load any model without the training config.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from gan_color import ab_grid, color
from gan_color.models import build_colorizer

EXPORT_FORMAT = "gan-color-export"
EXPORT_VERSION = 1
WEIGHTS_NAME = "generator.safetensors"
SPEC_NAME = "generator.json"
OUTPUT_KINDS = ("ab", "rgb", "ab_logits")
DECODE_METHODS = ("annealed_mean", "mean", "mode")


@dataclass
class ExportSpec:
    """What an exported network is and how to turn its raw output into normalized ab.

    output: "ab" = normalized ab (tanh); "rgb" = sRGB in [0,1] (the gray->RGB baselines);
    "ab_logits" = logits over the colour module's ab bins (Zhang et al. classification), decoded by `decode`.
    """

    arch: str
    kwargs: dict[str, Any]
    output: str = "ab"
    image_size: int = 256
    decode: str = "annealed_mean"
    temperature: float = 0.38
    in_channels: int = 1  # 1 = normalized L; 3 = gray replicated to RGB in [0,1] (RGB-space baselines)
    color: dict[str, float] = field(default_factory=lambda: {
        "l_center": color.L_CENTER, "l_scale": color.L_SCALE, "ab_scale": color.AB_SCALE,
        "ab_bin_size": ab_grid.AB_BIN_SIZE,
    })
    num_bins: int = 0  # Q of the ab grid for "ab_logits", checked on load
    run: str = ""
    step: int = 0
    objective: str = ""

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        if self.decode not in DECODE_METHODS:
            raise ValueError(f"decode must be one of {DECODE_METHODS}, got {self.decode!r}")


def save_export(model: nn.Module, spec: ExportSpec, directory: str | os.PathLike) -> Path:
    """Write `generator.safetensors` and `generator.json` into `directory` atomically (tmp file + rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": EXPORT_FORMAT})
    os.replace(tmp, directory / WEIGHTS_NAME)
    payload = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, **asdict(spec)}
    tmp = directory / (SPEC_NAME + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, directory / SPEC_NAME)
    return directory


# Models that ship inside the package (gan_color/zoo/<name>/: generator.json, generator.safetensors, MODEL_CARD.md).
ZOO_DIR = Path(__file__).parent / "zoo"


def shipped_models() -> list[str]:
    """Names of the models inside the package, e.g. 'gan-color-base' (`--model gan-color-base`)."""
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / SPEC_NAME).is_file()) if ZOO_DIR.is_dir() else []


def find_export(path: str | os.PathLike) -> Path:
    """Resolve a shipped model's name, a run folder, an export folder, or a path to generator.json/.safetensors to
    the export folder. A local folder of the same name as a shipped model wins."""
    if not Path(path).exists() and str(path) in shipped_models():
        return ZOO_DIR / str(path)
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS_NAME, SPEC_NAME):
        path = path.parent
    for candidate in (path, path / "export"):
        if (candidate / SPEC_NAME).is_file() and (candidate / WEIGHTS_NAME).is_file():
            return candidate
    shipped = ", ".join(shipped_models()) or "none"
    raise FileNotFoundError(
        f"no model export at {str(path)!r}: expected {SPEC_NAME} and {WEIGHTS_NAME} in it or in its 'export/' "
        f"folder (a training run writes them at the end and at every checkpoint), or a shipped model ({shipped})"
    )


def load_spec(path: str | os.PathLike) -> ExportSpec:
    file = find_export(path) / SPEC_NAME
    try:
        payload = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is not valid JSON ({_one_line(err)}); re-export the model") from None
    if not isinstance(payload, dict) or payload.pop("format", None) != EXPORT_FORMAT:
        raise ValueError(f"{path}: not a gan-color export")
    version = payload.pop("version", None)
    if version != EXPORT_VERSION:
        raise ValueError(f"{path}: export version {version} is not supported (this gan-color reads {EXPORT_VERSION})")
    try:
        return ExportSpec(**payload)
    except TypeError as err:
        raise ValueError(f"{file}: unexpected fields ({_one_line(err)})") from None


def raw_to_ab(raw: torch.Tensor, spec: ExportSpec, *, size: tuple[int, int] | None = None,
              decode: str | None = None, temperature: float | None = None) -> torch.Tensor:
    """Turn a network's raw output into normalized ab [B,2,H,W] (resized to `size` if given)."""
    raw = raw.float()
    if spec.output == "ab":
        ab = raw
    elif spec.output == "rgb":
        ab = color.normalize_ab(color.rgb_to_lab(raw.clamp(0, 1))[:, 1:])
    else:
        bins = ab_grid.ab_bins(int(spec.color["ab_bin_size"])).to(raw.device)
        method, t = decode or spec.decode, spec.temperature if temperature is None else temperature
        if method == "annealed_mean":
            ab = ab_grid.annealed_mean(raw, bins, temperature=t)
        elif method == "mean":
            ab = ab_grid.decode_mean(raw, bins)
        else:
            ab = ab_grid.decode_mode(raw, bins)
        ab = color.normalize_ab(ab)
    if size is not None and tuple(ab.shape[-2:]) != tuple(size):
        ab = F.interpolate(ab, size=size, mode="bilinear", align_corners=False)
    return ab


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()).strip("'\"")
    return (text[:300] + "...") if len(text) > 300 else text or type(err).__name__


def model_input(gray_l: torch.Tensor, in_channels: int) -> torch.Tensor:
    """What a colorizer network takes: normalized L, or (RGB-space baselines) the gray image as 3-channel sRGB."""
    if in_channels == 1:
        return gray_l
    return color.model_outputs_to_rgb(gray_l, torch.zeros_like(gray_l).repeat(1, 2, 1, 1))


class Colorizer(nn.Module):
    """A loaded export: `colorizer(gray_l)` -> normalized ab at the input's size, whatever the network predicts."""

    def __init__(self, network: nn.Module, spec: ExportSpec) -> None:
        super().__init__()
        self.network = network.eval()
        self.spec = spec

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> Colorizer:
        """The export at `path`; a damaged or mismatched one is a ValueError naming the file, in one line."""
        folder = find_export(path)
        spec = load_spec(folder)  # its own errors name the file
        try:
            if spec.output == "ab_logits":
                q = len(ab_grid.ab_bins(int(spec.color["ab_bin_size"])))
                if spec.num_bins != q:
                    raise ValueError(f"model predicts {spec.num_bins} ab bins, this colour grid has {q}")
            network = build_colorizer(spec.arch, **spec.kwargs)
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as err:
            raise ValueError(f"{folder / SPEC_NAME} is not a usable model description ({spec.arch} with "
                             f"{spec.kwargs}: {_one_line(err)}); re-export the model or copy the file again") from None
        try:
            state = load_file(str(folder / WEIGHTS_NAME))
        except Exception as err:  # noqa: BLE001 - truncated, empty or not safetensors: the same fix
            raise ValueError(f"{folder / WEIGHTS_NAME} cannot be read ({_one_line(err)}); the file is damaged: "
                             "copy it again or re-export it from a checkpoint") from None
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{folder / WEIGHTS_NAME} does not fit the network {spec.arch!r} that {SPEC_NAME} "
                             f"describes ({_one_line(err)})") from None
        return cls(network, spec).to(device)

    @torch.no_grad()
    def forward(self, gray_l: torch.Tensor, *, decode: str | None = None,
                temperature: float | None = None) -> torch.Tensor:
        return self.predict(gray_l, decode=decode, temperature=temperature)[0]

    @torch.no_grad()
    def predict(self, gray_l: torch.Tensor, *, model_size: int | None = None, decode: str | None = None,
                temperature: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized ab at `gray_l`'s size, and the network's raw output (the ab-bin logits of a classifier, which
        bin accuracy scores). With `model_size` the network sees L resized (bilinear, antialiased) to
        model_size x model_size and its ab is upsampled to the input's size (evaluation at full resolution)."""
        model_in = gray_l
        if model_size is not None and tuple(gray_l.shape[-2:]) != (model_size, model_size):
            model_in = F.interpolate(gray_l, size=(model_size, model_size), mode="bilinear", antialias=True,
                                     align_corners=False)
        raw = self.network(model_input(model_in, self.spec.in_channels))
        ab = raw_to_ab(raw, self.spec, size=tuple(gray_l.shape[-2:]), decode=decode, temperature=temperature)
        return ab, raw

    @torch.no_grad()
    def colorize_rgb(self, gray_l: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Normalized L [B,1,H,W] -> sRGB [B,3,H,W] in [0,1] with the input's exact lightness."""
        return color.model_outputs_to_rgb(gray_l, self(gray_l, **kwargs))
