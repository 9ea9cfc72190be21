"""Colour science: torch sRGB <-> Lab against scikit-image, and the Zhang et al. ab bins, encodings and decodings."""

import warnings

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from gan_color import color


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


def _cells(ab: np.ndarray, bin_size: int = 10) -> set[tuple[int, int]]:
    """Centres of the grid cells (centres at multiples of bin_size) that the ab points [N,2] fall in."""
    return set(map(tuple, np.unique(np.floor(ab / bin_size + 0.5).astype(int), axis=0) * bin_size))


@pytest.fixture(scope="module")
def bins() -> torch.Tensor:
    return color.ab_bins()


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
    monkeypatch.setattr(color, "_PIXELS_PER_PIECE", 4)  # CPU work is split in pieces: results must not change
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


def test_ab_bins_are_grid_centres_and_cached(bins):
    assert bins.dtype == torch.float32 and bins.shape == (262, 2)  # see the ab_bins docstring for Q
    assert (bins % 10 == 0).all() and bins.abs().max() <= 110
    keys = (bins[:, 0] * 1000 + bins[:, 1]).tolist()
    assert keys == sorted(set(keys))
    bins_again = color.ab_bins()
    bins_again += 1  # callers get a copy, so this cannot corrupt the cache
    torch.testing.assert_close(color.ab_bins(), bins)


def _random_surface_points(rng: np.random.Generator, n: int, fixed: int) -> np.ndarray:
    """n uniform points on the cube's faces (fixed=1) or edges (fixed=2): `fixed` channels set to 0 or 1."""
    points = rng.random((n, 3))
    channels = np.argsort(rng.random((n, 3)), axis=1)[:, :fixed]
    np.put_along_axis(points, channels, rng.integers(0, 2, (n, fixed)).astype(float), axis=1)
    return points


def test_bins_are_exactly_the_cells_srgb_colours_fall_in(bins):
    """Independent sampling and conversion (skimage): every such cell is a bin, and every bin holds sRGB colours."""
    rng = np.random.default_rng(3)
    points = np.concatenate(
        [
            _random_surface_points(rng, 200_000, fixed=1),  # the gamut's extremes lie on the faces...
            _random_surface_points(rng, 100_000, fixed=2),  # ...and its thinnest slivers along the edges
            rng.random((100_000, 3)),
            rng.integers(0, 256, (100_000, 3)) / 255,
        ]
    )
    assert _cells(rgb2lab(points[None])[0][:, 1:]) == _cells(bins.numpy())


def test_nearest_and_soft_encoding_match_a_brute_force_reference(bins, monkeypatch):
    rgb = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(4))
    ab = color.rgb_to_lab(rgb)[:, 1:]
    points = ab.permute(0, 2, 3, 1).reshape(-1, 2).double().numpy()
    distances = np.linalg.norm(points[:, None] - bins.double().numpy()[None], axis=-1)
    nearest = np.argsort(distances, axis=1)[:, :5]
    expected = np.zeros_like(distances)
    weights = np.exp(-(np.take_along_axis(distances, nearest, 1) ** 2) / (2 * 5.0**2))
    np.put_along_axis(expected, nearest, weights / weights.sum(1, keepdims=True), 1)
    monkeypatch.setattr(color, "_CHUNK", 7)  # exercise the chunked path too
    encoded = color.soft_encode_ab(ab, bins)
    assert encoded.shape == (2, len(bins), 6, 5)
    got = encoded.permute(0, 2, 3, 1).reshape(-1, len(bins)).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)
    hard = color.encode_ab_nearest(ab, bins)
    assert hard.dtype == torch.int64 and hard.shape == (2, 6, 5)
    assert (hard.flatten().numpy() == nearest[:, 0]).all()
    assert (encoded.argmax(dim=1) == hard).all()


@pytest.mark.parametrize("k", [1, 5, 8])
def test_nearest_bins_are_exact_everywhere(bins, k):
    """The candidate-table search against all distances: random ab in and far outside the gamut, cell corners (the
    table's grid lines) and bin centres (ties), for several k."""
    rng = np.random.default_rng(k)
    grid = np.arange(-140.0, 141.0, 2.0)
    points = np.concatenate([
        rng.uniform(-140, 140, (20_000, 2)),
        rng.uniform(-600, 600, (500, 2)),  # off the table: the all-bins fallback
        np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2),
        bins.double().numpy() + rng.choice([-5.0, 0.0, 5.0], (len(bins), 2)),
    ])
    index, squared = color._nearest_bins(torch.from_numpy(points), bins.double(), k)
    brute = ((points[:, None] - bins.double().numpy()[None]) ** 2).sum(-1)
    expected = np.sort(brute, axis=1)[:, :k]
    np.testing.assert_allclose(squared.numpy(), expected, rtol=0, atol=1e-9)  # the k nearest, closest first
    np.testing.assert_allclose(np.take_along_axis(brute, index.numpy(), 1), expected, rtol=0, atol=1e-9)
    assert (np.sort(index.numpy(), 1)[:, 1:] != np.sort(index.numpy(), 1)[:, :-1]).all()  # k distinct bins
    everywhere = color._nearest_among_all(torch.from_numpy(points), bins.double(), k)  # what GPUs run
    np.testing.assert_allclose(np.take_along_axis(brute, everywhere.numpy(), 1), expected, rtol=0, atol=1e-9)


def test_candidate_tables_are_reused_only_for_the_same_unchanged_bins(bins):
    mine = bins.clone()
    points = torch.tensor([[3.0, 4.0], [-50.0, 61.0]])
    first = color._nearest_bins(points, mine, 5)
    table = color._candidate_table(mine, 5, torch.float32)
    assert color._candidate_table(mine, 5, torch.float32) is table  # no rebuild per call
    assert color._candidate_table(mine.clone(), 5, torch.float32) is not table
    mine += 3.0  # moved in place: the old table would be wrong
    index, squared = color._nearest_bins(points, mine, 5)
    assert color._candidate_table(mine, 5, torch.float32) is not table
    brute = torch.cdist(points.double(), mine.double()).square()
    torch.testing.assert_close(squared.double(), brute.sort(1).values[:, :5], rtol=0, atol=1e-4)
    assert not torch.equal(index, first[0])


def test_soft_encoding_at_a_bin_centre_puts_most_mass_there(bins):
    centre = torch.tensor([0.0, 0.0])  # an interior bin: its 4 neighbours at distance 10 share the rest
    index = int(((bins - centre).abs().sum(1) == 0).nonzero())
    encoded = color.soft_encode_ab(centre.reshape(1, 2, 1, 1), bins)[0, :, 0, 0]
    assert encoded[index] == pytest.approx(1 / (1 + 4 * np.exp(-2)), abs=1e-6)
    assert (encoded > 0).sum() == 5


def test_bin_counts_is_the_histogram_of_nearest_bins(bins):
    ab = color.rgb_to_lab(torch.rand(3, 3, 10, 10))[:, 1:]
    counts = color.bin_counts(ab, bins)
    assert counts.shape == (len(bins),) and counts.sum() == 300
    torch.testing.assert_close(counts, torch.bincount(color.encode_ab_nearest(ab, bins).flatten(), minlength=262))


def test_rebalance_weights_follow_zhang_eq4(bins):
    counts = torch.zeros(len(bins))
    counts[torch.arange(0, len(bins), 3)] = torch.logspace(0, 6, len(range(0, len(bins), 3)))
    weights = color.rebalance_weights(counts, bins, lam=0.5, sigma=5.0).double()
    centres = bins.double().numpy()
    kernel = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / (2 * 5.0**2))
    prior = counts.double().numpy() / counts.sum().item()
    smoothed = kernel @ (prior / kernel.sum(0))
    assert smoothed.sum() == pytest.approx(1.0)
    assert float((smoothed * weights.numpy()).sum()) == pytest.approx(1.0, abs=1e-5)
    expected = 1 / (0.5 * smoothed + 0.5 / len(bins))
    np.testing.assert_allclose(weights.numpy(), expected / (smoothed * expected).sum(), rtol=1e-5)
    rarer = smoothed[:, None] < smoothed[None] - 1e-12
    assert (weights.numpy()[:, None] > weights.numpy()[None])[rarer].all()  # rarer bins weigh more
    torch.testing.assert_close(color.rebalance_weights(counts / counts.sum(), bins), weights.float())
    torch.testing.assert_close(color.rebalance_weights(counts, bins, lam=1.0), torch.ones(len(bins)))
    with pytest.raises(ValueError):
        color.rebalance_weights(counts[:-1], bins)


def test_annealed_mean_interpolates_between_mean_and_mode(bins):
    logits = torch.randn(2, len(bins), 3, 4, generator=torch.Generator().manual_seed(5)) * 3
    probabilities = torch.softmax(logits, dim=1)
    mean = torch.einsum("bqhw,qc->bchw", probabilities, bins)
    torch.testing.assert_close(color.annealed_mean(logits, bins, temperature=1.0), mean)
    torch.testing.assert_close(color.decode_mean(logits, bins), mean)
    # Eq. 5 written literally: f_T(z) = exp(log z / T) / sum_q exp(log z_q / T).
    annealed = torch.exp(torch.log(probabilities.double()) / 0.38)
    annealed = annealed / annealed.sum(dim=1, keepdim=True)
    literal = torch.einsum("bqhw,qc->bchw", annealed, bins.double()).float()
    torch.testing.assert_close(color.annealed_mean(logits, bins, temperature=0.38), literal)
    mode = color.decode_mode(logits, bins)
    torch.testing.assert_close(mode, bins[logits.argmax(dim=1)].permute(0, 3, 1, 2))
    errors = [(color.annealed_mean(logits, bins, temperature=t) - mode).abs().max() for t in (0.3, 0.03, 1e-4)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4
    with pytest.raises(ValueError):
        color.annealed_mean(logits, bins, temperature=0.0)


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
