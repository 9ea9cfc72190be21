"""Metrics against references: scikit-image (PSNR/SSIM), the formulas (colourfulness, AuC, LPIPS Eq. 1), FID with a
stand-in extractor and with the real Inception weights, and the unavailable-weights message."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_color import ab_grid, color
from gan_color.data.images import list_images, load_rgb
from gan_color.data.transforms import eval_transform
from gan_color.metrics import fid as fid_lib
from gan_color.metrics import scores as M
from gan_color.metrics.weights import MetricUnavailable, hub_checkpoint

REPO = Path(__file__).resolve().parents[1]




@pytest.fixture
def torch_home(prepared_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(prepared_torch_home))
    return prepared_torch_home


def _eval_crops(folder: Path) -> torch.Tensor:
    """The first 12 photos of `folder`, 48 px eval crops, float RGB in [0, 1]."""
    crop = eval_transform(48)
    return torch.stack([crop(load_rgb(p)) for p in list_images(folder)[:12]])


@pytest.fixture(scope="session")
def photos(photo_dir: Path) -> torch.Tensor:
    """12 real photos cut from the ones the package ships."""
    return _eval_crops(photo_dir)


@pytest.fixture(scope="session")
def imagenet_photos(prepared_torch_home: Path, imagenet_dir: Path) -> torch.Tensor:
    """12 ImageNet photos: the FID regression numbers below were recorded on them (with the real weights)."""
    return _eval_crops(imagenet_dir)


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# ----------------------------------------------------------------------------------------------------------------
# PSNR, SSIM, colourfulness, AuC, bin accuracy


def test_psnr_and_ssim_equal_scikit_image(photos: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    noisy = (photos + 0.08 * torch.randn(photos.shape, generator=generator)).clamp(0, 1)
    fake, real = color.rgb_to_uint8(noisy), color.rgb_to_uint8(photos)
    psnr, ssim = M.psnr_uint8(fake, real), M.ssim_uint8(fake, real)
    for i in range(len(photos)):
        f, r = fake[i].permute(1, 2, 0).numpy(), real[i].permute(1, 2, 0).numpy()
        assert psnr[i] == pytest.approx(peak_signal_noise_ratio(r, f, data_range=255), abs=1e-4)
        assert ssim[i] == pytest.approx(structural_similarity(r, f, data_range=255, channel_axis=-1), abs=1e-6)
    assert M.psnr_uint8(real, real).eq(M.PSNR_MAX).all()
    with pytest.raises(TypeError, match="uint8"):
        M.psnr_uint8(noisy, photos)  # float images must go through the uint8 contract first


def _hasler(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003), Eq. in Sec. 3, written directly from the paper on 0-255 values."""
    r, g, b = (rgb.astype(np.float64) * 255).transpose(2, 0, 1)
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def test_colorfulness_and_delta_equal_the_formula(photos: torch.Tensor) -> None:
    gray = color.model_outputs_to_rgb(color.rgb_to_model_inputs(photos)[0], torch.zeros(len(photos), 2, 48, 48))
    batch = M.EvalBatch(fake_rgb=gray, real_rgb=photos)
    cf, delta = M.build_metric("colorfulness"), M.build_metric("delta_colorfulness")
    per_image = cf.update(batch)["colorfulness"]
    delta.update(batch)
    expected_fake = [_hasler(x.permute(1, 2, 0).numpy()) for x in gray]
    expected_real = [_hasler(x.permute(1, 2, 0).numpy()) for x in photos]
    assert per_image.numpy() == pytest.approx(expected_fake, abs=1e-3)
    assert delta.result()["delta_colorfulness"] == pytest.approx(abs(np.mean(expected_fake) - np.mean(expected_real)),
                                                                 abs=1e-3)
    assert max(expected_fake) < 1.0 < min(expected_real)  # gray outputs have ~no colour, the photos do


def test_auc_perfect_gray_and_known_error(photos: torch.Tensor) -> None:
    gray_l, real_ab = color.rgb_to_model_inputs(photos)
    real_cie = color.denormalize_ab(real_ab)
    assert M.auc_ab(real_cie, real_cie).numpy() == pytest.approx(np.ones(len(photos)))
    gray_auc = M.auc_ab(torch.zeros_like(real_cie), real_cie)
    assert (gray_auc < 1).all() and (gray_auc > 0).all()
    # every pixel off by 30.5 in a: the CDF is 0 up to t = 30 and 1 from t = 31, so the trapezoid area is 119.5 / 150
    shifted = real_cie + torch.tensor([30.5, 0.0])[None, :, None, None]
    assert M.auc_ab(shifted, real_cie).numpy() == pytest.approx(np.full(len(photos), 119.5 / 150), abs=1e-6)


def test_bin_accuracy_of_exact_low_resolution_and_wrong_logits() -> None:
    bins = ab_grid.ab_bins()
    generator = torch.Generator().manual_seed(0)
    blocks = bins[torch.randint(len(bins), (2, 8, 8), generator=generator)].permute(0, 3, 1, 2)  # bin centres
    real_ab = torch.nn.functional.interpolate(blocks, scale_factor=4, mode="nearest")  # 4x4 blocks at 32x32
    nearest = ab_grid.encode_ab_nearest(blocks, bins)
    logits = torch.nn.functional.one_hot(nearest, len(bins)).permute(0, 3, 1, 2).float()
    assert M.bin_accuracy(logits, real_ab, bins).numpy() == pytest.approx([1.0, 1.0])  # 8x8 logits vs 32x32 truth
    assert (M.bin_accuracy(logits.roll(1, dims=1), real_ab, bins) < 0.05).all()


def test_cheap_metrics_agree_with_the_registered_metrics(photos: torch.Tensor) -> None:
    gray_l, real_ab = color.rgb_to_model_inputs(photos)
    fake_ab = 0.5 * real_ab
    fake_rgb = color.model_outputs_to_rgb(gray_l, fake_ab)
    cheap = M.cheap_metrics(fake_rgb, photos, fake_ab, real_ab)
    batch = M.EvalBatch(fake_rgb=fake_rgb, real_rgb=photos, fake_ab=fake_ab, real_ab=real_ab)
    for name in ("psnr_rgb_uint8", "auc_ab_0_150", "colorfulness", "delta_colorfulness"):
        metric = M.build_metric(name)
        metric.update(batch)
        assert cheap[name] == pytest.approx(metric.result()[name], rel=1e-5), name
    assert set(cheap) == {"psnr_rgb_uint8", "auc_ab_0_150", "colorfulness", "delta_colorfulness"}


# ----------------------------------------------------------------------------------------------------------------
# LPIPS


def _lpips_eq1(x: torch.Tensor, y: torch.Tensor, home: Path) -> torch.Tensor:
    """LPIPS v0.1 written from Zhang et al. (2018), Eq. 1: unit-normalized AlexNet activations after each ReLU,
    squared differences weighted per channel by the released linear heads, averaged over space, summed over layers."""
    import lpips
    from torchvision.models import alexnet

    network = alexnet()
    network.load_state_dict(torch.load(hub_checkpoint(M.backbone_url("alex")), map_location="cpu", weights_only=True))
    heads = torch.load(Path(lpips.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    shift = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]
    a, b = (x - shift) / scale, (y - shift) / scale
    total, layer = torch.zeros(len(x)), 0
    for i, module in enumerate(network.features[:12]):
        a, b = module(a), module(b)
        if i in (1, 4, 7, 9, 11):  # relu1..relu5
            na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += ((na - nb).pow(2) * heads[f"lin{layer}.model.1.weight"]).sum(1).mean((1, 2))
            layer += 1
    return total


@torch.no_grad()
def test_lpips_alex_with_real_weights_equals_eq1(photos: torch.Tensor, torch_home: Path) -> None:
    # The lpips repo's example images (0.722 / 0.138) are not shipped in its pip package; ../shared/weights/
    # PROVENANCE.md records 0.7219 / 0.1376 for these weights on them. Here: the paper's formula, independently.
    metric = M.build_metric("lpips_alex")
    fake = photos.flip(0)
    values = metric.per_image(M.EvalBatch(fake_rgb=fake, real_rgb=photos))
    expected = _lpips_eq1(M.uint8_to_lpips(color.rgb_to_uint8(fake)), M.uint8_to_lpips(color.rgb_to_uint8(photos)),
                          torch_home)
    assert values.numpy() == pytest.approx(expected.numpy(), abs=1e-5)
    assert 0.2 < float(values.mean()) < 1.0
    assert metric.per_image(M.EvalBatch(fake_rgb=photos, real_rgb=photos)).abs().max() < 1e-6


# ----------------------------------------------------------------------------------------------------------------
# FID


def _save_pngs(images: torch.Tensor, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(color.rgb_to_uint8(images)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return folder


def test_fid_stand_in_identical_shifted_and_cached(photos: torch.Tensor, tmp_path: Path, fid_stand_in: str) -> None:
    extractor = fid_stand_in
    real = fid_lib.Uint8Images(photos)
    folder = _save_pngs(photos, tmp_path / "same")
    options = dict(feature_extractor=extractor, real_cache_name="photos48", cache_root=tmp_path / "cache")
    assert abs(fid_lib.compute_fid(folder, real, **options)) < 1e-6
    assert list((tmp_path / "cache").glob("gan_color-photos48-*.npz"))  # the real set's statistics were cached
    shifted = fid_lib.compute_fid(fid_lib.Uint8Images(photos * 0.6), real, **options)
    assert shifted > 1e-3
    # the registered metric: PNGs of the outputs, key with the sample count
    metric = M.build_metric("fid", real=real, feature_extractor=extractor, real_cache_name="photos48",
                            cache_root=tmp_path / "cache")
    for half in photos.chunk(2):
        metric.update(M.EvalBatch(fake_rgb=half * 0.6, real_rgb=half))
    assert metric.result() == {"fid12": pytest.approx(shifted, rel=1e-6)}
    metric.close()
    assert fid_lib.fid_key(50_000) == "fid50k" and fid_lib.fid_key(1500) == "fid1500"


def test_fid_with_real_inception_weights(photos: torch.Tensor, torch_home: Path, tmp_path: Path) -> None:
    # The real network from the TORCH_HOME cache (loaded strictly, every layer). Its 768-d Mixed_6e features keep
    # this test a few seconds: the standard 2048-d pool3 FID adds a 2048x2048 eigendecomposition, ~20 s on 2 cores.
    few = photos[:4]
    folder = _save_pngs(few, tmp_path / "fake")
    options = dict(feature_layer="768", real_cache_name="four", cache_root=tmp_path / "cache")
    same = fid_lib.compute_fid(folder, fid_lib.Uint8Images(few), **options)
    darker = fid_lib.compute_fid(fid_lib.Uint8Images(few * 0.5), fid_lib.Uint8Images(few), **options)
    assert abs(same) < 1e-4 and darker > 0.01  # (darker reuses the cached statistics of the real set)


# torch-fidelity 0.4.0's own loader and cache (before the weights were verified and read as tensors) gave these
# numbers for these images: the safe loading path must not move them.
FID_BEFORE = {"768_folder": 5.817017049376008, "2048_folder": 432.8336225681277}


SAME = dict(rel=1e-9)  # bit-identical at the reference's 2 threads; other thread counts move the 7th digit


@pytest.fixture
def two_threads() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _fid_reference_inputs(photos: torch.Tensor, tmp_path: Path) -> tuple[Path, torch.Tensor]:
    return _save_pngs(photos * 0.7, tmp_path / "fake"), fid_lib.Uint8Images(photos)


def test_fid_values_unchanged_by_safe_loading(imagenet_photos: torch.Tensor, torch_home: Path, tmp_path: Path,
                                              two_threads: None) -> None:
    folder, real = _fid_reference_inputs(imagenet_photos, tmp_path)  # a folder of PNGs against a dataset of tensors
    assert fid_lib.compute_fid(folder, real, feature_layer="768") == pytest.approx(FID_BEFORE["768_folder"], **SAME)


@pytest.mark.slow
def test_fid_pool3_value_unchanged_and_cached_as_npz(imagenet_photos: torch.Tensor, torch_home: Path,
                                                     tmp_path: Path, two_threads: None) -> None:
    folder, real = _fid_reference_inputs(imagenet_photos, tmp_path)
    options = dict(real_cache_name="ref", cache_root=tmp_path / "cache")
    assert fid_lib.compute_fid(folder, real, **options) == pytest.approx(FID_BEFORE["2048_folder"], **SAME)
    (cached,) = (tmp_path / "cache").glob("*.npz")  # (reading it back: test_fid_stand_in_identical_shifted_and_cached)
    with np.load(cached, allow_pickle=False) as data:
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)


# ----------------------------------------------------------------------------------------------------------------
# Unavailable weights


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "fid"])
def test_missing_weights_give_a_message_not_a_traceback(name: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    _offline(monkeypatch)
    with pytest.raises(MetricUnavailable) as info:
        M.build_metric(name, real=fid_lib.Uint8Images(torch.zeros(2, 3, 8, 8)))
    message = str(info.value)
    assert message.startswith(name) and "network blocked" in message
    assert str(tmp_path / "empty") in message and "TORCH_HOME" in message and "docs/evaluation.md" in message
    assert not list((tmp_path / "empty").rglob("*.pth"))  # no partial download left behind
    with pytest.raises(MetricUnavailable, match="downloads are off"):
        M.build_metric(name, real=None, allow_download=False)
    with pytest.raises(MetricUnavailable, match="does not exist"):
        fid_lib.inception_weights(tmp_path / "nope.pth")
    assert os.environ["TORCH_HOME"] == str(tmp_path / "empty")
