"""`gan-color colorize`: exact size and lightness on odd sizes, real black-and-white modes, alpha, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gan_color import color
from gan_color.cli import main
from gan_color.color import lab_to_rgb_in_gamut
from gan_color.colorize import colorize_paths
from gan_color.gray_input import load_gray
from gan_color.inference import Colorizer, ExportSpec, save_export
from gan_color.models import build_colorizer

L_TOLERANCE = 0.6  # CIE L: rounding each sRGB channel to 8 bits moves L by at most ~0.5


class Rainbow(nn.Module):
    """A stand-in network predicting every hue at 95% of the ab range: most of it is outside sRGB, the hard case."""

    def forward(self, gray_l: torch.Tensor) -> torch.Tensor:
        b, _, h, w = gray_l.shape
        phase = torch.linspace(0, 2 * torch.pi, w).expand(b, 1, h, w)
        return 0.95 * torch.cat([phase.cos(), phase.sin()], 1)


@pytest.fixture(scope="module")
def rainbow() -> Colorizer:
    return Colorizer(Rainbow(), ExportSpec(arch="rainbow", kwargs={}, image_size=16))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("run")
    save_export(build_colorizer("resnet_6blocks", ngf=8),
                ExportSpec(arch="resnet_6blocks", kwargs={"ngf": 8}, image_size=32, run="tiny"), folder)
    return folder


def lightness_of(path: Path) -> torch.Tensor:
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return color.rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1))[0]


def gradient(width: int, height: int) -> np.ndarray:
    """A 2-D ramp covering black to white, so every lightness is tested."""
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    return (x * 0.7 + y * 0.3).astype(np.float32)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_output_keeps_size_and_lightness_on_odd_sizes(tmp_path: Path, rainbow: Colorizer, mode: str) -> None:
    ramp = (gradient(97, 61) * 255).round().astype(np.uint8)
    array = ramp if mode == "L" else np.stack([ramp, ramp[::-1], ramp[:, ::-1]], axis=2)
    Image.fromarray(array, mode).save(tmp_path / "in.png")
    report = colorize_paths(rainbow, [tmp_path / "in.png"], tmp_path / "out", progress=False)
    assert report.ok and len(report.written) == 1
    out = tmp_path / "out" / "in.png"
    assert Image.open(out).size == (97, 61)
    assert (lightness_of(out) - load_gray(tmp_path / "in.png").lightness[0]).abs().max() < L_TOLERANCE
    ab = color.rgb_to_lab(torch.from_numpy(np.asarray(Image.open(out), dtype=np.float32) / 255).permute(2, 0, 1))[1:]
    assert ab.norm(dim=0).mean() > 20  # the colour is really there, not removed to keep L


def test_gamut_mapping_keeps_lightness_and_hue() -> None:
    lightness = torch.linspace(0, 100, 64).view(1, 1, 8, 8)
    ab = torch.tensor([90.0, -60.0]).view(1, 2, 1, 1).expand(1, 2, 8, 8)
    rgb = lab_to_rgb_in_gamut(lightness, ab)
    lab = color.rgb_to_lab(rgb)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (lab[:, :1] - lightness).abs().max() < 1e-2
    colourful = lab[:, 1:].norm(dim=1) > 5  # hue is meaningless for the near-gray extremes of L
    hue = torch.atan2(lab[:, 2], lab[:, 1])[colourful]
    assert (hue - torch.atan2(torch.tensor(-60.0), torch.tensor(90.0))).abs().max() < 0.05


def save_modes(folder: Path) -> dict[str, tuple[int, int]]:
    """One file per real-world black-and-white case; returns name -> expected output size."""
    ramp = gradient(45, 31)
    Image.fromarray((ramp * 255).astype(np.uint8), "L").save(folder / "gray.png")
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(folder / "deep.png")  # I;16
    Image.fromarray((ramp * 255).astype(np.uint8), "L").convert("P").save(folder / "palette.png")
    rgba = np.dstack([(ramp * 255).astype(np.uint8)] * 3 + [np.tile(np.arange(45, dtype=np.uint8) * 5, (31, 1))])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(folder / "gray_alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray((ramp * 255).astype(np.uint8), "L").save(folder / "rotated.jpg", exif=exif, quality=95)
    return {"gray.png": (45, 31), "deep.png": (45, 31), "palette.png": (45, 31), "alpha.png": (45, 31),
            "gray_alpha.png": (45, 31), "rotated.jpg": (31, 45)}


def test_black_and_white_modes_alpha_and_exif(tmp_path: Path, rainbow: Colorizer) -> None:
    src = tmp_path / "in"
    src.mkdir()
    expected = save_modes(src)
    assert Image.open(src / "deep.png").mode == "I;16"
    report = colorize_paths(rainbow, [src], tmp_path / "out", batch_size=4, progress=False)
    assert report.ok, report.summary()
    for name, size in expected.items():
        out = Image.open(tmp_path / "out" / name)
        assert out.size == size, name
        diff = (lightness_of(tmp_path / "out" / name) - load_gray(src / name).lightness[0]).abs()
        assert diff.max() < (L_TOLERANCE if name.endswith(".png") else 8), name  # JPEG output is lossy
    # 16-bit values are read by their nominal range: the ramp is the same lightness as its 8-bit version
    assert (load_gray(src / "deep.png").lightness - load_gray(src / "gray.png").lightness).abs().max() < 0.5
    for name in ("alpha.png", "gray_alpha.png"):
        out = Image.open(tmp_path / "out" / name)
        assert out.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(Image.open(src / name).getchannel("A")))


def test_bad_files_are_skipped_with_exit_status_1(tmp_path: Path, run_dir: Path, capsys) -> None:
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    Image.fromarray((gradient(40, 24) * 255).astype(np.uint8)).save(src / "sub" / "good.png")
    (src / "broken.jpg").write_bytes(b"not an image at all")
    good = (src / "sub" / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    status = main(["colorize", "--model", str(run_dir), str(src), "--out", str(out), "--no-progress"])
    assert status == 1
    summary = capsys.readouterr().out
    assert "1 image(s), 2 failed" in summary and "broken.jpg" in summary and "truncated.png" in summary
    assert Image.open(out / "sub" / "good.png").size == (40, 24)  # relative path mirrored
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["good.png"]
    (src / "broken.jpg").unlink()
    (src / "truncated.png").unlink()
    assert main(["colorize", "--model", str(run_dir), str(src), "--out", str(out), "--no-progress"]) == 0


def test_paths_formats_and_never_overwriting_inputs(tmp_path: Path, rainbow: Colorizer) -> None:
    src = tmp_path / "in"
    src.mkdir()
    ramp = (gradient(20, 12) * 255).astype(np.uint8)
    Image.fromarray(ramp).save(src / "a.png")
    Image.fromarray(np.dstack([ramp] * 4), "RGBA").save(src / "a.webp", lossless=True)
    report = colorize_paths(rainbow, [src], src / "jpg", image_format="jpg", progress=False)
    assert report.ok and len(report.written) == 2
    assert sorted(p.name for p in (src / "jpg").iterdir()) == ["a.jpg", "a_webp.jpg"]  # the clash is renamed
    assert Image.open(src / "jpg" / "a_webp.jpg").mode == "RGB" and len(report.warnings) == 1  # alpha dropped
    # writing into the input folder itself: the input would be replaced, so it is refused and reported
    before = (src / "a.png").read_bytes()
    report = colorize_paths(rainbow, [src / "a.png"], src, progress=False)
    assert not report.ok and "overwrite an input" in report.failed[0][1]
    assert (src / "a.png").read_bytes() == before
    # a second run over the input folder does not pick up the outputs written inside it
    report = colorize_paths(rainbow, [src], src / "jpg", image_format="jpg", progress=False)
    assert len(report.written) == 2


def test_side_by_side_and_missing_input(tmp_path: Path, rainbow: Colorizer) -> None:
    ramp = (gradient(33, 17) * 255).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "x.png")
    report = colorize_paths(rainbow, [tmp_path / "x.png", tmp_path / "nope.png"], tmp_path / "out",
                            side_by_side=True, progress=False)
    assert [reason for _, reason in report.failed] == ["no such file or folder"]
    pair = np.asarray(Image.open(tmp_path / "out" / "x.png"))
    assert pair.shape == (17, 66, 3)
    np.testing.assert_array_equal(pair[:, :33, 0], ramp)  # left half is the input as the model saw it
    assert pair[:, :33].std(axis=2).max() == 0 and pair[:, 33:].std(axis=2).max() > 10


def test_max_pixels_refuses_one_file_with_a_message_and_writes_the_others(tmp_path: Path, rainbow: Colorizer):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((gradient(40, 30) * 255).astype(np.uint8)).save(src / "big.png")  # 1200 pixels
    Image.fromarray((gradient(20, 12) * 255).astype(np.uint8)).save(src / "small.png")  # 240 pixels
    report = colorize_paths(rainbow, [src], tmp_path / "out", max_pixels=1000, progress=False)
    assert [p.name for p, _ in report.written] == ["small.png"]
    [(path, reason)] = report.failed
    assert path.name == "big.png" and "40x30" in reason and "--max-pixels 1000" in reason
    assert colorize_paths(rainbow, [src], tmp_path / "all", max_pixels=0, progress=False).ok


def test_images_beyond_the_pixel_window_go_alone_with_identical_output(tmp_path: Path, run_dir: Path, monkeypatch):
    from gan_color import colorize

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        Image.fromarray((np.roll(gradient(40, 30), 7 * i, axis=1) * 255).astype(np.uint8)).save(src / f"{i}.png")
    model = Colorizer.load(run_dir)
    colorize_paths(model, [src], tmp_path / "together", batch_size=1, progress=False)
    batches = []
    real = colorize.predict_small_ab
    monkeypatch.setattr(colorize, "predict_small_ab", lambda c, images, **kw: batches.append(len(images)) or real(
        c, images, **kw))
    report = colorize_paths(model, [src], tmp_path / "alone", batch_size=4, window_pixels=1500, progress=False)
    assert report.ok and batches == [1] * 5  # 1200-pixel images, a 1500-pixel window: one at a time
    for i in range(5):  # batch 1 both times: the same network input, so the same bytes
        assert (tmp_path / "alone" / f"{i}.png").read_bytes() == (tmp_path / "together" / f"{i}.png").read_bytes()


def test_strips_give_the_same_pixels_as_one_pass(tmp_path: Path, rainbow: Colorizer, monkeypatch):
    from gan_color import colorize

    ramp = (gradient(97, 61) * 255).round().astype(np.uint8)
    Image.fromarray(np.stack([ramp, ramp[::-1], ramp[:, ::-1]], axis=2)).save(tmp_path / "in.png")
    image = load_gray(tmp_path / "in.png")
    ab = rainbow(color.normalize_l(torch.zeros(1, 1, 16, 16)))[0]
    whole = colorize.finish_uint8(image, ab)
    monkeypatch.setattr(colorize, "STRIP_PIXELS", 97 * 5 + 3)  # strips of 5 rows, the last one short
    np.testing.assert_array_equal(colorize.finish_uint8(image, ab), whole)
    assert torch.equal(load_gray(tmp_path / "in.png").lightness, image.lightness)


PEAK_SCRIPT = """
import resource, sys, torch
from torch import nn
from gan_color.colorize import colorize_paths
from gan_color.inference import Colorizer, ExportSpec

class Sepia(nn.Module):
    def forward(self, gray_l):
        return torch.tensor([0.05, 0.15]).view(1, 2, 1, 1).expand(gray_l.shape[0], 2, *gray_l.shape[2:])

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the interpreter with torch and gan_color
report = colorize_paths(Colorizer(Sepia(), ExportSpec(arch="sepia", kwargs={}, image_size=64)), [sys.argv[1]],
                        sys.argv[2], progress=False)
assert report.ok, report.summary()
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # opening the 100 MP result to check it
def test_peak_memory_of_a_100_megapixel_photo_is_bounded(tmp_path: Path):
    """Before strips and the pixel window, one 144 MP JPEG peaked at 11.7 GB (~81 bytes per pixel). Now the peak
    grows by at most BYTES_PER_PIXEL (18) per pixel over the interpreter's own (about 1 GB with torch): < 2.8 GB."""
    import subprocess
    import sys

    from gan_color.gray_input import BYTES_PER_PIXEL

    side = 10_000
    x = np.linspace(0, 255, side, dtype=np.float32)
    Image.fromarray((x[None, :] * 0.7 + x[:, None] * 0.3).astype(np.uint8)).save(tmp_path / "huge.jpg", quality=80)
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path / "huge.jpg"), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, check=True)
    before, peak = map(int, out.stdout.split()[-2:])
    assert peak - before < BYTES_PER_PIXEL * side * side, f"{(peak - before) / side**2:.1f} bytes per pixel"
    assert peak < before + 2_000_000_000
    with Image.open(tmp_path / "out" / "huge.jpg") as result:
        assert result.size == (side, side) and result.mode == "RGB"


def test_a_failing_batch_loses_only_its_own_images(tmp_path: Path, rainbow: Colorizer, monkeypatch):
    from gan_color import colorize

    for name in ("a.png", "b.png"):
        Image.fromarray((gradient(20, 12) * 255).astype(np.uint8)).save(tmp_path / name)
    real, calls = colorize.predict_small_ab, []

    def out_of_memory_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(colorize, "predict_small_ab", out_of_memory_once)
    report = colorize_paths(rainbow, [tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "out", batch_size=1,
                            progress=False)
    assert [p.name for p, _ in report.written] == ["b.png"]
    assert report.failed[0][0].name == "a.png" and "out of memory" in report.failed[0][1]
