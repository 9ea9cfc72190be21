"""The Zhang et al. ab grid: the in-gamut bins against scikit-image, the exact nearest-bin search and its table
cache, soft encoding, rebalancing weights and the decodings."""

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

from gan_color import ab_grid, color


def _cells(ab: np.ndarray, bin_size: int = 10) -> set[tuple[int, int]]:
    """Centres of the grid cells (centres at multiples of bin_size) that the ab points [N,2] fall in."""
    return set(map(tuple, np.unique(np.floor(ab / bin_size + 0.5).astype(int), axis=0) * bin_size))


@pytest.fixture(scope="module")
def bins() -> torch.Tensor:
    return ab_grid.ab_bins()


def test_ab_bins_are_grid_centres_and_cached(bins):
    assert bins.dtype == torch.float32 and bins.shape == (262, 2)  # see the ab_bins docstring for Q
    assert (bins % 10 == 0).all() and bins.abs().max() <= 110
    keys = (bins[:, 0] * 1000 + bins[:, 1]).tolist()
    assert keys == sorted(set(keys))
    bins_again = ab_grid.ab_bins()
    bins_again += 1  # callers get a copy, so this cannot corrupt the cache
    torch.testing.assert_close(ab_grid.ab_bins(), bins)


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
    monkeypatch.setattr(ab_grid, "_CHUNK", 7)  # exercise the chunked path too
    encoded = ab_grid.soft_encode_ab(ab, bins)
    assert encoded.shape == (2, len(bins), 6, 5)
    got = encoded.permute(0, 2, 3, 1).reshape(-1, len(bins)).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)
    hard = ab_grid.encode_ab_nearest(ab, bins)
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
    index, squared = ab_grid._nearest_bins(torch.from_numpy(points), bins.double(), k)
    brute = ((points[:, None] - bins.double().numpy()[None]) ** 2).sum(-1)
    expected = np.sort(brute, axis=1)[:, :k]
    np.testing.assert_allclose(squared.numpy(), expected, rtol=0, atol=1e-9)  # the k nearest, closest first
    np.testing.assert_allclose(np.take_along_axis(brute, index.numpy(), 1), expected, rtol=0, atol=1e-9)
    assert (np.sort(index.numpy(), 1)[:, 1:] != np.sort(index.numpy(), 1)[:, :-1]).all()  # k distinct bins
    everywhere = ab_grid._nearest_among_all(torch.from_numpy(points), bins.double(), k)  # what GPUs run
    np.testing.assert_allclose(np.take_along_axis(brute, everywhere.numpy(), 1), expected, rtol=0, atol=1e-9)


def test_candidate_tables_are_shared_by_equal_bins_and_rebuilt_for_changed_ones(bins):
    """The cache is keyed on the bins' values: fresh copies (each ab_bins() call returns one) hit it; bins changed in
    any way, even where torch's version counter does not see it (a write through numpy), miss it."""
    table = ab_grid._candidate_table(bins, 5, torch.float32)
    assert ab_grid._candidate_table(ab_grid.ab_bins(), 5, torch.float32) is table  # no rebuild per copy
    assert ab_grid._candidate_table(bins.double(), 5, torch.float32) is table  # built from float64 values anyway
    assert ab_grid._candidate_table(bins, 5, torch.float64) is not table
    assert ab_grid._candidate_table(bins, 8, torch.float32) is not table
    mine = bins.clone()
    points = torch.tensor([[3.0, 4.0], [-50.0, 61.0]])
    first, _ = ab_grid._nearest_bins(points, mine, 5)
    version = mine._version
    mine.numpy()[:] += 3.0  # moved behind autograd's back: the old table would be wrong
    assert mine._version == version
    index, squared = ab_grid._nearest_bins(points, mine, 5)
    assert ab_grid._candidate_table(mine, 5, torch.float32) is not table
    brute = torch.cdist(points.double(), mine.double()).square()
    torch.testing.assert_close(squared.double(), brute.sort(1).values[:, :5], rtol=0, atol=1e-4)
    assert not torch.equal(index, first)


def test_soft_encoding_at_a_bin_centre_puts_most_mass_there(bins):
    centre = torch.tensor([0.0, 0.0])  # an interior bin: its 4 neighbours at distance 10 share the rest
    index = int(((bins - centre).abs().sum(1) == 0).nonzero())
    encoded = ab_grid.soft_encode_ab(centre.reshape(1, 2, 1, 1), bins)[0, :, 0, 0]
    assert encoded[index] == pytest.approx(1 / (1 + 4 * np.exp(-2)), abs=1e-6)
    assert (encoded > 0).sum() == 5


def test_bin_counts_is_the_histogram_of_nearest_bins(bins):
    ab = color.rgb_to_lab(torch.rand(3, 3, 10, 10))[:, 1:]
    counts = ab_grid.bin_counts(ab, bins)
    assert counts.shape == (len(bins),) and counts.sum() == 300
    torch.testing.assert_close(counts, torch.bincount(ab_grid.encode_ab_nearest(ab, bins).flatten(), minlength=262))


def test_rebalance_weights_follow_zhang_eq4(bins):
    counts = torch.zeros(len(bins))
    counts[torch.arange(0, len(bins), 3)] = torch.logspace(0, 6, len(range(0, len(bins), 3)))
    weights = ab_grid.rebalance_weights(counts, bins, lam=0.5, sigma=5.0).double()
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
    torch.testing.assert_close(ab_grid.rebalance_weights(counts / counts.sum(), bins), weights.float())
    torch.testing.assert_close(ab_grid.rebalance_weights(counts, bins, lam=1.0), torch.ones(len(bins)))
    with pytest.raises(ValueError):
        ab_grid.rebalance_weights(counts[:-1], bins)


def test_annealed_mean_interpolates_between_mean_and_mode(bins):
    logits = torch.randn(2, len(bins), 3, 4, generator=torch.Generator().manual_seed(5)) * 3
    probabilities = torch.softmax(logits, dim=1)
    mean = torch.einsum("bqhw,qc->bchw", probabilities, bins)
    torch.testing.assert_close(ab_grid.annealed_mean(logits, bins, temperature=1.0), mean)
    torch.testing.assert_close(ab_grid.decode_mean(logits, bins), mean)
    # Eq. 5 written literally: f_T(z) = exp(log z / T) / sum_q exp(log z_q / T).
    annealed = torch.exp(torch.log(probabilities.double()) / 0.38)
    annealed = annealed / annealed.sum(dim=1, keepdim=True)
    literal = torch.einsum("bqhw,qc->bchw", annealed, bins.double()).float()
    torch.testing.assert_close(ab_grid.annealed_mean(logits, bins, temperature=0.38), literal)
    mode = ab_grid.decode_mode(logits, bins)
    torch.testing.assert_close(mode, bins[logits.argmax(dim=1)].permute(0, 3, 1, 2))
    errors = [(ab_grid.annealed_mean(logits, bins, temperature=t) - mode).abs().max() for t in (0.3, 0.03, 1e-4)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4
    with pytest.raises(ValueError):
        ab_grid.annealed_mean(logits, bins, temperature=0.0)
