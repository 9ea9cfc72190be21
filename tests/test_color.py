"""Colour science: torch sRGB <-> Lab against scikit-image, normalization, gamut and colourfulness."""

import warnings

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from gan_color import color, cpu_pointwise


def _cube_grid(n: int) -> np.ndarray:
    """All n^3 points of a regular grid on the RGB cube, corners included, as [n^3, 3] float64."""
    s = np.linspace(0.0, 1.0, n)
    return np.stack(np.meshgrid(s, s, s, indexing="ij"), axis=-1).reshape(-1, 3)


def _cube_points(seed: int = 0) -> np.ndarray:
    """Dense grid, random points, the sRGB knee, and a little outside the cube (resampling overshoot)."""
    rng = np.random.default_rng(seed)
    knees = np.array([-0.2, 0.0, 0.04045, 0.04045 + 1e-6, 0.5, 1.0, 1.2])
    return np.concatenate([_cube_grid(64), rng.random((50_000, 3)), _grid_of(knees)])


def _grid_of(values: np.ndarray) -> np.ndarray:
    return np.stack(np.meshgrid(values, values, values, indexing="ij"), axis=-1).reshape(-1, 3)


def _to_image(points: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """[N,3] -> [1,3,N,1] tensor."""
    return torch.from_numpy(points).to(dtype).T.reshape(1, 3, -1, 1)


def _from_image(image: torch.Tensor) -> np.ndarray:
    return image.detach().to(torch.float64).reshape(3, -1).T.numpy()


def test_rgb_to_lab_matches_skimage_over_the_whole_cube():
    points = _cube_points()
    expected = rgb2lab(points[None])[0]
    # The contract is 0.05; what remains (~2e-4) is skimage's rounded 7.787 and 0.008856 for the exact CIE
    # kappa / 116 and epsilon, so float64 does no better than float32.
    for dtype in (torch.float32, torch.float64):
        assert np.abs(_from_image(color.rgb_to_lab(_to_image(points, dtype))) - expected).max() < 1e-3


def test_lab_to_rgb_matches_skimage_and_round_trips_in_gamut():
    points = _cube_points(seed=1)
    points = points[((points >= 0) & (points <= 1)).all(axis=1)]
    lab = rgb2lab(points[None])[0]
    rgb = _from_image(color.lab_to_rgb(_to_image(lab)))
    assert np.abs(rgb - lab2rgb(lab[None])[0]).max() < 1e-4  # the contract is 1e-3
    assert np.abs(rgb - points).max() < 1e-4
    # sRGB's two knees (0.04045 and 0.0031308 * 12.92) disagree by 5e-9, hence not 1e-12.
    round_trip = color.lab_to_rgb(color.rgb_to_lab(_to_image(points, torch.float64)))
    assert np.abs(_from_image(round_trip) - points).max() < 1e-6


def test_out_of_gamut_lab_is_clipped_like_skimage():
    rng = np.random.default_rng(2)
    lab = np.stack([rng.uniform(0, 100, 20_000), rng.uniform(-128, 128, 20_000), rng.uniform(-128, 128, 20_000)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the negative Z it clips
        expected = lab2rgb(lab[None])[0]
    clipped = color.lab_to_rgb(_to_image(lab))
    assert np.abs(_from_image(clipped) - expected).max() < 1e-3
    unclipped = color.lab_to_rgb(_to_image(lab), clip=False)
    assert unclipped.min() < -0.1 and unclipped.max() > 1.1  # most of this box is out of gamut
    np.testing.assert_array_equal(_from_image(unclipped.clamp(0, 1)), _from_image(clipped))


def test_gradients_are_finite_at_the_seams_and_match_finite_differences():
    values = torch.tensor([-0.2, 0.0, 1e-7, 0.04045, 0.5, 1.0, 1.2])
    rgb = torch.stack(torch.meshgrid(values, values, values, indexing="ij")).reshape(1, 3, -1, 1).requires_grad_()
    lab = color.rgb_to_lab(rgb)
    back = color.lab_to_rgb(lab, clip=False)
    (lab.square().sum() + back.sum()).backward()
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
    extreme = torch.tensor([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [50.0, 127.0, -128.0], [0.0, -128.0, 127.0]])
    extreme = extreme.T.reshape(1, 3, 4, 1).requires_grad_()
    color.lab_to_rgb(extreme).sum().backward()
    assert torch.isfinite(extreme.grad).all()
    generator = torch.Generator().manual_seed(0)
    inside = (0.1 + 0.8 * torch.rand(1, 3, 4, 4, generator=generator, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(color.rgb_to_lab, (inside,))
    assert torch.autograd.gradcheck(lambda x: color.lab_to_rgb(x, clip=False), (color.rgb_to_lab(inside),))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_compute_in_at_least_float32(dtype):
    rgb = torch.rand(2, 3, 8, 8).to(dtype)
    lab = color.rgb_to_lab(rgb)
    assert lab.dtype == torch.promote_types(dtype, torch.float32)
    torch.testing.assert_close(lab.float(), color.rgb_to_lab(rgb.float()), atol=1e-4, rtol=1e-5)
    assert color.lab_to_rgb(lab.to(dtype)).dtype == lab.dtype


def test_shapes_pieces_and_input_checks(monkeypatch):
    rgb = torch.rand(3, 5, 7)
    lab = color.rgb_to_lab(rgb)
    torch.testing.assert_close(lab, color.rgb_to_lab(rgb[None])[0])
    monkeypatch.setattr(cpu_pointwise, "PIXELS_PER_PIECE", 4)  # CPU work is split in pieces: results must not change
    torch.testing.assert_close(color.rgb_to_lab(rgb), lab, atol=1e-4, rtol=0)  # SIMD vs scalar tails
    # Other devices take the one-call path (meta tensors carry shapes only).
    assert color.lab_to_rgb(color.rgb_to_lab(torch.empty(2, 3, 5, 7, device="meta"))).shape == (2, 3, 5, 7)
    eight_bit = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    torch.testing.assert_close(color.rgb_to_lab(eight_bit), color.rgb_to_lab(eight_bit / 255))
    np.testing.assert_allclose(color.rgb_to_lab(eight_bit[0]).permute(1, 2, 0), rgb2lab(eight_bit[0].permute(1, 2, 0)),
                               atol=1e-3)  # as skimage reads uint8
    with pytest.raises(TypeError, match="uint8 in"):
        color.rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.int16))
    with pytest.raises(TypeError, match="floating-point"):
        color.lab_to_rgb(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="3,H,W"):
        color.rgb_to_lab(torch.zeros(1, 4, 2, 2))


def test_model_inputs_are_normalized_and_invert():
    rgb = torch.from_numpy(_cube_grid(16)).float().T.reshape(1, 3, 64, 64)
    gray_l, real_ab = color.rgb_to_model_inputs(rgb)
    assert gray_l.shape == (1, 1, 64, 64) and real_ab.shape == (1, 2, 64, 64)
    assert gray_l.min() >= -1 - 1e-6 and gray_l.max() <= 1 + 1e-6 and real_ab.abs().max() <= 1
    torch.testing.assert_close(color.model_outputs_to_rgb(gray_l, real_ab), rgb, atol=1e-4, rtol=0)
    x = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(color.normalize_l(color.denormalize_l(x)), x)
    torch.testing.assert_close(color.normalize_ab(color.denormalize_ab(x)), x)
    assert color.denormalize_l(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 100.0]


def test_colorfulness_matches_hasler_suesstrunk_and_is_zero_for_gray():
    rgb = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    rgb[1, 2] = 0.0  # a yellow-shifted image: nonzero mean opponent term
    expected = []
    for image in rgb.double().numpy() * 255:
        rg = image[0] - image[1]
        yb = 0.5 * (image[0] + image[1]) - image[2]
        expected.append(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    np.testing.assert_allclose(color.colorfulness(rgb).numpy(), expected, rtol=1e-5)
    gray = torch.rand(2, 1, 16, 16).expand(2, 3, 16, 16)
    torch.testing.assert_close(color.colorfulness(gray), torch.zeros(2))
