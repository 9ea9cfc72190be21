"""The quantized ab grid of Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016): the in-gamut bins, the
exact nearest-bin search, soft encoding, class rebalancing (eq. 4) and the annealed-mean decoding (eq. 5).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_color.color import as_float, rgb_to_lab
from gan_color.cpu_pointwise import PIXELS_PER_PIECE

AB_BIN_SIZE = 10  # Zhang et al.'s grid spacing, in CIE ab units


def _cube_surface(face_samples: int = 256, edge_samples: int = 1 << 14) -> Iterator[Tensor]:
    """RGB points in [3, <=PIXELS_PER_PIECE] pieces: a grid on each of the cube's 6 faces and, far denser, on its
    12 edges."""
    face = torch.linspace(0.0, 1.0, face_samples)
    face_grid = torch.cartesian_prod(face, face).T.contiguous()  # [2, n^2]: two free channels, one fixed
    edge = torch.linspace(0.0, 1.0, edge_samples)[None]  # [1, n]: one free channel, two fixed
    for free in [*face_grid.split(PIXELS_PER_PIECE, dim=1), *edge.split(PIXELS_PER_PIECE, dim=1)]:
        n_fixed = 3 - free.shape[0]
        for channels in itertools.combinations(range(3), n_fixed):
            for values in itertools.product((0.0, 1.0), repeat=n_fixed):
                fixed, planes = dict(zip(channels, values)), iter(free)
                constant = {c: torch.full_like(free[0], v) for c, v in fixed.items()}
                yield torch.stack([constant[c] if c in constant else next(planes) for c in range(3)])


@functools.lru_cache(maxsize=8)
def _gamut_bins(bin_size: int) -> Tensor:
    # Lab is a continuous bijection of the RGB cube, so the ab projection of the gamut solid equals that of the
    # cube's surface. Cells wholly inside the projection are hit by the face grid (samples 1-2 ab units apart); a
    # cell holding only a sliver contains part of the projection's outline, which runs along cube edges (the
    # R-Y-G-C-B-M hexagon), hence their dense sampling. Same cells as 4096^2 samples per face for bin sizes 5-20.
    reach = 128 // bin_size + 2  # sRGB has |a|, |b| < 110: cell indices lie within +-reach
    side = 2 * reach + 1
    hits = torch.zeros(side * side, dtype=torch.int64)
    for rgb in _cube_surface():  # piece by piece: small tensors stay in cache, ops stay single-threaded
        ab = rgb_to_lab(rgb[:, None])[1:, 0]
        # Cell of centre c*bin_size covers [c - 1/2, c + 1/2) * bin_size, i.e. nearest centre on the full grid.
        # Shifted positive, truncation is floor (torch.floor spawns threads even for tiny tensors).
        cells = (ab / bin_size + (reach + 0.5)).to(torch.int64)
        hits += torch.bincount(cells[0] * side + cells[1], minlength=side * side)
    keys = hits.nonzero().squeeze(1)  # ascending: sorted by a, then b
    return (torch.stack([keys // side, keys % side], dim=1) - reach).mul(bin_size).to(torch.float32)


def ab_bins(bin_size: int = AB_BIN_SIZE) -> Tensor:
    """Centres [Q,2] (a, b; CIE units, float32, CPU, sorted by a then b) of the in-gamut ab grid cells.

    Rule: the grid has centres at multiples of `bin_size` (as Zhang et al.'s pts_in_hull.npy); a cell is kept if
    any colour of the continuous sRGB cube [0, 1]^3 falls in it. With bin_size=10 this gives Q = 262: the 261 cells
    hit by the 2^24 8-bit colours plus (20, -80), reached only by a sliver (R <= 8, G ~ 117.4-118.6, B >= 253.8, on
    the 0-255 scale) that resized or float images can produce. Zhang et al. report Q = 313 from a looser in-gamut
    test: at least 51 of their cells hold no sRGB colour, so no target pixel could ever fall in them. Consumers
    take Q = len(ab_bins()). Computed once per bin_size (~0.15 s), then cached; the tensor returned is a copy.
    """
    if int(bin_size) != bin_size or bin_size < 1:
        raise ValueError(f"bin_size must be a positive integer, got {bin_size}")
    return _gamut_bins(int(bin_size)).clone()


def _flat_ab(ab: Tensor) -> Tensor:
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must be [B,2,H,W], got shape {tuple(ab.shape)}")
    return as_float(ab).permute(0, 2, 3, 1).reshape(-1, 2)


# Pixels per chunk of the nearest-bin search: bounds its temporaries (at most ~65k x Q distances).
_CHUNK = 1 << 16
_CELL = 2.0  # side, in ab units, of the cells of the nearest-bin candidate table
_MARGIN = 2.0 * AB_BIN_SIZE  # the table's reach beyond the outermost bins; points farther out compare with all bins


@dataclasses.dataclass(frozen=True)
class _CandidateTable:
    """For each cell of a square grid over the bins' extent, every bin that can be among the k nearest of some point
    in the cell: those within d_k(c) + 2h of the cell centre c (h: half the cell diagonal). For p in the cell, each
    of its k nearest b has |b - p| <= d_k(p) <= d_k(c) + h, since d_k is 1-Lipschitz, so |b - c| <= d_k(c) + 2h."""

    origin: Tensor  # [2]: the grid's lower-left corner
    cells: int  # cells per side
    candidates: Tensor  # [cells^2, M] bin indices, padded with index Q
    padded_bins: Tensor  # [Q+1, 2]: the bins and a far-away pad bin


def _build_candidate_table(bins: Tensor, k: int, dtype: torch.dtype) -> _CandidateTable:
    """The table for `bins` [Q,2] (float64, CPU), its coordinates returned in `dtype`."""
    origin = bins.min(0).values - _MARGIN
    cells = int(math.ceil(float((bins.max(0).values + _MARGIN - origin).max()) / _CELL))
    centres = origin + _CELL * (torch.cartesian_prod(torch.arange(cells), torch.arange(cells)) + 0.5)
    distances = torch.cdist(centres.to(torch.float64), bins)  # [cells^2, Q]
    kth = distances.topk(min(k, len(bins)), dim=1, largest=False).values[:, -1:]
    candidate = distances <= kth + 2 * (_CELL * math.sqrt(0.5)) + 1e-6
    width = int(candidate.sum(1).max())
    order = torch.where(candidate, distances, math.inf).argsort(dim=1)[:, :width]
    table = torch.where(candidate.gather(1, order), order, len(bins))
    padded = torch.cat([bins, torch.full((1, 2), 1e6, dtype=torch.float64)])
    return _CandidateTable(origin.to(dtype), cells, table, padded.to(dtype))


@functools.lru_cache(maxsize=8)
def _cached_table(centres: bytes, k: int, dtype: torch.dtype) -> _CandidateTable:
    return _build_candidate_table(torch.frombuffer(bytearray(centres), dtype=torch.float64).reshape(-1, 2), k, dtype)


def _candidate_table(bins: Tensor, k: int, dtype: torch.dtype) -> _CandidateTable:
    """The table is a function of the bins' values (in float64, as it is built), k and dtype alone, so it is cached
    under exactly those: every tensor holding the same centres shares one table (callers hold fresh ab_bins() copies,
    evaluation one per batch), and bins changed in any way are another key. Reading Q x 2 values costs microseconds.
    """
    return _cached_table(bins.detach().to("cpu", torch.float64).contiguous().numpy().tobytes(), k, dtype)


def _nearest_among_all(points: Tensor, bins: Tensor, k: int) -> Tensor:
    # Direct differences, not cdist's |x|^2 - 2xy + |y|^2 expansion, which can pick a wrong bin near a tie.
    distances = torch.cdist(points, bins, compute_mode="donot_use_mm_for_euclid_dist")
    return distances.topk(k, dim=1, largest=False).indices


def _nearest_bins(points: Tensor, bins: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Indices [N,k] of the k nearest bins (closest first) and their exact squared distances [N,k].

    On the CPU, through the candidate table: distances to a cell's ~7 candidates (at most ~12) instead of all Q,
    5-9x faster; points off the table (far outside the gamut) take all bins. Other devices take all bins, which
    costs them little and needs no host sync."""
    on_cpu = points.device.type == "cpu"
    table = _candidate_table(bins, k, points.dtype) if on_cpu else None
    bins = bins.to(device=points.device, dtype=points.dtype)
    indices = []
    for chunk in points.split(_CHUNK):
        if table is None:
            indices.append(_nearest_among_all(chunk, bins, k))
            continue
        cell = ((chunk - table.origin) / _CELL).floor().long()
        outside = ((cell < 0) | (cell >= table.cells)).any(1)
        cell = cell.clamp_(0, table.cells - 1)
        candidates = table.candidates[cell[:, 0] * table.cells + cell[:, 1]]  # [n, M]
        squared = (table.padded_bins[candidates] - chunk[:, None, :]).square().sum(-1)
        index = candidates.gather(1, squared.topk(k, dim=1, largest=False).indices)
        if outside.any():
            index[outside] = _nearest_among_all(chunk[outside], bins, k)
        indices.append(index)
    index = torch.cat(indices) if indices else points.new_zeros((0, k), dtype=torch.int64)
    return index, (points[:, None, :] - bins[index]).square().sum(-1)


def encode_ab_nearest(ab: Tensor, bins: Tensor) -> Tensor:
    """Index of the nearest bin for every pixel: ab [B,2,H,W] in CIE units -> LongTensor [B,H,W]."""
    batch, _, height, width = ab.shape
    index, _ = _nearest_bins(_flat_ab(ab), bins, k=1)
    return index.reshape(batch, height, width)


def soft_encode_ab(ab: Tensor, bins: Tensor, k: int = 5, sigma: float = 5.0) -> Tensor:
    """Zhang et al. soft encoding: Gaussian (sigma) weights on the k nearest bins, summing to 1 -> [B,Q,H,W]."""
    batch, _, height, width = ab.shape
    points = _flat_ab(ab)
    index, squared = _nearest_bins(points, bins, k=k)
    # Subtracting the nearest distance keeps exp() from underflowing to 0/0 far from every bin.
    weights = torch.exp(-(squared - squared[:, :1]) / (2.0 * sigma**2))
    weights = weights / weights.sum(dim=1, keepdim=True)
    encoded = points.new_zeros(points.shape[0], bins.shape[0]).scatter_(1, index, weights)
    return encoded.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def bin_counts(ab: Tensor, bins: Tensor) -> Tensor:
    """Histogram [Q] (int64) of nearest bins over all pixels of ab [B,2,H,W]; summed over a dataset, the prior."""
    index = encode_ab_nearest(ab, bins).flatten()
    return torch.bincount(index, minlength=bins.shape[0]).cpu()


def rebalance_weights(counts_or_prior: Tensor, bins: Tensor, lam: float = 0.5, sigma: float = 5.0) -> Tensor:
    """Zhang et al. eq. 4 class-rebalancing weights [Q] (float32, CPU) from bin counts or an empirical prior.

    p~ is the prior smoothed by a Gaussian of `sigma` over bin centres (each bin's mass spread over the bins, so p~
    still sums to 1); w = ((1 - lam) p~ + lam / Q)^-1, scaled so that E_{p~}[w] = sum_q p~_q w_q = 1.
    """
    prior = counts_or_prior.detach().to(torch.float64).cpu().flatten()
    centres = bins.detach().to(torch.float64).cpu()
    if prior.shape[0] != centres.shape[0]:
        raise ValueError(f"got {prior.shape[0]} counts for {centres.shape[0]} bins")
    if (prior < 0).any() or prior.sum() <= 0:
        raise ValueError("counts_or_prior must be non-negative with a positive sum")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    prior = prior / prior.sum()
    kernel = torch.exp(-torch.cdist(centres, centres).square() / (2.0 * sigma**2))  # [q, j]
    smoothed = kernel @ (prior / kernel.sum(dim=0))
    weights = 1.0 / ((1.0 - lam) * smoothed + lam / centres.shape[0])
    return (weights / (smoothed * weights).sum()).to(torch.float32)


def annealed_mean(logits: Tensor, bins: Tensor, temperature: float = 0.38) -> Tensor:
    """Zhang et al. eq. 5: ab [B,2,H,W] (CIE units) = mean of f_T(z) = exp(log z / T) / sum, z = softmax(logits).

    exp(log softmax(x) / T) is proportional to exp(x / T), so f_T(z) = softmax(logits / T): T = 1 gives the mean,
    T -> 0 the mode; the paper uses T = 0.38.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use decode_mode for T -> 0), got {temperature}")
    probabilities = torch.softmax(as_float(logits) / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", probabilities, bins.to(probabilities))


def decode_mode(logits: Tensor, bins: Tensor) -> Tensor:
    """Centre of the most probable bin per pixel: logits [B,Q,H,W] -> ab [B,2,H,W] (CIE units)."""
    centres = bins.to(device=logits.device, dtype=torch.promote_types(logits.dtype, torch.float32))
    return F.embedding(logits.argmax(dim=1), centres).permute(0, 3, 1, 2)


def decode_mean(logits: Tensor, bins: Tensor) -> Tensor:
    """Mean of the predicted distribution (annealed mean at T = 1): logits [B,Q,H,W] -> ab [B,2,H,W]."""
    return annealed_mean(logits, bins, temperature=1.0)
